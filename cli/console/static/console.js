// HEART console: one live stream per page (Server-Sent Events), rendered as plain DOM.
// Board text is always set as text, never as HTML.
"use strict";

const app = document.getElementById("app");
const PAGE = app.dataset.page;
const CSRF = app.dataset.csrf;
const ACTIONS = JSON.parse(app.dataset.actions || "{}");
const ROLE = app.dataset.role;
// What the page's forms offer, from the server: questions, resources, dispositions, urgencies.
const CONFIG = JSON.parse(app.dataset.config || "{}");
const feed = document.getElementById("feed");
const message = document.getElementById("message");

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "text") el.textContent = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
}

const words = (text) => (text ? String(text).replaceAll("_", " ") : "—");
const route = (r) => h("span", { class: `route route-${r}` }, r.toUpperCase());

// ``count`` is the panel's badge: its rows by default, or null for none.
function table(caption, headers, rows, empty, count = rows.length) {
  return h(
    "section",
    { class: "panel", "data-panel": caption },
    h("h2", {}, caption, count === null ? null : h("span", { class: "count" }, String(count))),
    rows.length
      ? h(
          "table",
          {},
          h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, rows),
        )
      : h("p", { class: "empty" }, empty),
  );
}

function showMessage(text, kind) {
  message.hidden = !text;
  message.textContent = text || "";
  message.className = `message ${kind || ""}`;
}

// Sends an action. A refusal that names a field is shown in the form's own error line
// (``form``), next to the field, and nothing was sent; any other outcome in the banner.
async function post(url, body, form) {
  let response;
  try {
    response = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(body),
    });
  } catch (err) {
    showMessage("The console cannot be reached: the action was not sent.", "error");
    return null;
  }
  const data = await response.json().catch(() => ({}));
  if (form) clearFieldError(form);
  if (!response.ok) {
    if (form && data.field) showFieldError(form, data.field, data.error);
    else showMessage(data.error || `Refused (${response.status}).`, "error");
    return null;
  }
  if (data.warning) showMessage(data.warning, "warning");
  else showMessage("Sent. The page updates when the event comes back from Kafka.", "ok");
  return data;
}

function clearFieldError(form) {
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  const line = form.querySelector(".field-error");
  if (line) line.textContent = "";
}

function showFieldError(form, field, text) {
  const line = form.querySelector(".field-error");
  if (line) line.textContent = text;
  const target = form.querySelector(`[data-field="${CSS.escape(field)}"]`);
  if (target) {
    target.setAttribute("aria-invalid", "true");
    const input = target.matches("input, select") ? target : target.querySelector("input, select");
    if (input) input.focus();
  }
  showMessage("Not sent: correct the form.", "error");
}

const urgencySelect = (id) =>
  h(
    "select",
    { name: "urgency", id, "data-field": "urgency" },
    h("option", { value: "" }, "urgency…"),
    (CONFIG.urgencies || []).map((u) => h("option", { value: u }, u)),
  );

// "Ask a clinician": a consult on ccd.consults. Lives outside the live part of the page,
// so that a new update does not reset what the person chose.
let consultCall = null;

function consultForm(forTeam) {
  let form = document.getElementById("consult-form");
  if (form) return form;
  form = h(
    "form",
    { id: "consult-form", class: "panel consult", hidden: !forTeam, novalidate: true },
    h("h2", {}, "Ask a clinician", forTeam ? null : h("span", { id: "consult-call", class: "id" })),
    h("label", {}, "Urgency ", urgencySelect("consult-urgency")),
    h("p", { class: "field-error", role: "alert" }),
    h("button", { type: "submit" }, "Ask a clinician"),
    forTeam
      ? null
      : h("button", { type: "button", class: "secondary", onclick: () => { form.hidden = true; consultCall = null; } }, "Cancel"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { urgency: form.elements.urgency.value };
    if (!forTeam) body.call_id = consultCall;
    if (await post("/api/consult/request", body, form)) {
      form.reset();
      if (!forTeam) form.hidden = true;
    }
  });
  app.after(form);
  return form;
}

