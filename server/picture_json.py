"""The picture as JSON, kept up to date one incident and one unit at a time.

Serialising the whole picture costs time in proportion to everything it holds (62 ms
at 10k incidents, about a second at 51k), all of it holding the interpreter. Instead
each incident and unit keeps its own JSON text, and only those an event touched are
serialised again; a snapshot is then those texts joined, which the upkeep thread does
in slices so the event loop gets its turn between them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from cadterm.protocol.fold import Changes, DispatchState

__all__ = ["PictureJson", "PictureParts"]

#: Texts joined per slice: small enough that the event loop never waits long for one.
_SLICE = 500


@dataclass(frozen=True)
class PictureParts:
    """The picture at `seq` as texts that `join` turns into `DispatchState` JSON."""

    seq: int
    incidents: list[str]  # '"reference":{...}' pairs
    units: list[str]  # '"callsign":{...}' pairs
    log_day: str  # JSON: a date string or null
    log_number: int
    reserved: str  # JSON: the workstations' reserved references
    reports: str = "{}"  # JSON: the online reports waiting in the triage queue

    def join(self) -> str:
        """The whole picture as one JSON document (safe on any thread)."""
        return (
            f'{{"seq":{self.seq},"incidents":{{{_joined(self.incidents)}}},'
            f'"units":{{{_joined(self.units)}}},"log_day":{self.log_day},'
            f'"log_number":{self.log_number},"reserved":{self.reserved},'
            f'"reports":{self.reports}}}'
        )


def _joined(pairs: list[str]) -> str:
    # In slices: each join holds the interpreter only for a slice's worth of copying.
    return ",".join(",".join(pairs[i : i + _SLICE]) for i in range(0, len(pairs), _SLICE))


def _pair(key: str, model_json: str) -> str:
    return json.dumps(key, ensure_ascii=False) + ":" + model_json


class PictureJson:
    """Per-incident and per-unit JSON of one live picture, refreshed as it changes."""

    def __init__(self, state: DispatchState) -> None:
        self.state = state
        self._incidents = {
            ref: _pair(ref, i.model_dump_json()) for ref, i in state.incidents.items()
        }
        self._units = {cs: _pair(cs, u.model_dump_json()) for cs, u in state.units.items()}
        self._dirty_incidents: set[str] = set()
        self._dirty_units: set[str] = set()

    def touched(self, changes: Changes) -> None:
        """Note what an applied event changed; it is serialised again when next asked."""
        self._dirty_incidents |= changes.incidents
        self._dirty_units |= changes.units

    def parts(self) -> PictureParts:
        """The picture as it is now, ready to `join` (call on the picture's own loop)."""
        state = self.state
        _refresh(self._incidents, self._dirty_incidents, state.incidents)
        _refresh(self._units, self._dirty_units, state.units)
        day = json.dumps(state.log_day.isoformat()) if state.log_day is not None else "null"
        return PictureParts(
            state.seq,
            list(self._incidents.values()),
            list(self._units.values()),
            day,
            state.log_number,
            json.dumps(state.reserved, separators=(",", ":")),
            # Few and bounded (the triage queue is worked through): serialised each time.
            "{"
            + ",".join(_pair(key, r.model_dump_json()) for key, r in state.reports.items())
            + "}",
        )


def _refresh(texts: dict[str, str], dirty: set[str], models: dict) -> None:
    for key in _in_order(dirty):
        model = models.get(key)
        if model is None:
            texts.pop(key, None)  # gone from the picture
        else:
            texts[key] = _pair(key, model.model_dump_json())
    dirty.clear()


def _in_order(keys: Iterable[str]) -> list[str]:
    return sorted(keys)
