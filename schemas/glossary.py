"""The terms every figure is reported in, each with one meaning, shared by the monthly
report, the what-if, the terminal summaries, the README and the metrics' help.

Per pilot, the parts add up: ``eligible = reached + missed + other``, where ``other`` is
named on each page (for CCD: calls that needed someone in person; for a team pilot: calls
still waiting for a team when the data ends, resolved by phone instead, or sent to police
or another team).
"""

from __future__ import annotations

#: Term -> its one definition. Order is the order a glossary shows them in.
GLOSSARY: dict[str, str] = {
    "decided": "Calls with a triage decision (a re-decided call counts once, as last decided).",
    "matched": (
        "Calls whose type is one of the pilot's call types, whatever the hours, place or risk."
    ),
    "eligible": (
        "Matched calls the call itself does not keep the pilot from (a weapon or violence "
        "keeps CRT off): the pilot would take them given its hours, its service area and a "
        "free team."
    ),
    "missed": (
        "Eligible calls the pilot did not take because of coverage, capacity or an outage, "
        "counted under the first reason: outside_hours, outside_service_area, unknown_beat, "
        "pilot_disabled, no_team_free, stale (decided too late to act on: a stage was "
        "paused or down)."
    ),
    "reached": (
        "Eligible calls the pilot took. CCD: resolved by phone by a clinician (route ccd). "
        "CRT and CoR: a team was assigned. Care Navigation: a follow-up was scheduled."
    ),
    "team calls": (
        "Eligible calls inside a team pilot's hours and area, which it sends a team to: "
        "what a number of teams on shift can reach (heart staffing's target counts these)."
    ),
    "resolved by phone": "Calls a CCD clinician closed without sending anyone (route ccd).",
    "HEART handled": "Calls resolved by phone or given a CRT or CoR team, each call once.",
    "follow-up completed": (
        "A follow-up that reached the person (reached, connected to care or declined), "
        "counted in the month the follow-up was scheduled."
    ),
    "engaged": (
        "Calls a CCD clinician joined (a ccd.engaged event), on a ccd route or on the line "
        "of another route; each call once, in the month the call came in."
    ),
    "risk level": (
        "The C-SSRS screener's triage level of a screening: high (Q4 or Q5 yes, or "
        "suicidal behaviour within the past 3 months), moderate (Q3 yes, or behaviour "
        "longer ago), low (only Q1 and/or Q2 yes), none (all no). A screening missing an "
        "answer the screener requires has no level and is not counted."
    ),
    "warm handoff": (
        "A referral in which the clinician connected the person to the resource "
        "themselves, rather than giving its details."
    ),
    "override": (
        "A call a clinician's disposition put on another route than the policy's rules "
        "chose, counted by direction (rules route\u2192route in force), as last decided."
    ),
    "answered within target": (
        "Consults a clinician answered no later than the policy's target for their "
        "urgency after the request; its share is of the consults requested, counted in the "
        "month requested."
    ),
    "on the line": (
        "A clinician's time on an engaged call before the responders arrived: from the "
        "first ccd.engaged to the first on-scene report, for calls that got one after the "
        "clinician joined."
    ),
    "partial month": (
        "A month the data covers only in part: its figures are for the days shown, not the "
        "whole month."
    ),
}
