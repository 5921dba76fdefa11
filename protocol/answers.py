"""Answers of the query API beyond the picture: a unit's shift, the safety-check cadence.

``GET /v1/history/units/{callsign}`` answers with a `UnitHistory`: what one unit did,
event by event, from the server's event log. ``GET /v1/safety-checks`` answers with the
`SafetyCadence` the server is configured with, so every console times officer-safety
checks the same way. Both are described in docs/protocol.md.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from .domain import Position, UnitState

__all__ = [
    "DEFAULT_SAFETY_BY_TYPE_MINUTES",
    "DEFAULT_SAFETY_EVERY_MINUTES",
    "MAX_UNIT_HISTORY",
    "SafetyCadence",
    "UnitHistory",
    "UnitHistoryEntry",
    "UnitHistoryKind",
]

#: Minutes between safety checks for a unit at scene, unless its incident's type says.
DEFAULT_SAFETY_EVERY_MINUTES = 20.0
#: Shorter cadences where officers face more risk: armed incidents, domestics.
DEFAULT_SAFETY_BY_TYPE_MINUTES: dict[str, float] = {"FIREARMS": 10.0, "DOMESTIC": 15.0}
#: The most entries one unit history answers with (the newest are kept).
MAX_UNIT_HISTORY = 2000

_Minutes = float

UnitHistoryKind = Literal[
    "booked_on",
    "booked_off",
    "state",
    "located",
    "assigned",
    "unassigned",
    "cleared",
    "checked_in",
    "emergency_acknowledged",
]


class SafetyCadence(BaseModel):
    """How often a unit at scene is due an officer-safety check, in minutes.

    `by_incident_type` gives the cadence for units on incidents of those types (opening
    codes, upper case); any other type uses `every_minutes`.
    """

    model_config = ConfigDict(extra="forbid")

    every_minutes: _Minutes = Field(
        default=DEFAULT_SAFETY_EVERY_MINUTES,
        gt=0,
        le=24 * 60,
        description="Minutes without an update before a unit at scene is due a check.",
    )
    by_incident_type: dict[str, _Minutes] = Field(
        default_factory=lambda: dict(DEFAULT_SAFETY_BY_TYPE_MINUTES),
        description="Cadence in minutes for units on incidents of these types.",
    )

    def intervals(self) -> tuple[timedelta, dict[str, timedelta]]:
        """The default cadence and the per-type ones, as durations."""
        return timedelta(minutes=self.every_minutes), {
            code.upper(): timedelta(minutes=minutes)
            for code, minutes in self.by_incident_type.items()
        }


class UnitHistoryEntry(BaseModel):
    """One thing that happened to a unit, from one event."""

    model_config = ConfigDict(extra="forbid")

    seq: StrictInt = Field(description="Seq of the event it comes from.")
    at: AwareDatetime
    kind: UnitHistoryKind
    operator: str
    workstation: str
    state: UnitState | None = Field(default=None, description="The unit's state after it.")
    reference: str | None = Field(default=None, description="The incident it concerns.")
    position: Position | None = None
    text: str = Field(description="What happened, as a chronology line says it.")


class UnitHistory(BaseModel):
    """A unit's states, positions and incidents from `since`, oldest first.

    `complete_from` is the time of the oldest event the server still keeps when that is
    after `since` (older events were pruned, so the history starts there), else None.
    `truncated` says only the newest `MAX_UNIT_HISTORY` entries are given.
    """

    model_config = ConfigDict(extra="forbid")

    callsign: str
    since: AwareDatetime
    entries: list[UnitHistoryEntry]
    incidents: list[str] = Field(description="Every incident the unit was sent to, in order.")
    complete_from: AwareDatetime | None = None
    truncated: bool = False
