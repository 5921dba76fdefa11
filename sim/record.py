"""Record a backend's event stream to a file; replay it into a fresh backend.

    python -m cadterm.sim.record record http://127.0.0.1:8740 shift.jsonl --token T
    python -m cadterm.sim.record replay shift.jsonl http://127.0.0.1:8741 --token T --speed 10

A recording is JSON lines: one event per line exactly as the server stored it (read
from ``GET /v1/events``, page by page, from seq 1). It needs the backend's whole
history: if retention has trimmed the oldest events, recording stops with an error.

Replaying turns each event back into the command that produces it (`command_for`:
``incident_created`` -> ``create_incident``, ``unit_booked_on`` -> ``book_on``, ...) and
sends it with the client, keeping the original workstation and pacing the commands by
the events' times divided by `speed` (long quiet spells can be cut to `max_gap`). The
new backend gives incidents new log references; the replay maps old to new as it goes.
Replay into a fresh backend, with a token allowed every command in the recording (a
reopened incident needs a supervisor's), and an intake token for the online reports it
holds (``--intake-token``): those are sent to ``POST /v1/intake/reports`` as a website
would, and get new report ids, which the replay maps too.

**What "the same" means.** `comparable(state)` is the picture with what a replay
necessarily changes taken out: incidents are named by the order they were opened
("#1", "#2", ...) instead of their log references (also inside links, unit assignments
and chronology text); times (`created_at`, `updated_at`, `closed_at`, chronology `at`,
`state_since`, `position_at`), event seqs in the chronology and the acting operator
(who acknowledged an alarm, who wrote an entry) are left out, and so are waiting online
reports' ids, times and submitting login. Everything else must be
equal: seq, every incident's grade, type, status, description, location, caller,
source, risk, assigned units, closing code, links, version and chronology (kind,
version, workstation and text), and every unit's type, capabilities, state, incident,
position, home sector, duty, whether its alarm was acknowledged, and version.

Errors::

    RecordError     the stream cannot be recorded (unreachable, trimmed history)
    ReplayError     an event could not be replayed (the backend refused its command)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cadterm.client import ClientError, CommandError, DispatchClient
from cadterm.client.intake import IntakeSender
from cadterm.client.queries import QueryError, fetch_events
from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.problems import Problem

__all__ = [
    "RecordError",
    "ReplayError",
    "command_for",
    "comparable",
    "main",
    "read_recording",
    "record",
    "replay",
]

# event type -> (command type, fields copied from the event)
_COMMANDS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "incident_created": (
        "create_incident",
        (
            "grade",
            "incident_type",
            "description",
            "location",
            "caller",
            "source",
            "risk",
            "suggested_grade",
            "grade_reason",
        ),
    ),
    "incident_graded": ("grade_incident", ("reference", "grade", "reason")),
    "incident_retyped": ("retype_incident", ("reference", "incident_type")),
    "incident_relocated": ("relocate_incident", ("reference", "location")),
    "risk_assessed": ("assess_risk", ("reference", "risk")),
    "note_added": ("add_note", ("reference", "text")),
    "unit_assigned": ("assign_unit", ("reference", "callsign")),
    "unit_unassigned": ("unassign_unit", ("reference", "callsign", "reason")),
    "unit_state_changed": ("set_unit_state", ("callsign", "state")),
    "unit_located": ("locate_unit", ("callsign", "position")),
    "emergency_acknowledged": ("acknowledge_emergency", ("callsign",)),
    "unit_checked_in": ("check_in_unit", ("callsign", "note")),
    "incident_closed": ("close_incident", ("reference", "closing_code", "summary")),
    "incident_reopened": ("reopen_incident", ("reference", "reason")),
    "incident_linked": ("link_incidents", ("reference", "other", "relation")),
    "unit_booked_on": (
        "book_on",
        ("callsign", "unit_type", "capabilities", "home_sector", "state", "position"),
    ),
    "unit_booked_off": ("book_off", ("callsign",)),
    "references_reserved": ("reserve_references", ()),
    "report_received": (
        "submit_report",
        ("channel", "text", "transcript", "reporter", "location", "website_reference"),
    ),
    "report_triaged": (
        "triage_report",
        ("report", "outcome", "reason", "grade", "incident_type", "location"),
    ),
}
_REFERENCE_FIELDS = ("reference", "other", "report")
_LOG_REFERENCE = re.compile(r"\b\d{4}-\d{2}[A-Z]{3}\d{2}\b")
# An online report's id ("R1042", the seq of its report_received): a replay changes it.
_REPORT_ID = re.compile(r"\bR\d+\b")


class RecordError(Exception):
    """The event stream cannot be recorded."""


class ReplayError(Exception):
    """An event of the recording could not be replayed; `problem` is the refusal, if any."""

    def __init__(self, message: str, event: Event, problem: Problem | None = None) -> None:
        super().__init__(message)
        self.event = event
        self.problem = problem


# --- recording -----------------------------------------------------------------------------


def record(
    url: str, token: str, path: str | os.PathLike[str], *, follow: float = 0.0, poll: float = 1.0
) -> int:
    """Write every event of the backend at `url` to `path`; return how many.

    With `follow`, keep polling for new events for that many seconds after catching up.
    """
    path = Path(path)
    written, after = 0, 0
    deadline = time.monotonic() + follow
    with path.open("w", encoding="utf-8") as out:
        while True:
            try:
                page = fetch_events(url, token, after)
            except QueryError as exc:
                raise RecordError(str(exc)) from None
            if page and page[0].seq != after + 1:
                raise RecordError(
                    f"events {after + 1}-{page[0].seq - 1} are no longer stored on {url} "
                    "(retention trimmed them); a recording needs the whole history"
                )
            for event in page:
                out.write(event.model_dump_json() + "\n")
            out.flush()
            written += len(page)
            after = page[-1].seq if page else after
            if not page:
                if time.monotonic() >= deadline:
                    return written
                time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def read_recording(path: str | os.PathLike[str]) -> list[Event]:
    """The events in a recording, checked to run 1, 2, 3... without a gap."""
    events: list[Event] = []
    with Path(path).open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                event = EVENT_ADAPTER.validate_json(line)
            except ValueError as exc:
                raise RecordError(f"{path}:{number}: not an event: {exc}") from None
            expected = events[-1].seq + 1 if events else 1
            if event.seq != expected:
                raise RecordError(f"{path}:{number}: seq {event.seq}, expected {expected}")
            events.append(event)
    return events


# --- replaying -------------------------------------------------------------------------------


def command_for(event: Event, references: Mapping[str, str]) -> dict[str, Any]:
    """The command (type and fields, JSON-ready) that makes a backend record `event`.

    `references` maps the recording's log references (and report ids) to the new
    backend's. Raises `ReplayError` if the event names an incident (or a report) the
    recording never created.
    """
    kind, names = _COMMANDS[event.type]
    data = event.model_dump(mode="json", exclude_none=True)
    command: dict[str, Any] = {"type": kind}
    for name in names:
        if name in data:
            command[name] = data[name]
    for name in _REFERENCE_FIELDS:
        if name in command:
            try:
                command[name] = references[command[name]]
            except KeyError:
                what = "report" if name == "report" else "incident"
                raise ReplayError(
                    f"event {event.seq} ({event.type}) names {what} {command[name]}, "
                    "which the recording never created",
                    event,
                ) from None
    if event.type == "unit_assigned" and data.get("diverted_from"):
        command["divert"] = True
    if event.type == "references_reserved":
        command["count"] = len(data["references"])
    if event.type == "incident_created" and data.get("reserved"):
        # Opened offline from a reserved block: the copy's block, as replayed before it.
        try:
            command["reference"] = references[event.reference]
        except KeyError:
            raise ReplayError(
                f"event {event.seq} opened {event.reference} from a reserved block the "
                "recording never reserved",
                event,
            ) from None
    return command


async def replay(
    events: Iterable[Event],
    url: str,
    token: str,
    *,
    speed: float | None = None,
    max_gap: float | None = None,
    intake_token: str | None = None,
) -> dict[str, str]:
    """Send the command for each event to the backend at `url`; old -> new references.

    The references map every reference the recording gave out, incidents' and those
    reserved for offline use alike, and every online report's id. Its online reports
    go in with `intake_token` (a recording holding some needs one). `speed` None
    replays as fast as the backend answers; otherwise the gaps between the events'
    times are kept, divided by `speed` (each gap at most `max_gap` seconds of recording
    time, if given). Raises `ReplayError` at the first refused command.
    """
    references: dict[str, str] = {}
    intake = IntakeSender(url, intake_token) if intake_token else None
    try:
        async with DispatchClient([url], token, workstation="replay") as client:
            await client.wait_live()
            loop = asyncio.get_running_loop()
            started, elapsed, previous = loop.time(), 0.0, None
            for event in events:
                if speed is not None and previous is not None:
                    gap = max(0.0, (event.at - previous).total_seconds())
                    elapsed += min(gap, max_gap) if max_gap is not None else gap
                    delay = started + elapsed / speed - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                previous = event.at
                fields = command_for(event, references)
                kind = fields.pop("type")
                try:
                    if kind == "submit_report":
                        if intake is None:
                            raise ReplayError(
                                f"event {event.seq} is an online report: give an intake token "
                                "(--intake-token) to replay it",
                                event,
                            )
                        result = await intake.send(
                            intake.report(workstation=event.workstation, **fields)
                        )
                    else:
                        command = client.command(kind, workstation=event.workstation, **fields)
                        result = await client.execute(command)
                except CommandError as refused:
                    raise ReplayError(
                        f"event {event.seq} ({event.type}) refused as {kind}: "
                        f"{refused.code.value}: {refused.detail}",
                        event,
                        refused.problem,
                    ) from None
                if event.type == "incident_created" or (
                    event.type == "report_triaged" and event.reference is not None
                ):
                    references[event.reference] = result.event.reference  # type: ignore[union-attr]
                elif event.type == "report_received":
                    references[event.report] = result.event.report  # type: ignore[union-attr]
                elif event.type == "references_reserved":
                    # The recording's block, in order, is the copy's block.
                    copied = result.event.references  # type: ignore[union-attr]
                    references.update(zip(event.references, copied, strict=True))  # type: ignore[union-attr]
    finally:
        if intake is not None:
            await intake.close()
    return references


# --- comparing -------------------------------------------------------------------------------


def comparable(state: DispatchState) -> dict[str, Any]:
    """The picture without what a replay necessarily changes (see the module docstring)."""
    opened = sorted(
        state.incidents.values(),
        key=lambda i: (i.chronology[0].seq if i.chronology else 0, i.reference),
    )
    names = {incident.reference: f"#{n}" for n, incident in enumerate(opened, 1)}

    def rename(text: str) -> str:
        text = _LOG_REFERENCE.sub(lambda m: names.get(m.group(0), m.group(0)), text)
        return _REPORT_ID.sub("R#", text)

    incidents = []
    for incident in opened:
        data = incident.model_dump(
            mode="json", exclude={"reference", "created_at", "updated_at", "closed_at"}
        )
        data["name"] = names[incident.reference]
        data["links"] = [
            {
                "reference": names.get(link.reference, link.reference),
                "relation": link.relation.value,
            }
            for link in incident.links
        ]
        data["chronology"] = [
            {
                "kind": entry.kind,
                "version": entry.version,
                "workstation": entry.workstation,
                "text": rename(
                    entry.text.rsplit(" by ", 1)[0]
                    if entry.kind == "emergency_acknowledged"
                    else entry.text
                ),
            }
            for entry in incident.chronology
        ]
        incidents.append(data)
    units = {}
    for callsign, unit in sorted(state.units.items()):
        data = unit.model_dump(
            mode="json",
            exclude={"state_since", "position_at", "emergency_acknowledged_by", "checked_in_at"},
        )
        data["incident"] = names.get(unit.incident, unit.incident) if unit.incident else None
        data["emergency_acknowledged"] = unit.emergency_acknowledged_by is not None
        data["checked_in"] = unit.checked_in_at is not None
        units[callsign] = data
    reports = [
        report.model_dump(mode="json", exclude={"id", "received_at", "operator"})
        for report in sorted(state.reports.values(), key=lambda r: (r.received_at, r.id))
    ]
    return {"seq": state.seq, "incidents": incidents, "units": units, "reports": reports}


# --- command line ----------------------------------------------------------------------------


def _speed(text: str) -> float | None:
    if text.lower() in ("max", "0"):
        return None
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a speed: {text!r} (a number, or 'max')") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be a positive number, not {text}")
    return value


def build_parser(prog: str = "python -m cadterm.sim.record") -> argparse.ArgumentParser:
    """``record URL FILE`` and ``replay FILE URL``."""
    parser = argparse.ArgumentParser(prog=prog, description="Record and replay event streams.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    token_help = "bearer token (default: $CADTERM_TOKEN)"
    rec = commands.add_parser("record", help="write a backend's events to a JSON-lines file")
    rec.add_argument("url", help="backend base URL")
    rec.add_argument("file", type=Path, help="recording to write")
    rec.add_argument("--token", default=os.environ.get("CADTERM_TOKEN"), help=token_help)
    rec.add_argument("--follow", type=float, default=0.0, help="keep recording for N seconds")
    rep = commands.add_parser("replay", help="replay a recording into a (fresh) backend")
    rep.add_argument("file", type=Path, help="recording to read")
    rep.add_argument("url", help="backend base URL")
    rep.add_argument("--token", default=os.environ.get("CADTERM_TOKEN"), help=token_help)
    rep.add_argument("--speed", type=_speed, default=1.0, help="time scale, or 'max' (default 1)")
    rep.add_argument("--max-gap", type=float, help="cut quiet spells to N recorded seconds")
    rep.add_argument(
        "--intake-token",
        default=os.environ.get("CADTERM_INTAKE_TOKEN"),
        help="intake token for the recording's online reports (default: $CADTERM_INTAKE_TOKEN)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns 0 done, 1 failed, 2 usage."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 2 if exit_.code else 0
    if not args.token:
        print("error: give --token or set CADTERM_TOKEN", file=sys.stderr)
        return 2
    try:
        if args.command == "record":
            count = record(args.url, args.token, args.file, follow=args.follow)
            print(f"recorded {count} events to {args.file}")
        else:
            events = read_recording(args.file)
            mapping = asyncio.run(
                replay(
                    events,
                    args.url,
                    args.token,
                    speed=args.speed,
                    max_gap=args.max_gap,
                    intake_token=args.intake_token,
                )
            )
            print(f"replayed {len(events)} events ({len(mapping)} incidents) into {args.url}")
    except (OSError, RecordError, ReplayError, ClientError, TimeoutError) as exc:
        print(f"{args.command} failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
