// HEART console: one live stream per page (Server-Sent Events), rendered as plain DOM.
// Board text is always set as text, never as HTML.
"use strict";

const app = document.getElementById("app");
const PAGE = app.dataset.page;
const CSRF = app.dataset.csrf;
const ACTIONS = JSON.parse(app.dataset.actions || "{}");
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

function table(caption, headers, rows, empty) {
  return h(
    "section",
    { class: "panel", "data-panel": caption },
    h("h2", {}, caption, h("span", { class: "count" }, String(rows.length))),
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

async function post(url, body) {
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
  if (!response.ok) {
    showMessage(data.error || `Refused (${response.status}).`, "error");
    return null;
  }
  if (data.warning) showMessage(data.warning, "warning");
  else showMessage("Sent. The page updates when the event comes back from Kafka.", "ok");
  return data;
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
  const calls = table(
    "Open calls",
    ["Call", "Route", "Reasons", "Team", "Dispatch", "Age"],
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
          onclick: () => post("/api/team/status", { action }),
        },
        label,
      ),
    ),
  );
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

// --- analyst ------------------------------------------------------------------------------

function renderAnalyst(v) {
  const counts = (caption, entries) =>
    table(caption, ["", "Count"], Object.entries(entries).map(([k, n]) => h("tr", {}, h("td", {}, words(k)), h("td", { class: "num" }, String(n)))), "None.");
  return [
    h("div", { class: "grid" }, [
      counts("Open calls by route", v.open_calls_by_route),
      counts("Teams by status", v.teams_by_status),
      counts("Alerts by kind", v.alerts_by_kind),
      counts("Work in hand", {
        "open calls": v.open_calls,
        "of which a clinician overruled the rules": v.overruled_open_calls,
        "calls queued for a team": v.queued,
        "follow-ups open": v.followups_open,
        "consults waiting": v.consults_waiting,
      }),
    ]),
  ];
}

const RENDER = { board: renderBoard, team: renderTeam, navigator: renderNavigator, analyst: renderAnalyst };

function setFeed(state) {
  const label = { live: "live", connecting: "catching up…", reconnecting: "reconnecting…" }[state] || state;
  feed.textContent = label;
  feed.className = `feed feed-${state}`;
  app.classList.toggle("stale", state !== "live");
}

function connect() {
  const source = new EventSource(`/api/stream?page=${encodeURIComponent(PAGE)}`);
  source.onmessage = (event) => {
    const view = JSON.parse(event.data);
    setFeed(view.feed);
    app.replaceChildren(...RENDER[PAGE](view));
    app.dataset.updated = event.lastEventId;
  };
  source.onerror = () => setFeed("reconnecting");
}

connect();
