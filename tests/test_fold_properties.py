"""Property tests of the fold over random valid event logs."""

from __future__ import annotations

from dispatch_strategies import valid_event_sequences
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.protocol.domain import IncidentStatus, UnitState
from cadterm.protocol.events import parse_event
from cadterm.protocol.fold import DispatchState, apply, fold

PROPERTY = settings(max_examples=60, deadline=None)


def check_invariants(state: DispatchState) -> None:
    """What must hold of any picture folded from a valid log."""
    for reference, incident in state.incidents.items():
        assert incident.reference == reference
        # Every change writes exactly one chronology entry and bumps the version once.
        assert incident.version == len(incident.chronology)
        assert [e.version for e in incident.chronology] == list(range(1, incident.version + 1))
        seqs = [e.seq for e in incident.chronology]
        assert seqs == sorted(seqs)
        assert len(set(incident.assigned)) == len(incident.assigned)
        for callsign in incident.assigned:
            assert state.units[callsign].incident == reference, (reference, callsign)
        if incident.status == IncidentStatus.CLOSED:
            assert not incident.assigned
            assert incident.closing_code is not None
            assert incident.closed_at is not None
        else:
            assert incident.closing_code is None
            at_scene = any(state.units[c].state == UnitState.AT_SCENE for c in incident.assigned)
            expected = (
                IncidentStatus.AT_SCENE
                if at_scene
                else IncidentStatus.RESOURCED
                if incident.assigned
                else IncidentStatus.OPEN
            )
            assert incident.status == expected
        for link in incident.links:
            assert link.reference in state.incidents
    for callsign, unit in state.units.items():
        assert unit.callsign == callsign
        if unit.incident is not None:
            assert callsign in state.incidents[unit.incident].assigned
            assert unit.on_duty
        if not unit.on_duty:
            assert unit.state == UnitState.OFF_DUTY
            assert unit.incident is None


@PROPERTY
@given(valid_event_sequences())
def test_folding_a_valid_log_never_raises_and_keeps_the_picture_consistent(events):
    state = DispatchState()
    for event in events:
        apply(state, event)
        check_invariants(state)
    assert state.seq == len(events)


@PROPERTY
@given(valid_event_sequences())
def test_changes_name_everything_the_event_touched(events):
    state = DispatchState()
    for event in events:
        before = state.model_dump()
        changes = apply(state, event)
        after = state.model_dump()
        touched_incidents = {
            r for r, i in after["incidents"].items() if before["incidents"].get(r) != i
        }
        touched_units = {c for c, u in after["units"].items() if before["units"].get(c) != u}
        assert touched_incidents <= changes.incidents, event
        assert touched_units <= changes.units, event
        assert changes.incidents <= set(after["incidents"])
        assert changes.units <= set(after["units"])


@PROPERTY
@given(valid_event_sequences())
def test_folding_is_deterministic(events):
    assert fold(events).model_dump() == fold(events).model_dump()


@PROPERTY
@given(valid_event_sequences())
def test_events_survive_a_json_round_trip(events):
    decoded = [parse_event(event.model_dump_json()) for event in events]
    assert decoded == events
    assert fold(decoded).model_dump() == fold(events).model_dump()


@PROPERTY
@given(valid_event_sequences())
def test_state_survives_a_json_round_trip(events):
    state = fold(events)
    again = DispatchState.model_validate_json(state.model_dump_json())
    assert again == state
    assert again.model_dump() == state.model_dump()


@PROPERTY
@given(st.data())
def test_resuming_from_a_snapshot_equals_folding_everything(data):
    events = data.draw(valid_event_sequences(), label="events")
    split = data.draw(st.integers(0, len(events)), label="split")
    snapshot = fold(events[:split]).model_dump_json()
    resumed = fold(events[split:], DispatchState.model_validate_json(snapshot))
    assert resumed.model_dump() == fold(events).model_dump()
