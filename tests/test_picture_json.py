"""The picture kept as per-incident and per-unit JSON equals serialising it whole."""

from __future__ import annotations

import json

from dispatch_strategies import valid_event_sequences
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.protocol.fold import DispatchState, apply
from cadterm.server.draft import draft_of
from cadterm.server.picture_json import PictureJson


@settings(max_examples=60, deadline=None)
@given(events=valid_event_sequences(max_events=80), every=st.integers(1, 15))
def test_joined_parts_equal_the_whole_picture(events, every: int) -> None:
    state = DispatchState()
    picture = PictureJson(state)
    for n, event in enumerate(events, 1):
        picture.touched(apply(state, event))
        if n % every == 0 or n == len(events):
            parts = picture.parts()
            assert parts.seq == state.seq
            assert json.loads(parts.join()) == json.loads(state.model_dump_json())


@settings(max_examples=60, deadline=None)
@given(events=valid_event_sequences(max_events=60), split=st.integers(0, 60))
def test_a_draft_folds_like_the_picture_and_leaves_it_alone(events, split: int) -> None:
    split = min(split, len(events))
    state = DispatchState()
    for event in events[:split]:
        apply(state, event)
    before = state.model_dump_json()
    draft = draft_of(state)
    for event in events[split:]:
        apply(draft, event)
    # The real picture is untouched; the draft is what folding everything gives.
    assert state.model_dump_json() == before
    whole = DispatchState()
    for event in events:
        apply(whole, event)
    assert {**draft.incidents} == whole.incidents
    assert {**draft.units} == whole.units
    assert (draft.seq, draft.log_day, draft.log_number) == (
        whole.seq,
        whole.log_day,
        whole.log_number,
    )
