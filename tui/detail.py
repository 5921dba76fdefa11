"""The side pane: the selected incident in full, recommendations, search matches, a
unit's history, the safety checks, or help."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from cadterm.domain.duplicates import DuplicatePolicy
from cadterm.domain.recommend import BY_SECTOR, BY_TRAVEL_TIME, UNRANKED, Recommendation
from cadterm.domain.timers import (
    DEFAULT_POLICY,
    SafetyCheck,
    TimerPolicy,
    attendance_alert,
    format_age,
)
from cadterm.protocol.answers import UnitHistory, UnitHistoryEntry
from cadterm.protocol.domain import Incident, Unit
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time

from .board import PROVISIONAL_MARK
from .duplicate_offers import incident_offers
from .incident_queue import short_reference
from .safe_text import clean, clean_line
from .search_results import SearchResults

__all__ = [
    "DetailPane",
    "closed_incident_text",
    "incident_text",
    "picture_unit_history_text",
    "recommendation_text",
    "safety_text",
    "search_text",
    "unit_history_text",
]

#: Marks the current search match and overdue safety checks: it reads without colour.
CURRENT = ">"
OVERDUE = "!!"
#: Search matches listed at once, round the current one.
SEARCH_LINES = 60
#: An incident's status in a list, in at most 8 characters.
_STATUS_WORD = {"open": "OPEN", "resourced": "RES", "at_scene": "SCENE", "closed": "CLOSED"}


def _day_and_time(moment: object) -> str:
    at = known_time(moment)
    return at.astimezone().strftime("%d %b %H:%M") if at else "an unknown time"


def _clock(moment: object) -> str:
    at = known_time(moment)
    return at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"


def incident_text(
    incident: Incident,
    state: DispatchState,
    now: datetime,
    policy: TimerPolicy = DEFAULT_POLICY,
    duplicates: DuplicatePolicy | None = None,
    *,
    confirmed_seq: int | None = None,
) -> Text:
    """The whole incident as plain text (no markup is ever interpreted).

    `duplicates` says which open incidents it is listed as a possible duplicate of.
    `confirmed_seq`: the last event a backend sent; chronology entries after it were
    written on this console while CAD was down, and are marked provisional (``~``).
    """
    alert = attendance_alert(incident, state, now, policy)
    target = f" / target {format_age(alert.target)}" if alert.target else ""
    out = Text()
    provisional = confirmed_seq is not None and any(
        entry.seq > confirmed_seq for entry in incident.chronology
    )
    if provisional:
        out.append(
            f"{PROVISIONAL_MARK} PROVISIONAL: changed on this console while CAD was down; "
            "a backend has not recorded it yet\n",
            "bold",
        )
    out.append(
        f"{incident.reference}  grade {int(incident.grade)} {incident.grade.label}\n", "bold"
    )
    out.append(
        f"{clean_line(incident.incident_type)}  {incident.status.value.replace('_', ' ').upper()}"
    )
    out.append(f"  age {format_age(alert.age)}{target} ({alert.level.value})\n")
    location = incident.location
    out.append(f"At: {clean_line(location.address)}")
    if location.sector:
        out.append(f"  [sector {clean_line(location.sector)}]")
    if location.position:
        out.append(f"  ({location.position.lat:.5f}, {location.position.lon:.5f})")
    else:
        out.append("  (unverified: no coordinates)")
    out.append(f"\nSource: {incident.source.value}")
    if incident.caller:
        caller = incident.caller
        bits = [clean_line(x) for x in (caller.name, caller.phone, caller.relationship) if x]
        out.append(f"  Caller: {', '.join(bits) or '-'}")
    out.append(f"\nUnits: {', '.join(incident.assigned) or 'none assigned'}\n")
    if incident.description:
        out.append(f"{clean(incident.description)}\n")
    risk = {k: v for k, v in incident.risk.model_dump().items() if v}
    if risk:
        out.append("THRIVE:\n", "bold")
        for heading, words in risk.items():
            out.append(f"  {heading}: {clean_line(words)}\n")
    if incident.links:
        links = ", ".join(f"{link.relation.value} {link.reference}" for link in incident.links)
        out.append(f"Links: {links}\n")
    for offer in incident_offers(incident, state, duplicates)[:2]:
        out.append(f"Possible duplicate of {offer.reference}: {offer.summary}", "bold")
        out.append(" (Ctrl+L links)\n")
    if incident.closing_code:
        out.append(f"Closed: {incident.closing_code}\n")
    out.append("Chronology:\n", "bold")
    for entry in incident.chronology:
        at = known_time(entry.at)
        when = at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"
        mark = PROVISIONAL_MARK if confirmed_seq is not None and entry.seq > confirmed_seq else " "
        out.append(f" {mark}{when} {clean_line(entry.operator)}@{clean_line(entry.workstation)}: ")
        out.append(clean(entry.text))
        taken = known_time(entry.taken_at) if entry.taken_at is not None else None
        if taken is not None:
            # Back-entered: typed in after the fact (a journal sent late, a paper log).
            out.append(f" [BACK-ENTERED: happened {taken.astimezone():%H:%M:%S}]")
        out.append("\n")
    return out


def closed_incident_text(
    incident: Incident, state: DispatchState, now: datetime, policy: TimerPolicy = DEFAULT_POLICY
) -> Text:
    """A closed incident found by a search, headed as what it is: a record, read only."""
    out = Text("CLOSED: read only (reopen with: ro REF REASON)\n", style="bold")
    out.append_text(incident_text(incident, state, now, policy))
    return out


def search_text(results: SearchResults) -> Text:
    """The matches of a search, the current one marked ``>`` (and in bold)."""
    out = Text(f"Find {clean_line(results.text)!r}: {results.position}\n", style="bold")
    # A window of the list round the current match: a common word can match thousands.
    first = max(0, min(results.index - SEARCH_LINES // 2, len(results.matches) - SEARCH_LINES))
    shown = results.matches[first : first + SEARCH_LINES]
    if first:
        out.append(f"  ... {first} before\n")
    for number, match in enumerate(shown, first + 1):
        incident = match.incident
        current = number - 1 == results.index
        status = "ARCHIVED" if match.archived else _STATUS_WORD.get(incident.status.value, "?")
        line = (
            f"{CURRENT if current else ' '}{number:>3} {short_reference(incident.reference):<10} "
            f"{status:<8} g{int(incident.grade)} {clean_line(incident.incident_type)[:9]:<9} "
            f"{clean_line(incident.location.address)}"
        )
        caller = incident.caller
        if caller is not None and (caller.name or caller.phone):
            who = " ".join(clean_line(x) for x in (caller.name, caller.phone) if x)
            line += f"\n     caller {who}"
        out.append(line + "\n", style="bold" if current else "")
    after = len(results.matches) - first - len(shown)
    if after > 0:
        out.append(f"  ... {after} after\n")
    if not results.matches:
        out.append("  nothing matches\n")
    if results.history == "searching":
        out.append("Asking the server for closed incidents...\n")
    elif results.history != "done":
        out.append(f"Closed incidents not searched: {clean_line(results.history)}\n")
    elif results.more_archived:
        out.append("More closed incidents match: add a word to narrow it\n")
    out.append("Ctrl+N next, Ctrl+P previous, Enter on an empty line opens it\n")
    return out


def _collapsed(entries: Sequence[UnitHistoryEntry]) -> list[tuple[UnitHistoryEntry, int]]:
    """Entries with each run of position fixes folded into its last one, and its count."""
    out: list[tuple[UnitHistoryEntry, int]] = []
    for entry in entries:
        if entry.kind == "located" and out and out[-1][0].kind == "located":
            out[-1] = (entry, out[-1][1] + 1)
        else:
            out.append((entry, 1))
    return out


def unit_history_text(history: UnitHistory, unit: Unit | None) -> Text:
    """A unit's shift as a chronology, oldest first; runs of fixes shown as one line."""
    out = Text(f"Unit history {clean_line(history.callsign)}", style="bold")
    if unit is not None:
        now = f"{int(unit.state)} {unit.state.label.lower()}"
        on = f" on {unit.incident}" if unit.incident else ""
        out.append(f"  (now {now}{on})", style="bold")
    out.append(f"\nSince {_day_and_time(history.since)}")
    if history.complete_from is not None:
        out.append(f" (older events pruned: from {_day_and_time(history.complete_from)})")
    out.append("\nIncidents: " + (", ".join(history.incidents) or "none") + "\n")
    if history.truncated:
        out.append(f"(only the newest {len(history.entries)} entries)\n")
    for entry, count in _collapsed(history.entries):
        text = clean_line(entry.text)
        if count > 1 and entry.position is not None:
            text = f"{count} fixes, last {entry.position.lat:.5f},{entry.position.lon:.5f}"
        who = f"{clean_line(entry.operator)}@{clean_line(entry.workstation)}"
        out.append(f"  {_clock(entry.at)} {text}  [{who}]\n")
    if not history.entries:
        out.append("  nothing recorded for this unit in that time\n")
    return out


