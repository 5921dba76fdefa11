"""Online reports in the picture: the fold, the rules, drafts, snapshots in parts.

Reports are part of the picture every console holds, so they must travel like incidents
and units: folded the same by server and client, left alone by a draft the rules decide
on, and carried whole by a snapshot however it is cut into parts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cadterm.client.link import LinkRules
from cadterm.client.store import LocalStore
from cadterm.domain.rules import MAX_WAITING_REPORTS, Codes, Refused, decide
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import SubmitReport, TriageReport
from cadterm.protocol.domain import Operator, Role, SourceChannel
from cadterm.protocol.events import ReportReceived, ReportTriaged
from cadterm.protocol.fold import DispatchState, InconsistentEvent, apply, fold
from cadterm.server.draft import draft_of
from cadterm.server.snapshot_parts import snapshot_frames

NOW = datetime(2026, 11, 27, 15, 0, tzinfo=UTC)
WEBSITE = Operator(id="web1", name="Website", role=Role.INTAKE)
HANDLER = Operator(id="disp1", name="Dispatcher", role=Role.DISPATCHER)
CODES = Codes(INCIDENT_TYPES, CLOSING_CODES)


def submit(**fields: object) -> SubmitReport:
    return SubmitReport(
        idempotency_key="key-" + "1" * 8,
        workstation="website",
        **{"channel": "web_form", "text": "Bike stolen \x1b[2J", **fields},  # type: ignore[arg-type]
    )


def triage(report: str, **fields: object) -> TriageReport:
    return TriageReport(
        idempotency_key="key-" + "2" * 8, workstation="ws-1", report=report, **fields
    )  # type: ignore[arg-type]


def received(state: DispatchState, **fields: object) -> str:
    event = decide(state, submit(**fields), WEBSITE, NOW, CODES)
    apply(state, event)
    return event.report  # type: ignore[union-attr]


def test_a_report_waits_then_becomes_an_incident() -> None:
    state = DispatchState()
    report = received(state, reporter={"name": "Sam Lee"}, location="Library")
    assert report == "R1"
    assert state.reports[report].text == "Bike stolen \x1b[2J"  # as sent
    event = decide(
        state,
        triage(
            report,
            outcome="created_incident",
            grade=3,
            incident_type="theft",
            location={"address": "Central Library"},
        ),
        HANDLER,
        NOW + timedelta(minutes=4),
        CODES,
    )
    assert isinstance(event, ReportTriaged)
    assert (event.reference, event.incident_type) == ("0001-27NOV26", "THEFT")
    changes = apply(state, event)
    assert (changes.reports, changes.incidents) == ({report}, {"0001-27NOV26"})
    assert state.reports == {}
    incident = state.incidents["0001-27NOV26"]
    assert (incident.source, incident.description) == (SourceChannel.ONLINE, "Bike stolen \x1b[2J")
    assert incident.caller is not None and incident.caller.name == "Sam Lee"
    assert incident.chronology[0].text.endswith("from report R1 (web_form)")
    assert state.log_number == 1
    # Dealt with once: a second decision about it is refused, and names it.
    with pytest.raises(Refused) as refused:
        decide(state, triage(report, outcome="closed", reason="dup"), HANDLER, NOW, CODES)
    assert refused.value.problem.code == "unknown_report"


def test_each_outcome_takes_its_own_fields() -> None:
    state = DispatchState()
    report = received(state)
    for fields, missing in (
        ({"outcome": "closed"}, "reason"),
        ({"outcome": "closed", "reason": "x", "grade": 2}, "grade"),
        ({"outcome": "created_incident", "grade": 2, "incident_type": "THEFT"}, "location"),
    ):
        with pytest.raises(Refused) as refused:
            decide(state, triage(report, **fields), HANDLER, NOW, CODES)
        assert (refused.value.problem.code, refused.value.problem.field) == (
            "triage_incomplete",
            missing,
        )
    for fields in ({"text": ""}, {"channel": "chat", "text": ""}, {"channel": "chat"}):
        with pytest.raises(Refused) as refused:
            decide(state, submit(**fields), WEBSITE, NOW, CODES)
        assert refused.value.problem.code == "report_incomplete"


def test_a_closed_report_opens_nothing() -> None:
    state = DispatchState()
    report = received(state, channel="chat", text="", transcript=[{"sender": "p", "text": "hi"}])
    event = decide(state, triage(report, outcome="closed", reason="advice"), HANDLER, NOW, CODES)
    apply(state, event)
    assert (state.reports, state.incidents, state.log_number) == ({}, {}, 0)


def test_events_that_do_not_fit_the_picture_change_nothing() -> None:
    state = DispatchState()
    report = received(state)
    before = state.model_copy(deep=True)
    base = {"at": NOW, "operator": "disp1", "workstation": "ws-1"}
    with pytest.raises(InconsistentEvent):
        apply(state, ReportTriaged(seq=2, report="R99", outcome="closed", reason="x", **base))
    with pytest.raises(InconsistentEvent):
        apply(state, ReportReceived(seq=2, report=report, channel="web_form", text="y", **base))
    assert state == before


def test_a_draft_never_touches_the_pictures_reports() -> None:
    state = DispatchState()
    report = received(state)
    draft = draft_of(state)
    apply(draft, decide(draft, submit(), WEBSITE, NOW, CODES))
    apply(draft, decide(draft, triage(report, outcome="closed", reason="x"), HANDLER, NOW, CODES))
    assert list(draft.reports) == ["R2"]
    assert list(state.reports) == [report]


def test_a_full_queue_refuses_more() -> None:
    state = DispatchState()
    base = {"at": NOW, "operator": "web1", "workstation": "website", "channel": "web_form"}
    fold(
        [ReportReceived(seq=n, report=f"R{n}", text="x", **base) for n in range(1, 1001)],
        state,
    )
    assert len(state.reports) == MAX_WAITING_REPORTS
    with pytest.raises(Refused) as refused:
        decide(state, submit(), WEBSITE, NOW, CODES)
    assert refused.value.problem.code == "triage_queue_full"


def test_snapshot_parts_carry_every_report() -> None:
    state = DispatchState()
    for n in range(60):
        received(state, text=f"report {n} " + "words " * 150)
    frames = snapshot_frames(state, "requested", 8192)
    assert len(frames) > 3
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    for frame in frames:
        rules.received(frame, 0.0)
    assert rules.store.state == state
    (single,) = snapshot_frames(state, "requested", 10**7)
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    rules.received(single, 0.0)
    assert rules.store.state == state
