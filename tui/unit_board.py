"""The unit board: every on-duty callsign, grouped by sector or by state."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.text import Text

from cadterm.domain.timers import (
    DEFAULT_POLICY,
    TimerPolicy,
    format_age,
    officer_safety,
    time_since,
)
from cadterm.protocol.domain import Capability, Unit, UnitState
from cadterm.protocol.fold import DispatchState

from .board import PROVISIONAL_MARK, Board
from .incident_queue import short_reference
from .safe_text import clean_line, fit
from .settings import Grouping

__all__ = ["Grouping", "UnitBoard", "state_word"]

_GROUP = "\u00a7"  # group heading keys start with this; callsigns never do

_STATE_WORD = {
    UnitState.EMERGENCY: "EMERG",
    UnitState.ON_DUTY: "ONDTY",
    UnitState.AVAILABLE_ON_PATROL: "AVAIL",
    UnitState.AVAILABLE_AT_STATION: "STN",
    UnitState.REFRESHMENTS: "REFS",
    UnitState.EN_ROUTE: "ENRT",
    UnitState.AT_SCENE: "SCENE",
    UnitState.COMMITTED_DEPLOYABLE: "COMD",
    UnitState.COMMITTED_NOT_DEPLOYABLE: "COMND",
    UnitState.PRISONER_ESCORT: "PRIS",
    UnitState.AT_COURT: "COURT",
    UnitState.OFF_DUTY: "OFF",
}
_CAPABILITY_LETTER = {
    Capability.FIREARMS: "F",
    Capability.DOG: "D",
    Capability.TRAFFIC: "T",
    Capability.TASER: "Z",
    Capability.FIRST_AID: "A",
    Capability.PUBLIC_ORDER: "P",
}
_STATE_CLASS = {
    UnitState.EMERGENCY: "units--emergency",
    UnitState.ON_DUTY: "units--available",
    UnitState.AVAILABLE_ON_PATROL: "units--available",
    UnitState.AVAILABLE_AT_STATION: "units--available",
    UnitState.REFRESHMENTS: "units--unavailable",
    UnitState.EN_ROUTE: "units--committed",
    UnitState.AT_SCENE: "units--committed",
    UnitState.COMMITTED_DEPLOYABLE: "units--committed",
    UnitState.COMMITTED_NOT_DEPLOYABLE: "units--committed",
    UnitState.PRISONER_ESCORT: "units--unavailable",
    UnitState.AT_COURT: "units--unavailable",
    UnitState.OFF_DUTY: "units--off",
}


def state_word(state: UnitState) -> str:
    """The short word for a state on the board (``SCENE``, ``AVAIL``, ...)."""
    return _STATE_WORD[state]


class UnitBoard(Board):
    """On-duty units with state, time in state, incident and capabilities."""

    empty_words = "no units on duty"
    row_words = "unit on duty"

    COMPONENT_CLASSES = Board.COMPONENT_CLASSES | {
        "units--group",
        "units--available",
        "units--committed",
        "units--unavailable",
        "units--emergency",
        "units--off",
        "units--safety",
    }

    DEFAULT_CSS = """
    UnitBoard > .units--group { color: $header-fg; text-style: bold; }
    UnitBoard > .units--available { color: $unit-available; }
    UnitBoard > .units--committed { color: $unit-committed; }
    UnitBoard > .units--unavailable { color: $unit-unavailable; }
    UnitBoard > .units--emergency { color: $alarm-fg; background: $alarm-bg; text-style: bold; }
    UnitBoard > .units--off { color: $unit-off; }
    UnitBoard > .units--safety { color: $age-warn; text-style: bold; }
    """

    def __init__(
        self,
        state: DispatchState,
        clock: Callable[[], datetime],
        policy: TimerPolicy = DEFAULT_POLICY,
        grouping: Grouping = Grouping.SECTOR,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.state = state
        self.clock = clock
        self.policy = policy
        self.grouping = grouping
        self._sorted: list[tuple] = []
        self._keys: dict[str, tuple] = {}
        self._shown: dict[str, tuple[str, bool]] = {}
        self.filter_text = ""
        self._hidden: set[str] = set()  # on-duty units the filter hides
        # The units pinned when the pins were last worked out: a change to any other
        # unit that did not put it in emergency leaves the pins as they are.
        self._pinned_units: set[str] = set()

    # --- keeping the order -----------------------------------------------------------

    def _group_of(self, unit: Unit) -> tuple[int | str, str]:
        if self.grouping == Grouping.STATE:
            return int(unit.state), f"{int(unit.state)} {unit.state.label}"
        sector = unit.home_sector or "no sector"
        return sector, sector

    def _sort_key(self, unit: Unit) -> tuple | None:
        if not unit.on_duty:
            return None
        if (
            self.filter_text
            and unit.state != UnitState.EMERGENCY  # a filter never hides an emergency
            and self.filter_text not in self._search_text(unit)
        ):
            self._hidden.add(unit.callsign)
            return None
        order, _ = self._group_of(unit)
        return (str(order).zfill(3) if isinstance(order, int) else order, unit.callsign)

    @staticmethod
    def _search_text(unit: Unit) -> str:
        return " ".join(
            [
                unit.callsign,
                unit.unit_type.value,
                unit.state.label,
                state_word(unit.state),
                unit.incident or "",
                unit.home_sector or "",
                " ".join(c.value for c in unit.capabilities),
            ]
        ).lower()

    def _display_order(self) -> list[str]:
        keys: list[str] = []
        group = None
        for sort_key in self._sorted:
            unit = self.state.units[sort_key[1]]
            _, title = self._group_of(unit)
            if title != group:
                group = title
                keys.append(f"{_GROUP}{title}")
            keys.append(unit.callsign)
        return keys

    def reload(self, state: DispatchState) -> None:
        """Show a whole new picture (after a snapshot or a change of grouping)."""
        self.state = state
        self._keys = {}
        self._hidden.clear()
        for callsign, unit in state.units.items():
            key = self._sort_key(unit)
            if key is not None:
                self._keys[callsign] = key
        self._sorted = sorted(self._keys.values())
        self._shown.clear()
        self.invalidate_all()
        self.set_order(self._display_order())

    def apply_changes(self, callsigns: Iterable[str]) -> None:
        """Re-place and re-render the units that changed."""
        moved = False
        changed = []
        for callsign in callsigns:
            unit = self.state.units.get(callsign)
            self._hidden.discard(callsign)
            new = self._sort_key(unit) if unit is not None else None
            old = self._keys.get(callsign)
            if old != new:
                if old is not None:
                    del self._sorted[bisect.bisect_left(self._sorted, old)]
                    del self._keys[callsign]
                if new is not None:
                    bisect.insort(self._sorted, new)
                    self._keys[callsign] = new
                moved = True
            changed.append(callsign)
            self._shown.pop(callsign, None)
        if moved:
            self.set_order(self._display_order())
        elif any(self._is_pinned(c) != (c in self._pinned_units) for c in changed):
            self.repin()  # a unit's emergency keeps its place in the order
        self.invalidate(changed)

    def set_grouping(self, grouping: Grouping) -> None:
        """Group by sector or by state."""
        self.grouping = grouping
        self.reload(self.state)

    def set_filter(self, text: str) -> None:
        """Show only units whose callsign, state, incident or capabilities contain `text`.

        A unit in state 0 (emergency) is shown whatever the filter says.
        """
        self.filter_text = text.strip().lower()
        self.reload(self.state)

    def tick(self) -> None:
        """Re-render visible rows whose time in state or safety flag has moved on."""
        now = self.clock()
        stale = []
        for key in self._window():
            unit = self.state.units.get(key)
            if unit is not None and self._shown.get(key) != self._time_cell(unit, now):
                stale.append(key)
        if stale:
            self.invalidate(stale)

    def _cursor_fallback(self) -> int:
        return 1 if len(self.keys) > 1 else 0

    def _is_pinned(self, callsign: str) -> bool:
        unit = self.state.units.get(callsign)
        return unit is not None and unit.state == UnitState.EMERGENCY

    def pinned_indices(self) -> list[int]:
        """Units in emergency (state 0) stay on screen however the board is scrolled."""
        units = self.state.units
        pins = [
            index
            for index, key in enumerate(self.keys)
            if key in units and units[key].state == UnitState.EMERGENCY
        ]
        self._pinned_units = {self.keys[index] for index in pins}
        return pins

    # --- rendering ------------------------------------------------------------------

    def _time_cell(self, unit: Unit, now: datetime) -> tuple[str, bool]:
        due = officer_safety(unit, now, self.policy, self.state)
        return format_age(time_since(unit.state_since, now)), due

    def render_header(self, width: int) -> Text:
        return Text(f"{'CALLSIGN':<9}{'ST':>2} {'STATE':<6}{'TIME':<6}{'INCIDENT':<11}CAPS")

    def render_row(self, key: str, width: int) -> Text:
        if key.startswith(_GROUP):
            return Text(f"\u2500 {key[1:]} ", style=self.component_style("units--group"))
        unit = self.state.units.get(key)
        if unit is None:
            return Text(key)
        time_text, safety = self._time_cell(unit, self.clock())
        self._shown[key] = (time_text, safety)
        style = self.component_style(_STATE_CLASS[unit.state])
        row = Text()
        # A blank callsign can only come from a log written before the door refused it.
        callsign = clean_line(unit.callsign) or "(blank)"
        mark = PROVISIONAL_MARK if key in self.provisional else " "
        row.append(fit(callsign, 8) + mark, style=style)
        row.append(f"{int(unit.state):>2} {state_word(unit.state):<6}", style=style)
        if safety:
            row.append(f"{time_text + '?':<6}", style=self.component_style("units--safety"))
        else:
            row.append(f"{time_text:<6}")
        incident = short_reference(unit.incident) if unit.incident else "-"
        row.append(fit(clean_line(incident), 10) + " ")
        row.append("".join(_CAPABILITY_LETTER.get(c, "?") for c in unit.capabilities))
        if unit.state == UnitState.EMERGENCY and unit.emergency_acknowledged_by is None:
            row.append(" EMERGENCY", style=self.component_style("units--emergency"))
        return row
