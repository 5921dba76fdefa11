"""The server's rules and fold on one in-process picture, on simulated time.

For benches that play a shift without a server: each command is decided by
`cadterm.domain.rules.decide` and folded as the server folds it, at `start` plus the
simulated seconds given.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from cadterm.domain.rules import Codes, Refused, decide
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import parse_command
from cadterm.protocol.domain import Operator, Role
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState, apply

__all__ = ["Shift"]


class Shift:
    """A picture and the rules that change it, starting at `start`."""

    def __init__(self, start: datetime) -> None:
        self.start = start
        self.state = DispatchState()
        self.codes = Codes(INCIDENT_TYPES, CLOSING_CODES)
        self.operator = Operator(id="sim", name="Simulator", role=Role.DISPATCHER)

    def execute(self, kind: str, fields: dict, now: float) -> tuple[Event | None, str | None]:
        """Decide and fold one command at `now` simulated seconds; the event, or the
        refusal's problem code."""
        command = parse_command(
            {"type": kind, "idempotency_key": "k" * 16, "workstation": "sim", **fields}
        )
        try:
            event = decide(
                self.state, command, self.operator, self.start + timedelta(seconds=now), self.codes
            )
        except Refused as refused:
            return None, refused.problem.code.value
        apply(self.state, event)
        return event, None