// --- supervisor board ---------------------------------------------------------------------

function renderBoard(v) {
  const alerts = h(
    "section",
    { class: "panel alerts", "data-panel": "Alerts" },
    h("h2", {}, "Alerts", h("span", { class: "count" }, String(v.alerts.length))),
    v.alerts.length
      ? h(
          "ul",
          {},
          v.alerts.map((a) =>
            h(
              "li",
              { class: `alert ${a.severity}`, "data-kind": a.kind },
              h("span", { class: "sev" }, a.severity),
              h("span", {}, a.message),
              h("span", { class: "age" }, `for ${duration(a.age_s)}`),
            ),
          ),
        )
      : h("p", { class: "empty" }, "No alerts."),
  );
  const asks = ROLE === "supervisor";
  const form = asks ? consultForm(false) : null;
  const calls = table(
    "Open calls",
    ["Call", "Route", "Reasons", "Team", "Dispatch", "Age", ...(asks ? [""] : [])],
    v.calls.map((c) =>
      h(
        "tr",
        { "data-call": c.call_id },
        h("td", { class: "id" }, c.call_id, h("div", { class: "sub" }, words(c.call_type))),
        h(
          "td",
          {},
          route(c.route),
          c.rules_route
            ? h("div", { class: "sub overruled" }, "clinician; rules chose ", route(c.rules_route))
            : null,
        ),
        h("td", { class: "reasons" }, c.reasons.map(words).join(", ") || "—"),
        h("td", {}, c.team_id || "—"),
        h("td", {}, words(c.dispatch)),
        h("td", { class: "num" }, duration(c.age_s)),
        asks
          ? h(
              "td",
              {},
              h(
                "button",
                {
                  type: "button",
                  class: "small secondary",
                  "data-ask": c.call_id,
                  onclick: () => {
                    consultCall = c.call_id;
                    document.getElementById("consult-call").textContent = `about call ${c.call_id}`;
                    form.hidden = false;
                    form.elements.urgency.focus();
                  },
                },
                "Ask a clinician",
              ),
            )
          : null,
      ),
    ),
    "No open calls.",
  );
  const queue = table(
    "Queue",
    ["Call", "Route", "Waiting", "Police at"],
    v.queue.map((q) =>
      h(
        "tr",
        {},
        h("td", { class: "id" }, q.call_id),
        h("td", {}, route(q.route)),
        h("td", { class: "num" }, duration(q.waiting_s)),
        h("td", { class: "num" }, duration(q.limit_s)),
      ),
    ),
    "No call waiting for a team.",
  );
  const line = table(
    "Clinicians on the line",
    ["Call", "Clinician", "On the line", "Disposition"],
    v.on_the_line.map((e) =>
      h(
        "tr",
        {},
        h("td", { class: "id" }, e.call_id),
        h("td", {}, e.clinician_id),
        h("td", { class: "num" }, duration(e.on_line_s)),
        h("td", {}, words(e.disposition)),
      ),
    ),
    "No clinician on the line.",
  );
  const teams = table(
    "Teams",
    ["Team", "Status", "In status", "Call"],
    v.teams.map((t) =>
      h(
        "tr",
        { "data-team": t.team_id },
        h("td", { class: "id" }, t.team_id),
        h("td", {}, h("span", { class: `status status-${t.status}` }, words(t.status))),
        h("td", { class: "num" }, duration(t.in_status_s)),
        h("td", {}, t.call_id || "—"),
      ),
    ),
    "No teams yet.",
  );
  const consults = table(
    "Consults waiting",
    ["Consult", "From", "Urgency", "Waiting"],
    v.consults.map((c) =>
      h(
        "tr",
        {},
        h("td", { class: "id" }, c.consult_id),
        h("td", {}, words(c.requested_by)),
        h("td", {}, c.urgency),
        h("td", { class: "num" }, duration(c.waiting_s)),
      ),
    ),
    "No consult waiting.",
  );
  const fallbacks = table(
    "Fallbacks to police",
    ["Call", "Route", "Reason", "At"],
    v.fallbacks.map((f) =>
      h(
        "tr",
        {},
        h("td", { class: "id" }, f.call_id),
        h("td", {}, route(f.route)),
        h("td", {}, words(f.reason)),
        h("td", {}, clock(f.at)),
      ),
    ),
    "No fallbacks.",
  );
  const backups = table(
    "Backup requests",
    ["Call", "Team", "At"],
    v.backups.map((b) =>
      h("tr", {}, h("td", { class: "id" }, b.call_id), h("td", {}, b.team_id || "—"), h("td", {}, clock(b.at))),
    ),
    "No backup requests.",
  );
  return [
    alerts,
    h("div", { class: "grid" }, h("div", { class: "wide" }, calls), queue, line, teams, consults, fallbacks, backups),
  ];
}

