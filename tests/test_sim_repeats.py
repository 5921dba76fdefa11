"""Repeat calls in the simulator: further calls about an incident, marked as such."""

from __future__ import annotations

import pytest

from cadterm.domain.geography import haversine_km
from cadterm.protocol.fold import DispatchState
from cadterm.sim.core import SimCore
from cadterm.sim.planned import SimSettings


def calls_of(seed: int, share: float, until: float = 6 * 3600):
    core = SimCore(seed, SimSettings(rate=1.0, play_units=False, repeat_share=share))
    planned = core.step(until, DispatchState())
    return core, planned


def test_no_repeat_share_leaves_a_seeds_calls_as_they_were() -> None:
    plain, plain_planned = calls_of(5, 0.0)
    repeated, repeated_planned = calls_of(5, 0.2)
    assert all(call.repeat_of is None for call in plain.calls)
    originals = [c for c in repeated.calls if c.repeat_of is None]
    assert originals == plain.calls  # the repeats come from a stream of their own
    assert [p.fields for p in plain_planned] == [
        p.fields for p in repeated_planned if "repeat of" not in p.why
    ]


def test_repeats_are_marked_later_and_near_the_call_they_repeat() -> None:
    core, planned = calls_of(5, 0.2)
    repeats = [(n, c) for n, c in enumerate(core.calls, 1) if c.repeat_of is not None]
    assert 0.1 * len(core.calls) < len(repeats) < 0.35 * len(core.calls)
    same_phone = near = 0
    for number, call in repeats:
        original = core.calls[call.repeat_of - 1]
        assert original.repeat_of is None and call.repeat_of < number
        assert call.at > original.at and call.grade == original.grade
        assert f"call {number}: " in planned[number - 1].why
        assert planned[number - 1].why.endswith(f"repeat of call {call.repeat_of}")
        if original.caller and call.caller and call.caller.phone == original.caller.phone:
            same_phone += 1
        here, there = call.location.position, original.location.position
        if here is not None and there is not None and haversine_km(here, there) < 0.2:
            near += 1
    assert 0 < same_phone < len(repeats)
    assert len(repeats) // 2 < near < len(repeats)  # some moved on, some said only "near"
    assert calls_of(5, 0.2)[0].calls == core.calls  # the same seed, the same calls


@pytest.mark.parametrize("share", [-0.1, 1.0, 2])
def test_a_repeat_share_outside_0_to_1_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="repeat_share"):
        SimSettings(repeat_share=share)
