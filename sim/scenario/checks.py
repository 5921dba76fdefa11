"""Judging a finished run against the scenario's expectations, each with the reason.

Every check returns a `CheckResult` whose `detail` says what was found, pass or fail,
in the words of the control room ("first unit RP3 after 2 min 10 s, target 15 min").
Times are simulated: a real interval measured on the server times the run's speed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cadterm.client.journal import JournalStatus
from cadterm.domain.reconcile import offline_duplicates
from cadterm.protocol.domain import Incident
from cadterm.protocol.fold import DispatchState

from .model import (
    TARGETS,
    CadDownRecord,
    CommandConflicts,
    Expectation,
    IncidentStatusIs,
    NoEventLost,
    Recommended,
    ResourcedWithinTarget,
)
from .run import RunRecord

__all__ = ["CheckResult", "evaluate", "format_duration", "title_of"]


@dataclass(frozen=True)
class CheckResult:
    """One expectation's verdict."""

    expectation: Expectation
    title: str
    passed: bool
    detail: str


def title_of(expectation: Expectation) -> str:
    """How the report names an expectation: its check and what it is about."""
    if isinstance(expectation, ResourcedWithinTarget):
        return f"resourced_within_target {expectation.incident}"
    if isinstance(expectation, Recommended):
        return f"recommended {expectation.incident} at {format_duration(expectation.at)}"
    if isinstance(expectation, CommandConflicts):
        return f"command_conflicts {expectation.step or '(all steps with expect)'}"
    if isinstance(expectation, IncidentStatusIs):
        return f"incident_status {expectation.incident}"
    if isinstance(expectation, CadDownRecord):
        return "cad_down_record"
    return "no_event_lost"


def evaluate(record: RunRecord) -> list[CheckResult]:
    """The verdict on every expectation of the run's scenario, in file order."""
    results = []
    for expectation in record.scenario.expectations:
        title = title_of(expectation)
        if record.error is not None or record.observer_state is None:
            passed, detail = False, f"not checked: the run did not finish ({record.error})"
        else:
            passed, detail = _CHECKS[type(expectation)](record, expectation)
        results.append(CheckResult(expectation, title, passed, detail))
    return results