def picture_unit_history_text(callsign: str, state: DispatchState, why: str) -> Text:
    """What the console's own picture tells of a unit, for when the server cannot say.

    Only the chronologies of incidents still in the picture name the unit, so this is
    headed as the partial account it is.
    """
    unit = state.units.get(callsign)
    out = Text(f"Unit history {clean_line(callsign)}: from this console's picture\n", "bold")
    out.append(f"(the server's history was not read: {clean_line(why)};\n")
    out.append(" only incidents still in the picture, no positions)\n")
    if unit is not None:
        on = f" on {unit.incident}" if unit.incident else ""
        out.append(f"Now {int(unit.state)} {unit.state.label.lower()}{on}\n")
    prefix = f"{callsign} "
    lines = sorted(
        (entry.at, incident.reference, entry.text)
        for incident in state.incidents.values()
        for entry in incident.chronology
        if entry.text.startswith(prefix) and known_time(entry.at) is not None
    )
    for at, reference, text in lines:
        out.append(f"  {_clock(at)} {short_reference(reference)} {clean_line(text)}\n")
    if not lines:
        out.append("  no incident in the picture names this unit\n")
    return out


def safety_text(checks: Sequence[SafetyCheck], now: datetime) -> Text:
    """Units at scene and their safety-check countdowns, overdue first, marked ``!!``."""
    overdue = sum(1 for check in checks if check.overdue)
    out = Text(f"Safety checks: {len(checks)} running, {overdue} overdue\n", style="bold")
    if checks:
        out.append(f"   {'UNIT':<8} {'INCIDENT':<10} {'TYPE':<9} EVERY NEXT CHECK\n")
    for check in checks:
        where = short_reference(check.reference) if check.reference else "-"
        kind = clean_line(check.incident_type or "")[:9]
        if check.remaining is None:
            when = "DUE (last update unknown)"
        elif check.overdue:
            when = f"OVERDUE {format_age(-check.remaining)}"
        else:
            when = f"due in {format_age(check.remaining)}"
        mark = OVERDUE if check.overdue else "  "
        callsign = clean_line(check.callsign)[:8]
        every = format_age(check.every)
        line = f"{mark} {callsign:<8} {where:<10} {kind:<9} {every:>5} {when}"
        out.append(line + "\n", style="bold" if check.overdue else "")
    if not checks:
        out.append("  no unit is at scene\n")
    out.append("Check a unit in with: ok CALLSIGN [what they said]\n")
    return out


