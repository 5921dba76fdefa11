"""Would a command leave an urgent incident with nobody? The rule behind "are you sure".

Diverting, standing down or booking off the only unit on an open grade 1 or grade 2
incident leaves it unresourced: the console asks the dispatcher to say so on purpose
(the line again, starting with ``!``) before it sends such a command. Pure code over
the picture, like the rest of the grammar.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cadterm.protocol.domain import Grade, IncidentStatus
from cadterm.protocol.fold import DispatchState

__all__ = ["FORCE", "URGENT", "left_unresourced"]

#: Grades whose last unit may not leave without a forced line.
URGENT = frozenset({Grade.EMERGENCY, Grade.PRIORITY})

#: The prefix that sends a line whatever this rule says.
FORCE = "!"


def left_unresourced(state: DispatchState, commands: Iterable[Any]) -> list[str]:
    """One warning for each urgent incident these commands would leave with no unit.

    `commands` are drafts or commands (anything with ``type`` and its fields).
    """
    warnings = []
    for command in commands:
        callsign = getattr(command, "callsign", None)
        unit = state.units.get(callsign) if callsign else None
        if unit is None or unit.incident is None:
            continue
        leaving = None
        if command.type == "assign_unit" and command.reference != unit.incident:
            leaving = unit.incident if getattr(command, "divert", False) else None
        elif command.type in ("unassign_unit", "book_off"):
            leaving = getattr(command, "reference", None) or unit.incident
        incident = state.incidents.get(leaving) if leaving else None
        if (
            incident is None
            or incident.status == IncidentStatus.CLOSED
            or incident.grade not in URGENT
            or [c for c in incident.assigned if c != callsign]
        ):
            continue
        warnings.append(
            f"{callsign} is the only unit on {incident.reference} (grade {int(incident.grade)}): "
            f"it would be left with nobody"
        )
    return warnings
