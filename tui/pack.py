"""The CAD-down pack, for when even the terminals go (`cadterm pack`, or F12 on a console).

A control room that loses its CAD falls back to paper. The pack is what the paper needs
to start from: every open incident with its key chronology, every unit and its state,
this workstation's reserved incident references (so paper logs can use the numbers the
system will keep), the contacts from the console's settings, and a blank paper log to
fill in and type back later (each line with the time it happened: `at=HH:MM`).

It is written as plain text (for a line printer or a screen) and as a printable HTML
page, both private to the user (they hold callers' names and numbers), from the live
picture when a backend answers, else from this console's last known picture, and each
says which, and of when.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cadterm.protocol.domain import Incident, IncidentStatus, Unit, UnitState
from cadterm.protocol.fold import DispatchState
from cadterm.tui.safe_text import clean_line

__all__ = ["PackSource", "render_html", "render_text", "write_pack"]

#: Chronology lines kept per incident: the opening and the latest.
KEY_LINES = 6
#: Blank lines of paper log at the end.
PAPER_LOG_LINES = 25


@dataclass(frozen=True)
class PackSource:
    """The picture a pack is made from, and what to say about it."""

    state: DispatchState
    of: datetime  # when the picture was true (now, for a live backend)
    origin: str  # "live from http://..." or "this console's last known picture"
    workstation: str
    contacts: tuple[tuple[str, str], ...] = ()


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


def _open_incidents(state: DispatchState) -> list[Incident]:
    open_ = [i for i in state.incidents.values() if i.status != IncidentStatus.CLOSED]
    return sorted(open_, key=lambda i: (int(i.grade), i.created_at, i.reference))


def _units(state: DispatchState) -> list[Unit]:
    return sorted(
        (u for u in state.units.values() if u.on_duty),
        key=lambda u: (u.state != UnitState.EMERGENCY, u.home_sector or "", u.callsign),
    )


def _key_chronology(incident: Incident) -> list[str]:
    lines = incident.chronology
    if len(lines) > KEY_LINES:
        lines = [lines[0], *lines[-(KEY_LINES - 1) :]]
    return [f"{_when(e.at)} {clean_line(e.operator)}: {clean_line(e.text)}" for e in lines]


def _caller(incident: Incident) -> str:
    caller = incident.caller
    if caller is None:
        return ""
    parts = [clean_line(p) for p in (caller.name, caller.phone) if p]
    return ", ".join(parts)


def _reserved(source: PackSource) -> list[str]:
    return list(source.state.reserved.get(source.workstation, []))


def render_text(source: PackSource, printed: datetime) -> str:
    """The pack as plain text: fixed columns, nothing but printable characters."""
    state = source.state
    out = [
        f"CADTERM CAD-DOWN PACK - workstation {clean_line(source.workstation)}",
        f"Picture of {source.of.astimezone():%Y-%m-%d %H:%M} ({source.origin}); "
        f"printed {printed.astimezone():%H:%M}. Nothing after {_when(source.of)} is in it.",
        "",
    ]
    incidents = _open_incidents(state)
    out.append(f"OPEN INCIDENTS ({len(incidents)}), grade 1 first")
    out.append("-" * 78)
    for incident in incidents:
        units = ", ".join(incident.assigned) or "none"
        out.append(
            f"{incident.reference}  G{int(incident.grade)} {clean_line(incident.incident_type)}"
            f"  {incident.status.value.replace('_', ' ').upper()}"
            f"  opened {_when(incident.created_at)}"
            f"  units: {units}"
        )
        out.append(f"    at {clean_line(incident.location.address)}")
        if caller := _caller(incident):
            out.append(f"    caller: {caller}")
        out.extend(f"    {line}" for line in _key_chronology(incident))
        out.append("")
    units = _units(state)
    out.append(f"UNITS ON DUTY ({len(units)})")
    out.append("-" * 78)
    for unit in units:
        marker = "!! " if unit.state == UnitState.EMERGENCY else ""
        out.append(
            f"{marker}{clean_line(unit.callsign):<10} {int(unit.state):>2} "
            f"{unit.state.label:<26} {unit.incident or '-':<14} "
            f"{clean_line(unit.home_sector or '')}"
        )
    out.append("")
    reserved = _reserved(source)
    out.append(f"RESERVED REFERENCES for {clean_line(source.workstation)} ({len(reserved)})")
    out.append("-" * 78)
    out.append(
        "Give these to incidents opened on paper, in order; they are kept when CAD returns."
        if reserved
        else "None held: write provisional numbers (P1, P2, ...) and map them on recovery."
    )
    out.extend(f"  [ ] {reference}" for reference in reserved)
    out.append("")
    if source.contacts:
        out.append("CONTACTS")
        out.append("-" * 78)
        out.extend(
            f"  {clean_line(name):<40} {clean_line(phone)}" for name, phone in source.contacts
        )
        out.append("")
    out.append("PAPER LOG: type each line back in afterwards with at=HH:MM (its real time)")
    out.append("-" * 78)
    out.append(f"{'TIME':<6} {'REFERENCE':<14} {'WHAT WAS DONE':<44} BY")
    out.extend(f"{'_____':<6} {'____________':<14} {'_' * 44} ____" for _ in range(PAPER_LOG_LINES))
    return "\n".join(out) + "\n"


_CSS = """
body { font-family: sans-serif; font-size: 10pt; margin: 1.5em; }
h1 { font-size: 14pt; margin: 0; }
h2 { font-size: 12pt; border-bottom: 2px solid #000; margin-top: 1.2em; }
.of { font-weight: bold; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #444; padding: 2px 4px; text-align: left; vertical-align: top; }
td:first-child { white-space: nowrap; }
.g1 td:first-child { font-weight: bold; }
.g1 td:first-child::before { content: "\\25B2 "; }
ol.chron { margin: 0; padding-left: 1.2em; font-size: 9pt; }
.emergency { font-weight: bold; text-decoration: underline; }
.paper td { height: 1.6em; }
@media print { h2 { page-break-after: avoid; } tr { page-break-inside: avoid; } }
"""


def render_html(source: PackSource, printed: datetime) -> str:
    """The pack as one printable HTML page (no scripts, no external files)."""

    def e(text: object) -> str:
        return html.escape(clean_line(str(text)), quote=True)

    rows = []
    for incident in _open_incidents(source.state):
        chron = "".join(f"<li>{e(line)}</li>" for line in _key_chronology(incident))
        grade = int(incident.grade)
        rows.append(
            f'<tr class="g{grade}"><td>{e(incident.reference)}</td><td>{grade}</td>'
            f"<td>{e(incident.incident_type)}</td>"
            f"<td>{e(incident.status.value.replace('_', ' ').upper())}</td>"
            f"<td>{e(incident.location.address)}</td><td>{e(_caller(incident))}</td>"
            f"<td>{e(', '.join(incident.assigned) or 'none')}</td>"
            f'<td><ol class="chron">{chron}</ol></td></tr>'
        )
    unit_rows = []
    for unit in _units(source.state):
        flag = ' class="emergency"' if unit.state == UnitState.EMERGENCY else ""
        unit_rows.append(
            f"<tr{flag}><td>{e(unit.callsign)}</td><td>{int(unit.state)} "
            f"{e(unit.state.label)}</td><td>{e(unit.incident or '-')}</td>"
            f"<td>{e(unit.home_sector or '')}</td></tr>"
        )
    reserved = _reserved(source)
    reserved_html = (
        "<p>Give these to incidents opened on paper, in order; they are kept when CAD "
        "returns.</p><ol>" + "".join(f"<li>{e(r)}</li>" for r in reserved) + "</ol>"
        if reserved
        else "<p>None held: write provisional numbers (P1, P2, ...) and map them on recovery.</p>"
    )
    contacts = "".join(
        f"<tr><td>{e(name)}</td><td>{e(phone)}</td></tr>" for name, phone in source.contacts
    )
    paper = "".join("<tr><td></td><td></td><td></td><td></td></tr>" for _ in range(PAPER_LOG_LINES))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>CAD-down pack {e(source.workstation)}</title><style>{_CSS}</style></head>"
        f"<body><h1>CAD-down pack - workstation {e(source.workstation)}</h1>"
        f'<p class="of">Picture of {source.of.astimezone():%Y-%m-%d %H:%M} '
        f"({e(source.origin)}); printed {printed.astimezone():%H:%M}. Nothing after "
        f"{_when(source.of)} is in it.</p>"
        f"<h2>Open incidents ({len(rows)}), grade 1 first</h2>"
        "<table><tr><th>Reference</th><th>G</th><th>Type</th><th>Status</th>"
        "<th>Location</th><th>Caller</th><th>Units</th><th>Key chronology</th></tr>"
        + "".join(rows)
        + f"</table><h2>Units on duty ({len(unit_rows)})</h2>"
        "<table><tr><th>Callsign</th><th>State</th><th>Incident</th><th>Sector</th></tr>"
        + "".join(unit_rows)
        + f"</table><h2>Reserved references ({len(reserved)})</h2>{reserved_html}"
        + (
            f"<h2>Contacts</h2><table><tr><th>Who</th><th>Number</th></tr>{contacts}</table>"
            if contacts
            else ""
        )
        + "<h2>Paper log</h2><p>Type each line back in afterwards with <code>at=HH:MM</code>"
        ' (its real time).</p><table class="paper"><tr><th>Time</th><th>Reference</th>'
        f"<th>What was done</th><th>By</th></tr>{paper}</table></body></html>\n"
    )


def write_pack(source: PackSource, folder: Path, printed: datetime | None = None) -> list[Path]:
    """Write the text and HTML pack into `folder` (0600 files); return their paths."""
    printed = printed or datetime.now(UTC)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stem = f"cad-down-pack-{printed.astimezone():%Y%m%d-%H%M%S}"
    written = []
    for suffix, text in (
        (".txt", render_text(source, printed)),
        (".html", render_html(source, printed)),
    ):
        path = folder / (stem + suffix)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        written.append(path)
    return written