def recommendation_text(reference: str, picks: Sequence[Recommendation]) -> Text:
    """Recommendations for an incident, best first, each with its reason.

    Units listed with no basis for an order (no location and no sector) are headed as
    what they are, units that could go, so nobody reads the first as the best.
    """
    basis = picks[0].basis if picks else BY_TRAVEL_TIME
    if basis == UNRANKED:
        heading = f"Units that could go to {reference} (no location or sector: not ranked):"
    elif basis == BY_SECTOR:
        heading = f"Recommended for {reference} (by sector: it has no location):"
    else:
        heading = f"Recommended for {reference}:"
    out = Text(heading + "\n", style="bold")
    if not picks:
        out.append("  no deployable unit has what this incident needs\n")
    for number, pick in enumerate(picks, 1):
        stale = " (STALE FIX)" if pick.stale else ""
        out.append(f"  {number}. {pick.callsign:<8} {clean_line(pick.reason)}{stale}\n")
    out.append("Assign with: a CALLSIGN (Tab completes the first pick)\n")
    return out


class DetailPane(VerticalScroll):
    """A scrollable pane of text; hidden until asked for."""

    DEFAULT_CSS = """
    DetailPane {
        width: 1fr;
        min-width: 30;
        border-left: vkey $panel;
        padding: 0 1;
        display: none;
    }
    DetailPane.-shown { display: block; }
    """

    def compose(self):
        yield Static(id="detail-body")

    _text: Text | None = None

    def show_text(self, text: Text) -> None:
        """Show `text` and open the pane (the same text again costs nothing)."""
        if text != self._text:
            self._text = text
            self.query_one("#detail-body", Static).update(text)
        self.add_class("-shown")

    @property
    def shown(self) -> bool:
        """Whether the pane is open."""
        return self.has_class("-shown")

    def hide(self) -> None:
        """Close the pane."""
        self.remove_class("-shown")