// --- team (the responder app) -------------------------------------------------------------

function renderTeam(v) {
  const a = v.assignment;
  const card = a
    ? h(
        "section",
        { class: "panel assignment", "data-call": a.call_id },
        h("h2", {}, "Assignment"),
        h(
          "dl",
          {},
          h("dt", {}, "Call"), h("dd", { class: "id" }, a.call_id),
          h("dt", {}, "Route"), h("dd", {}, route(a.route)),
          h("dt", {}, "Type"), h("dd", {}, words(a.call_type)),
          h("dt", {}, "Where"), h("dd", {}, a.address || "—"),
          h("dt", {}, "Language"), h("dd", {}, a.language + (a.interpreter ? ` (interpreter: ${a.interpreter})` : "")),
          h("dt", {}, "Safety"),
          h(
            "dd",
            { class: a.weapon_involved || a.violence_reported ? "danger" : "" },
            [a.weapon_involved ? "weapon reported" : null, a.violence_reported ? "violence reported" : null, a.safety_notes]
              .filter(Boolean)
              .join("; ") || "nothing reported",
          ),
          h("dt", {}, "Assigned"), h("dd", {}, clock(a.assigned_at)),
        ),
      )
    : h("section", { class: "panel assignment none" }, h("h2", {}, "Assignment"), h("p", { class: "empty" }, "No call assigned."));
  const status = h(
    "section",
    { class: "panel team-status" },
    h("span", { class: `status big status-${v.status}`, id: "team-status" }, words(v.status)),
    h("span", { class: "sub" }, `for ${duration(v.in_status_s)}`),
  );
  const buttons = h(
    "section",
    { class: "buttons" },
    Object.entries(ACTIONS).map(([action, label]) =>
      h(
        "button",
        {
          type: "button",
          class: `action action-${action}`,
          "data-action": action,
          disabled: !v.actions.includes(action),
          onclick: () => post("/api/team/status", v.call_id ? { action, call_id: v.call_id } : { action }),
        },
        label,
      ),
    ),
  );
  consultForm(true);
  return [status, card, buttons];
}

// --- care navigator -----------------------------------------------------------------------

let chosenCase = null;

function outcomeForm() {
  let form = document.getElementById("outcome-form");
  if (form) return form;
  form = h(
    "form",
    { id: "outcome-form", class: "panel outcome", hidden: true, novalidate: true },
    h("h2", {}, "Record an outcome for ", h("span", { id: "outcome-case", class: "id" })),
    h(
      "label",
      {},
      "Outcome ",
      h(
        "select",
        { name: "outcome", id: "outcome" },
        h("option", { value: "" }, "choose…"),
        ["reached", "connected_to_care", "declined", "unable_to_reach"].map((o) => h("option", { value: o }, words(o))),
      ),
    ),
    h("label", {}, "Care connected to (optional) ", h("input", { name: "care_kind", id: "care-kind", maxlength: "100" })),
    h("p", { class: "field-error", id: "outcome-error", role: "alert" }),
    h("button", { type: "submit" }, "Record outcome"),
    h("button", { type: "button", class: "secondary", onclick: () => { form.hidden = true; chosenCase = null; } }, "Cancel"),
  );
  form.addEventListener("change", () => {
    document.getElementById("outcome-error").textContent = "";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const outcome = form.elements.outcome.value;
    const error = document.getElementById("outcome-error");
    if (!outcome) {
      error.textContent = "Choose an outcome.";
      form.elements.outcome.focus();
      return;
    }
    error.textContent = "";
    const sent = await post("/api/followup/outcome", {
      case_id: chosenCase,
      outcome,
      care_kind: form.elements.care_kind.value.trim(),
    });
    if (sent) {
      form.reset();
      form.hidden = true;
      chosenCase = null;
    }
  });
  app.after(form);
  return form;
}

