"""The journal view (F7), which is also where the room's record is put right after CAD.

Commands typed while no backend answered are replayed in order when one does. Those
the server then refuses (another console sent the unit elsewhere meanwhile) are listed
here, each with what this console did, why it was refused, what the server holds now,
and the choices: apply anyway, adapt, withdraw with a reason, or set aside. Below them:
what still waits to be sent, incidents two consoles opened offline for what may be one
call, the provisional references and the log references they became, and the summary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.text import Text

from cadterm.client.journal import JournalEntry, JournalStatus
from cadterm.client.outage import OutageSummary
from cadterm.domain.reconcile import OfflinePair
from cadterm.protocol.commands import Command
from cadterm.protocol.fold import DispatchState

from .incident_queue import short_reference
from .safe_text import clean_line

__all__ = ["as_typed", "reconciliation_text", "server_holds"]

# The fields that say what a journalled command was about, in the order they read.
_TARGETS = ("reference", "callsign", "other", "grade", "incident_type", "state", "closing_code")


def as_typed(entry: JournalEntry) -> str:
    """A journal entry as the dispatcher would recognise it: what, on what, with what."""
    command = entry.command
    if command is None:  # stored by an older cadterm in a form no longer readable
        return f"{entry.kind} (unreadable)"
    parts = [command.type.replace("_", " ")]
    for name in _TARGETS:
        value = getattr(command, name, None)
        if value is not None:
            parts.append(short_reference(value) if name in ("reference", "other") else str(value))
    location = getattr(command, "location", None)
    if location is not None:
        parts.append(f"at {location.address}")
    text = getattr(command, "text", None) or getattr(command, "reason", None)
    if text:
        parts.append(repr(text if len(text) <= 40 else text[:39] + "…"))
    return clean_line(" ".join(parts))


def server_holds(command: Command | None, state: DispatchState) -> str:
    """What the server's picture holds now for what `command` was about."""
    if command is None:
        return "-"
    said = []
    reference = getattr(command, "reference", None)
    if reference:
        incident = state.incidents.get(reference)
        if incident is None:
            said.append(f"{short_reference(reference)} not in the picture")
        else:
            units = ",".join(incident.assigned) or "no units"
            said.append(
                f"{short_reference(reference)} {incident.status.value.replace('_', ' ')}, {units}"
            )
    callsign = getattr(command, "callsign", None)
    if callsign:
        unit = state.units.get(callsign)
        if unit is None:
            said.append(f"{callsign} not known")
        else:
            on = f" on {short_reference(unit.incident)}" if unit.incident else ""
            said.append(f"{callsign} {int(unit.state)} {unit.state.label.lower()}{on}")
    return clean_line("; ".join(said)) or "-"


def reconciliation_text(
    entries: Sequence[JournalEntry],
    confirmed: DispatchState,
    summary: OutageSummary,
    pairs: Sequence[OfflinePair] = (),
    reference_map: Mapping[str, str] | None = None,
) -> Text:
    """The journal view: refused entries to put right first, then what else to know."""
    rejected = [entry for entry in entries if entry.status == JournalStatus.REJECTED]
    waiting = [entry for entry in entries if entry.status == JournalStatus.PENDING]
    out = Text()
    if rejected:
        out.append(f"To put right: {len(rejected)} refused by the server\n", "bold")
    for number, entry in enumerate(rejected, 1):
        when = entry.issued_at.astimezone().strftime("%H:%M:%S")
        typed = "typed while CAD was down" if entry.waited else "typed"
        out.append(f"{number}. {as_typed(entry)}\n", "bold")
        out.append(f"   did:  {typed} {when}\n")
        why = entry.problem.detail if entry.problem else "unreadable"
        out.append(f"   why:  {clean_line(why)}\n")
        out.append(f"   now:  {server_holds(entry.command, confirmed)}\n")
        out.append(
            f"   j retry {number} (apply anyway) | j adapt {number} COMMAND | "
            f"j withdraw {number} REASON | j dismiss {number}\n"
        )
    if waiting:
        out.append(f"Waiting to send: {len(waiting)}\n", "bold")
        for entry in waiting:
            when = entry.issued_at.astimezone().strftime("%H:%M:%S")
            out.append(f"  {when} {as_typed(entry)}\n")
    if pairs:
        out.append("Opened offline on two consoles, maybe one call:\n", "bold")
        for pair in pairs:
            earlier, later = short_reference(pair.earlier), short_reference(pair.later)
            out.append(f"  {later} and {earlier}: {clean_line(pair.why)}\n")
            out.append(f"    link with: dup {later} {earlier}\n")
    if reference_map:
        out.append("Provisional references now on the log:\n", "bold")
        for provisional, reference in reference_map.items():
            out.append(f"  {clean_line(provisional)} is {reference}\n")
    if summary.total:
        out.append(f"While CAD was down: {summary.total} commands waited: ", "bold")
        out.append(summary.line() + "\n")
    if not (rejected or waiting or pairs or reference_map or summary.total):
        out.append("Journal: nothing pending or refused\n")
    return out
