"""The side pane: the selected incident in full, recommendations, or help."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from cadterm.domain.recommend import BY_SECTOR, BY_TRAVEL_TIME, UNRANKED, Recommendation
from cadterm.domain.timers import DEFAULT_POLICY, TimerPolicy, attendance_alert, format_age
from cadterm.protocol.domain import Incident
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time

from .safe_text import clean, clean_line

__all__ = ["DetailPane", "incident_text", "recommendation_text"]


def incident_text(
    incident: Incident, state: DispatchState, now: datetime, policy: TimerPolicy = DEFAULT_POLICY
) -> Text:
    """The whole incident as plain text (no markup is ever interpreted)."""
    alert = attendance_alert(incident, state, now, policy)
    target = f" / target {format_age(alert.target)}" if alert.target else ""
    out = Text()
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
    if incident.closing_code:
        out.append(f"Closed: {incident.closing_code}\n")
    out.append("Chronology:\n", "bold")
    for entry in incident.chronology:
        at = known_time(entry.at)
        when = at.astimezone().strftime("%H:%M:%S") if at else "--:--:--"
        out.append(f"  {when} {clean_line(entry.operator)}@{clean_line(entry.workstation)}: ")
        out.append(clean(entry.text) + "\n")
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