function renderNavigator(v) {
  const form = outcomeForm();
  return [
    table(
      "Follow-up tasks",
      ["Case", "Contact", "Released", "Deadline", "Attempts", ""],
      v.tasks.map((t) =>
        h(
          "tr",
          { "data-case": t.case_id, class: t.overdue ? "late" : t.at_risk ? "risk" : "" },
          h("td", { class: "id" }, t.case_id),
          h("td", {}, t.pilot ? route(t.pilot) : "—"),
          h("td", {}, t.released_at ? clock(t.released_at) : h("span", { class: "sub" }, `not yet (${clock(t.release_at)})`)),
          h(
            "td",
            {},
            clock(t.deadline),
            h(
              "div",
              { class: "sub" },
              t.overdue ? "overdue" : `in ${duration(t.deadline_in_s)}`,
              t.at_risk ? " · at risk" : "",
            ),
          ),
          h("td", { class: "num" }, `${t.attempts_made}` + (t.last_outcome ? ` (last: ${words(t.last_outcome)})` : "")),
          h(
            "td",
            {},
            h(
              "button",
              {
                type: "button",
                "data-record": t.case_id,
                onclick: () => {
                  chosenCase = t.case_id;
                  document.getElementById("outcome-case").textContent = t.case_id;
                  form.hidden = false;
                  form.elements.outcome.focus();
                },
              },
              "Record outcome",
            ),
          ),
        ),
      ),
      "No follow-up task open.",
    ),
  ];
}

// --- CCD clinician ------------------------------------------------------------------------

let assessedCall = null;

function yesNo(name, label, extra) {
  return h(
    "fieldset",
    { class: "question", "data-field": name, id: `${name}-row`, ...(extra || {}) },
    h("legend", {}, h("span", { class: "qid" }, name.toUpperCase()), ` ${label}`),
    ["yes", "no"].map((answer) =>
      h("label", { class: "choice" }, h("input", { type: "radio", name, value: answer, id: `${name}-${answer}` }), answer),
    ),
  );
}

function radioValue(form, name) {
  const checked = form.querySelector(`input[name="${name}"]:checked`);
  return checked ? checked.value : null;
}