def format_duration(seconds: float) -> str:
    """Seconds as a dispatcher says them: "45 s", "2 min 10 s", "1 h 5 min"."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(seconds, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest // 60 else "")


def _incident(record: RunRecord, alias: str) -> Incident | None:
    reference = record.references.get(alias)
    assert record.observer_state is not None
    return record.observer_state.incidents.get(reference) if reference else None


def _resourced(record: RunRecord, check: ResourcedWithinTarget) -> tuple[bool, str]:
    incident = _incident(record, check.incident)
    if incident is None:
        return False, f"incident {check.incident!r} was never created"
    target = check.target or TARGETS.get(int(incident.grade))
    if target is None:
        return False, f"grade {int(incident.grade)} has no target; give one in the file"
    first = next((e for e in incident.chronology if e.kind == "unit_assigned"), None)
    if first is None:
        return False, (
            f"{incident.reference} (grade {int(incident.grade)}) was never resourced; "
            f"target {format_duration(target)}"
        )
    took = (first.at - incident.created_at).total_seconds() * record.speed
    callsign = first.text.split()[0]
    verdict = "within" if took <= target else "LATE for"
    return took <= target, (
        f"{incident.reference}: first unit {callsign} after {format_duration(took)}, "
        f"{verdict} the target of {format_duration(target)}"
    )


def _recommended(record: RunRecord, check: Recommended) -> tuple[bool, str]:
    probe = record.probes.get(check.index)
    if probe is None or probe.reference is None:
        return False, f"incident {check.incident!r} did not exist at {format_duration(check.at)}"
    if not probe.picks:
        return False, f"expected {check.callsign}, but no unit could be recommended"
    first = probe.picks[0]
    if first.callsign == check.callsign:
        return True, f"{first.callsign} first ({first.reason})"
    rank = next((n for n, p in enumerate(probe.picks, 1) if p.callsign == check.callsign), None)
    where = (
        f"{check.callsign} was number {rank} ({probe.picks[rank - 1].reason})"
        if rank
        else f"{check.callsign} was not among the {len(probe.picks)} recommended"
    )
    return False, f"expected {check.callsign}, got {first.callsign} ({first.reason}); {where}"


def _no_event_lost(record: RunRecord, check: NoEventLost) -> tuple[bool, str]:
    observer, server = record.observer_state, record.server_state
    assert observer is not None
    if server is None or record.server_events is None:
        return False, "the server's state could not be read"
    difference = first_difference(observer, server)
    if difference is not None:
        return False, f"the subscribed client's picture differs from the server's: {difference}"
    stored = {event.seq: event for event in record.server_events}
    for event in record.acknowledged:
        found = stored.get(event.seq)
        if found is None:
            return False, f"acknowledged event {event.seq} ({event.type}) is not on the server"
        if found != event:
            return False, f"event {event.seq} on the server is not the one acknowledged"
    resumes = f", after {record.observer_resumes} resume(s)" if record.observer_resumes else ""
    return True, (
        f"subscribed client holds the server's state at seq {server.seq}{resumes}; "
        f"all {len(record.acknowledged)} acknowledged events are stored"
    )


def _command_conflicts(record: RunRecord, check: CommandConflicts) -> tuple[bool, str]:
    outcomes = [
        o
        for o in record.steps
        if getattr(o.step, "expect", None) and (check.step is None or o.step.id == check.step)
    ]
    if not outcomes:
        return False, "the step(s) never ran"
    wrong = [o for o in outcomes if not o.ok]
    if wrong:
        return False, "; ".join(f"{o.step.label}: {o.detail}" for o in wrong)
    return True, "; ".join(
        f"{o.step.label}: got {o.problem.code.value if o.problem else 'ok'}" for o in outcomes
    )


def _incident_status(record: RunRecord, check: IncidentStatusIs) -> tuple[bool, str]:
    incident = _incident(record, check.incident)
    if incident is None:
        return False, f"incident {check.incident!r} was never created"
    now = incident.status.value + (f" {incident.closing_code}" if incident.closing_code else "")
    wanted = check.status.value + (f" {check.closing_code}" if check.closing_code else "")
    passed = incident.status == check.status and (
        check.closing_code is None or incident.closing_code == check.closing_code
    )
    return passed, f"{incident.reference} is {now}" + ("" if passed else f", expected {wanted}")


def _cad_down_record(record: RunRecord, check: CadDownRecord) -> tuple[bool, str]:
    """Every command typed offline is on the server as typed, or listed as refused."""
    if record.server_events is None or record.server_state is None:
        return False, "the server's log could not be read"
    if not record.journals:
        return False, "no step went through a console"
    stored = {event.seq: event for event in record.server_events}
    problems: list[str] = []
    said: list[str] = []
    refused_total = 0
    for name, entries in record.journals.items():
        by_key = {entry.key: entry for entry in entries}
        typed = record.typed_offline.get(name, [])
        recorded = refused = 0
        for key in typed:
            entry = by_key.get(key)
            if entry is None:
                problems.append(f"console {name}: a command typed offline is not in its journal")
                continue
            if not entry.waited:
                problems.append(f"console {name}: {entry.kind} typed offline is not marked waited")
            if entry.status == JournalStatus.SENT:
                event = stored.get(entry.seq or -1)
                if event is None:
                    problems.append(f"console {name}: {entry.kind} sent as {entry.seq}, not stored")
                elif not event.back_entered or event.taken_at != entry.command.taken_at:
                    problems.append(
                        f"console {name}: event {event.seq} ({event.type}) lost the time it "
                        f"was typed (taken_at {event.taken_at}, back_entered "
                        f"{event.back_entered})"
                    )
                else:
                    recorded += 1
            elif entry.status in (JournalStatus.REJECTED, JournalStatus.DISMISSED):
                refused += 1
            else:
                problems.append(f"console {name}: {entry.kind} still waits to be sent")
        refused_total += refused
        mapped = record.reference_maps.get(name) or {}
        maps = f", {len(mapped)} provisional reference(s) mapped" if mapped else ""
        said.append(
            f"{name}: {len(typed)} typed offline, {recorded} recorded back-entered with the "
            f"time typed, {refused} refused and listed{maps}"
        )
    if refused_total != check.conflicts:
        problems.append(f"{refused_total} refused, expected {check.conflicts}")
    if check.duplicates is not None:
        pairs = offline_duplicates(record.server_state)
        if len(pairs) != check.duplicates:
            problems.append(f"{len(pairs)} offline pair(s) offered, expected {check.duplicates}")
        else:
            said.append(f"{len(pairs)} pair(s) opened offline offered for linking")
    if problems:
        return False, "; ".join(problems)
    return True, "; ".join(said)


_CHECKS: dict[type, Any] = {
    ResourcedWithinTarget: _resourced,
    Recommended: _recommended,
    NoEventLost: _no_event_lost,
    CommandConflicts: _command_conflicts,
    IncidentStatusIs: _incident_status,
    CadDownRecord: _cad_down_record,
}


def first_difference(a: DispatchState, b: DispatchState) -> str | None:
    """Where two pictures first differ, in words; None when they are the same."""
    if a.seq != b.seq:
        return f"seq {a.seq} against {b.seq}"
    for name in ("incidents", "units"):
        mine, theirs = getattr(a, name), getattr(b, name)
        if set(mine) != set(theirs):
            extra = sorted(set(mine) ^ set(theirs))[:3]
            return f"{name} held by one side only: {', '.join(extra)}"
        for key in sorted(mine):
            left = mine[key].model_dump(mode="json")
            right = theirs[key].model_dump(mode="json")
            if left != right:
                fields = sorted(f for f in left if left[f] != right.get(f))
                return f"{key}: {', '.join(fields)} differ"
    if a.model_dump(mode="json") != b.model_dump(mode="json"):
        return "log numbering differs"
    return None
