"""`SimCore`: the simulator's decisions, without I/O and without a clock.

    core = SimCore(seed=7, settings=SimSettings(rate=1.0, auto_dispatch=True))
    planned = core.step(now, picture)        # commands due at sim time `now`
    ...send them; tell the core about refusals with core.settle(p, code)...
    now = core.next_due                      # when something next happens

`step` is a function of the seed, the settings, the simulated time, the picture it is
shown and what it decided before; it reads no clock and does no I/O. So two runs with
the same seed and rate, stepped at the same times against pictures the simulator alone
drove, plan exactly the same commands. Calls, units and the virtual dispatcher draw from
separate random streams, so the calls of a run are the same whatever the units do.

After the commands of a step are applied, step again at the same `now`: their
consequences (a unit now free, an incident now open) are decided on at that same time.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cadterm.protocol.fold import DispatchState

from .calls import Call, call_rng, draw_call, draw_repeat, next_arrival
from .control_room import ControlRoom
from .planned import Planned, SimSettings
from .units import UnitPlayer

__all__ = ["COOLDOWN", "SimCore"]

#: Simulated seconds the simulator leaves a unit or incident alone after a refusal.
COOLDOWN = 60.0
#: Further calls about one incident at most (with `SimSettings.repeat_share`).
MAX_REPEATS = 3
#: Mean simulated seconds from a call to a further call about it.
REPEAT_AFTER = 480.0
# Recommendations take a wall time only to flag stale fixes (not used in decisions).
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


class SimCore:
    """The pure decision logic of a simulation run."""

    def __init__(self, seed: int | str = 0, settings: SimSettings | None = None) -> None:
        self.seed = seed
        self.settings = settings or SimSettings()
        self._calls = call_rng(seed)
        self.units = UnitPlayer(self.settings, random.Random(f"cadterm-sim/{seed}/units"))
        self.control_room = ControlRoom(
            self.settings,
            random.Random(f"cadterm-sim/{seed}/control-room"),
            self.units.attended,
            _EPOCH,
        )
        self.cooldown: dict[str, float] = {}
        self.next_call_at = next_arrival(self._calls, 0.0, self.settings.rate)
        self.calls_made = 0
        #: Every call made, in order (call n is `calls[n - 1]`): the run's ground truth.
        self.calls: list[Call] = []
        self._repeat_rng = random.Random(f"cadterm-sim/{seed}/repeats")
        self._repeats: list[tuple[float, int, Call]] = []  # due further calls, soonest first
        self._next_due = 0.0

    @property
    def next_due(self) -> float:
        """Sim time at which the last step said something next happens (inf: nothing)."""
        return self._next_due

    def configure(self, now: float, **changes: Any) -> None:
        """Change settings from sim time `now` on (e.g. ``rate=5.0``, ``hands_off=...``).

        A new `rate` draws the next call afresh from `now`.
        """
        self.settings = replace(self.settings, **changes)
        self.units.settings = self.control_room.settings = self.settings
        if "rate" in changes:
            self.next_call_at = next_arrival(self._calls, now, self.settings.rate)
            self._next_due = min(self._next_due, self.next_call_at)

    def step(self, now: float, picture: DispatchState) -> list[Planned]:
        """Everything due at sim time `now`, given the observed `picture`, in send order."""
        out: list[Planned] = []
        while min(self.next_call_at, self._next_repeat_at) <= now:
            if self._next_repeat_at < self.next_call_at:
                call = heapq.heappop(self._repeats)[2]
            else:
                call = draw_call(self._calls, self.next_call_at, self.settings.city)
                self.next_call_at = next_arrival(self._calls, self.next_call_at, self.settings.rate)
            out.append(self._made(call))
        due = min(self.next_call_at, self._next_repeat_at)

        planned, room_due = self.control_room.act(now, picture, self.cooldown)
        out += planned
        due = min(due, room_due)

        for callsign in sorted(picture.units):
            unit = picture.units[callsign]
            played = self.settings.play_units and callsign not in self.settings.hands_off
            if not unit.on_duty or not played:
                self.units.forget(callsign)
                continue
            if self.cooldown.get(callsign, -math.inf) > now:
                due = min(due, self.cooldown[callsign])
                continue
            planned, unit_due = self.units.play(now, unit, picture)
            out += planned
            due = min(due, unit_due)
        self._expire_cooldowns(now)
        self._next_due = due
        return out

    @property
    def _next_repeat_at(self) -> float:
        return self._repeats[0][0] if self._repeats else math.inf

    def _made(self, call: Call) -> Planned:
        """Count `call` as made, plan the further calls about it, and plan its command."""
        self.calls_made += 1
        self.calls.append(call)
        why = f"call {self.calls_made}: grade {int(call.grade)} {call.incident_type}"
        if call.repeat_of is not None:
            why += f", repeat of call {call.repeat_of}"
        else:
            rng, at = self._repeat_rng, call.at
            for _ in range(MAX_REPEATS):
                if rng.random() >= self.settings.repeat_share:
                    break
                at += 30.0 + rng.expovariate(1 / REPEAT_AFTER)
                repeat = draw_repeat(rng, call, self.calls_made, at, self.settings.city)
                heapq.heappush(self._repeats, (at, self.calls_made, repeat))
        return Planned(call.at, "create_incident", call.command_fields(), "", why)

    def settle(self, planned: Planned, problem: str | None) -> None:
        """Record how a planned command ended: None if applied, else the problem code."""
        if problem is not None and planned.subject:
            self.cooldown[planned.subject] = planned.at + COOLDOWN

    def _expire_cooldowns(self, now: float) -> None:
        for key in [k for k, until in self.cooldown.items() if until <= now]:
            del self.cooldown[key]
