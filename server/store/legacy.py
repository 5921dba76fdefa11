"""Repairs for values stored before the protocol refused them at the door.

An older server accepted times without a UTC offset and identifiers no one can type
(an empty callsign, control characters). Such values are in its log and snapshots for
good: the log is never rewritten except by a schema migration, which calls these pure
functions on each stored body. What can be made usable is (a naive time is read as
UTC, and the event says so in `amended`); what cannot is kept as stored and reported,
because inventing a callsign would be worse than showing the one that is there.

`LegacyReport` collects what a migration changed and found, for one log line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import PydanticCustomError

from cadterm.protocol.types import check_identifier

__all__ = ["TIME_FIELDS", "LegacyReport", "repair_event", "repair_state"]

#: Every field of an event or of the picture that holds a time.
TIME_FIELDS = frozenset(
    {"at", "fixed_at", "created_at", "updated_at", "closed_at", "state_since", "position_at"}
)
#: Identifier fields whose stored values are checked against today's rules.
_IDENTIFIER_FIELDS = {
    "callsign": ("callsign", 40),
    "reference": ("incident reference", 40),
    "other": ("incident reference", 40),
}
_NAIVE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?", re.ASCII)


@dataclass
class LegacyReport:
    """What a migration changed (`repaired`) and found but kept (`kept`)."""

    repaired: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def note(self, kind: Counter[str], what: str, where: str) -> None:
        """Count one finding and keep the first few as examples."""
        kind[what] += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {what}")

    def __bool__(self) -> bool:
        return bool(self.repaired or self.kept)

    def summary(self) -> str:
        """One line for the server log."""
        parts = [f"{n} x {what}" for what, n in sorted(self.repaired.items())]
        parts += [f"{n} x {what} (kept as stored)" for what, n in sorted(self.kept.items())]
        examples = "; ".join(self.examples)
        return ", ".join(parts) + (f". First found: {examples}" if examples else "")


def _repair_times(value: Any, path: str, fixes: list[str]) -> Any:
    """Walk a JSON value; give every naive time in a time field a UTC offset."""
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key in TIME_FIELDS and isinstance(item, str) and _NAIVE.fullmatch(item):
                value[key] = item.replace(" ", "T") + "+00:00"
                fixes.append(f"{where}: naive time read as UTC")
            elif isinstance(item, dict | list):
                _repair_times(item, where, fixes)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _repair_times(item, f"{path}[{index}]", fixes)
    return value


def _check_identifiers(data: dict[str, Any], where: str, report: LegacyReport) -> None:
    for key, (what, limit) in _IDENTIFIER_FIELDS.items():
        value = data.get(key)
        if not isinstance(value, str):
            continue
        try:
            check_identifier(value, what, limit)
        except PydanticCustomError:
            report.note(report.kept, f"{key} that today's rules refuse", f"{where} {value!r}")


def _count(fixes: list[str], where: str, report: LegacyReport) -> None:
    """Add each "field: what was done" fix to the report."""
    for fix in fixes:
        field_path, what = fix.split(": ", 1)
        report.note(report.repaired, what, f"{where} {field_path}")


def repair_event(data: dict[str, Any], report: LegacyReport) -> bool:
    """Repair one stored event body in place; return True when it changed.

    The changes are listed in the event's `amended`, so every reader can tell the
    stored event from the one first recorded.
    """
    fixes: list[str] = []
    _repair_times(data, "", fixes)
    where = f"event seq {data.get('seq')}"
    _check_identifiers(data, where, report)
    _count(fixes, where, report)
    if fixes:
        data["amended"] = [*data.get("amended", ()), *fixes]
    return bool(fixes)


def repair_state(data: dict[str, Any], report: LegacyReport) -> bool:
    """Repair one stored picture (snapshot body) in place; return True when it changed."""
    fixes: list[str] = []
    _repair_times(data, "", fixes)
    where = f"snapshot at seq {data.get('seq')}"
    for callsign in data.get("units", {}):
        _check_identifiers({"callsign": callsign}, where, report)
    _count(fixes, where, report)
    return bool(fixes)