function subForm(id, title, fields, button, collect, url) {
  const form = h(
    "form",
    { id, class: "subform", novalidate: true },
    h("h3", {}, title),
    fields,
    h("p", { class: "field-error", role: "alert" }),
    h("button", { type: "submit" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (await post(url, { call_id: assessedCall, ...collect(form) }, form)) form.reset();
    form.dispatchEvent(new Event("change"));
  });
  return form;
}

function screenerForm() {
  const q = Object.fromEntries(CONFIG.questions.map((x) => [x.id, x.label]));
  const afterQ2 = h("div", { id: "after-q2", class: "follow-up", hidden: true }, ["q3", "q4", "q5"].map((n) => yesNo(n, q[n])));
  const when = h(
    "fieldset",
    { class: "question follow-up", "data-field": "q6_when", id: "q6-when-row", hidden: true },
    h("legend", {}, "When did it happen?"),
    CONFIG.q6_when.map((w) =>
      h("label", { class: "choice" }, h("input", { type: "radio", name: "q6_when", value: w, id: `q6-when-${w}` }), words(w)),
    ),
  );
  const form = subForm(
    "screener-form",
    "C-SSRS screener",
    [yesNo("q1", q.q1), yesNo("q2", q.q2), afterQ2, yesNo("q6", q.q6), when],
    "Record screening",
    (f) => {
      // Only what the screener asked: Q3–Q5 after a yes to Q2, the timing after a yes to Q6.
      const answers = {};
      for (const name of ["q1", "q2", "q6"]) answers[name] = toBool(radioValue(f, name));
      if (!afterQ2.hidden) for (const name of ["q3", "q4", "q5"]) answers[name] = toBool(radioValue(f, name));
      if (!when.hidden) answers.q6_when = radioValue(f, "q6_when");
      return { answers };
    },
    "/api/ccd/screened",
  );
  form.addEventListener("change", () => {
    afterQ2.hidden = radioValue(form, "q2") !== "yes";
    when.hidden = radioValue(form, "q6") !== "yes";
    // A question no longer asked keeps no answer.
    if (afterQ2.hidden) afterQ2.querySelectorAll("input").forEach((i) => { i.checked = false; });
    if (when.hidden) when.querySelectorAll("input").forEach((i) => { i.checked = false; });
  });
  return form;
}

const toBool = (value) => (value === "yes" ? true : value === "no" ? false : null);

function safetyPlanForm() {
  return subForm(
    "safety-plan-form",
    "Safety plan (Stanley-Brown)",
    [
      h(
        "fieldset",
        { class: "steps", "data-field": "steps" },
        h("legend", {}, "Steps completed with the person"),
        CONFIG.steps.map((step) =>
          h("label", { class: "check" }, h("input", { type: "checkbox", name: step.id, id: `step-${step.id}` }), step.label),
        ),
      ),
      h(
        "label",
        { "data-field": "record_ref" },
        "Record reference (optional) ",
        h("input", { name: "record_ref", id: "record-ref", maxlength: "128", autocomplete: "off", spellcheck: "false" }),
      ),
    ],
    "Record safety plan",
    (f) => ({
      steps: Object.fromEntries(CONFIG.steps.map((step) => [step.id, f.elements[step.id].checked])),
      record_ref: f.elements.record_ref.value.trim(),
    }),
    "/api/ccd/safety_plan",
  );
}

function referralForm() {
  return subForm(
    "referral-form",
    "Referral",
    [
      h(
        "label",
        {},
        "Resource ",
        h(
          "select",
          { name: "resource", id: "resource", "data-field": "resource" },
          h("option", { value: "" }, "choose…"),
          Object.entries(CONFIG.resources).map(([id, name]) => h("option", { value: id }, name)),
        ),
      ),
      h("label", { class: "check" }, h("input", { type: "checkbox", name: "warm_handoff", id: "warm-handoff" }), "Warm handoff (connected in person)"),
    ],
    "Record referral",
    (f) => ({ resource: f.elements.resource.value, warm_handoff: f.elements.warm_handoff.checked }),
    "/api/ccd/referral",
  );
}

function dispositionForm() {
  return subForm(
    "disposition-form",
    "Disposition",
    [
      h(
        "label",
        {},
        "Outcome of the call ",
        h(
          "select",
          { name: "disposition", id: "disposition", "data-field": "disposition" },
          h("option", { value: "" }, "choose…"),
          CONFIG.dispositions.map((d) => h("option", { value: d }, words(d))),
        ),
      ),
    ],
    "Record disposition",
    (f) => ({ disposition: f.elements.disposition.value }),
    "/api/ccd/disposition",
  );
}

function assessmentPanel() {
  let panel = document.getElementById("assessment");
  if (panel) return panel;
  panel = h(
    "section",
    { id: "assessment", class: "panel assessment", hidden: true },
    h(
      "h2",
      {},
      "Assessment of call ",
      h("span", { id: "assessed-call", class: "id" }),
      h("button", { type: "button", class: "small secondary close", onclick: () => { panel.hidden = true; assessedCall = null; } }, "Close"),
    ),
    h("div", { class: "forms" }, screenerForm(), safetyPlanForm(), referralForm(), dispositionForm()),
  );
  app.after(panel);
  return panel;
}

function assess(callId) {
  const panel = assessmentPanel();
  if (assessedCall !== callId) panel.querySelectorAll("form").forEach((f) => { f.reset(); clearFieldError(f); f.dispatchEvent(new Event("change")); });
  assessedCall = callId;
  document.getElementById("assessed-call").textContent = callId;
  panel.hidden = false;
  panel.scrollIntoView({ block: "nearest" });
}

function renderClinician(v) {
  assessmentPanel();
  const calls = table(
    "Calls for a clinician",
    ["Call", "Route", "Clinician", "Disposition", "Age", ""],
    v.calls.map((c) =>
      h(
        "tr",
        { "data-call": c.call_id, class: c.mine ? "mine" : "" },
        h("td", { class: "id" }, c.call_id, h("div", { class: "sub" }, words(c.call_type))),
        h(
          "td",
          {},
          route(c.route),
          c.rules_route ? h("div", { class: "sub overruled" }, "rules chose ", route(c.rules_route)) : null,
          c.team_id ? h("div", { class: "sub" }, `${c.team_id} ${words(c.dispatch)}`) : null,
        ),
        h(
          "td",
          {},
          c.clinician_id ? (c.mine ? "you" : c.clinician_id) : h("span", { class: "sub" }, "nobody yet"),
          c.clinician_id ? h("div", { class: "sub" }, c.on_the_line ? `on the line ${duration(c.engaged_s)}` : "off the line") : null,
        ),
        h("td", {}, words(c.disposition)),
        h("td", { class: "num" }, duration(c.age_s)),
        h(
          "td",
          { class: "row-actions" },
          c.mine
            ? h("button", { type: "button", "data-assess": c.call_id, onclick: () => assess(c.call_id) }, "Assess")
            : h(
                "button",
                { type: "button", "data-engage": c.call_id, onclick: () => post("/api/ccd/engage", { call_id: c.call_id }) },
                "Engage",
              ),
        ),
      ),
    ),
    "No call for a clinician.",
  );
  const consults = table(
    "Consult queue",
    ["Consult", "From", "Urgency", "Waiting", ""],
    v.consults.map((c) =>
      h(
        "tr",
        { "data-consult": c.consult_id, class: c.overdue ? "late" : "" },
        h("td", { class: "id" }, c.consult_id, h("div", { class: "sub" }, [c.call_id ? `call ${c.call_id}` : null, c.team_id].filter(Boolean).join(" · "))),
        h("td", {}, words(c.requested_by)),
        h("td", {}, h("span", { class: `urgency urgency-${c.urgency}` }, c.urgency)),
        h(
          "td",
          { class: "num" },
          c.waiting ? duration(c.waiting_s) : "answered",
          h("div", { class: "sub" }, c.waiting ? `target ${duration(c.target_s)}${c.overdue ? " · overdue" : ""}` : clock(c.answered_at)),
        ),
        h(
          "td",
          { class: "row-actions" },
          c.waiting
            ? h("button", { type: "button", "data-answer": c.consult_id, onclick: () => post("/api/consult/answer", { consult_id: c.consult_id }) }, "Answer")
            : null,
          h(
            "button",
            { type: "button", class: "secondary", "data-close": c.consult_id, onclick: () => post("/api/consult/close", { consult_id: c.consult_id }) },
            "Close",
          ),
        ),
      ),
    ),
    "No consult open.",
  );
  return [h("div", { class: "grid" }, h("div", { class: "wide" }, calls), h("div", { class: "wide" }, consults))];
}

// --- analyst ------------------------------------------------------------------------------

const LINKS = [
  ["reports_url", "Monthly reports", "the monthly HEART report per pilot"],
  ["grafana_url", "Grafana", "the stages' dashboards"],
  ["prometheus_url", "Prometheus", "the metrics behind the dashboards"],
];

function links(configured) {
  return h(
    "section",
    { class: "panel links", "data-panel": "Reports and metrics" },
    h("h2", {}, "Reports and metrics"),
    h(
      "ul",
      {},
      LINKS.map(([key, name, what]) =>
        h(
          "li",
          { "data-link": key },
          configured[key]
            ? h("a", { href: configured[key], rel: "noopener noreferrer", target: "_blank" }, name)
            : h("span", { class: "muted" }, name),
          h("span", { class: "sub" }, configured[key] ? ` — ${what}` : ` — not configured: set links.${key} in the console settings`),
        ),
      ),
    ),
  );
}

function renderAnalyst(v) {
  const row = (label, n, cls) => h("tr", cls ? { class: cls } : {}, h("td", {}, label), h("td", { class: "num" }, String(n)));
  // A breakdown's badge and last row are its total, so that the parts visibly add up.
  const breakdown = (caption, entries) => {
    const parts = Object.entries(entries);
    const total = parts.reduce((sum, [, n]) => sum + n, 0);
    const rows = parts.map(([k, n]) => row(words(k), n));
    if (rows.length) rows.push(row("total", total, "total"));
    return table(caption, ["", "Count"], rows, "None.", total);
  };
  return [
    h("div", { class: "grid" }, [
      breakdown("Open calls by route", v.open_calls_by_route),
      breakdown("Teams by status", v.teams_by_status),
      breakdown("Alerts by kind", v.alerts_by_kind),
      links(v.links || {}),
      // Different things, not parts of one whole: no total.
      table(
        "Work in hand",
        ["", "Count"],
        [
          row("open calls", v.open_calls),
          row("of which a clinician overruled the rules", v.overruled_open_calls, "part"),
          row("of which queued for a team", v.queued, "part"),
          row("follow-ups open", v.followups_open),
          row("consults waiting", v.consults_waiting),
        ],
        "",
        null,
      ),
    ]),
  ];
}

const RENDER = {
  board: renderBoard,
  team: renderTeam,
  navigator: renderNavigator,
  analyst: renderAnalyst,
  clinician: renderClinician,
};

function setFeed(state) {
  const label = { live: "live", connecting: "catching up…", reconnecting: "reconnecting…" }[state] || state;
  feed.textContent = label;
  feed.className = `feed feed-${state}`;
  app.classList.toggle("stale", state !== "live");
}

// The id of the update the page shows: the Kafka positions it reflects. The browser sends
// it back (Last-Event-ID) when it reconnects, so the console resends only what changed.
let shownId = "";

function connect() {
  const since = shownId ? `&since=${encodeURIComponent(shownId)}` : "";
  const source = new EventSource(`/api/stream?page=${encodeURIComponent(PAGE)}${since}`);
  // Every update is the whole view, so only the newest of those that arrived while the
  // page was busy is drawn: a busy board (100 calls a second) would otherwise queue
  // updates faster than it draws them and fall ever further behind.
  let pending = null;
  source.onmessage = (event) => {
    if (pending === null) setTimeout(draw, 0);
    pending = event;
  };
  const draw = () => {
    const event = pending;
    pending = null;
    const view = JSON.parse(event.data);
    setFeed(view.feed);
    app.replaceChildren(...RENDER[PAGE](view));
    shownId = event.lastEventId;
    app.dataset.updated = shownId;
  };
  // Sent instead of a view when the page already shows the current one.
  source.addEventListener("feed", (event) => setFeed(event.data));
  source.onerror = () => {
    setFeed("reconnecting");
    // The browser retries by itself, unless the console refused the stream (a restart
    // signs everyone out): then a new stream starts from what the page shows.
    if (source.readyState === EventSource.CLOSED) setTimeout(reopen, 2000);
  };
}

async function reopen() {
  let response;
  try {
    response = await fetch(`/api/view?page=${encodeURIComponent(PAGE)}`);
  } catch (err) {
    setTimeout(reopen, 2000);
    return;
  }
  if (response.status === 401) window.location.assign("/signin");
  else connect();
}

connect();
