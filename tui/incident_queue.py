"""The incident queue: open incidents by grade, then age, each against its target."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable
from datetime import datetime

from rich.text import Text

from cadterm.domain.timers import DEFAULT_POLICY, Level, TimerPolicy, attendance_alert, format_age
from cadterm.protocol.domain import Grade, Incident, IncidentStatus
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import sortable_time

from .board import PROVISIONAL_MARK, Board
from .grammar.tokens import REF_WIDTH, short_reference
from .safe_text import clean_line, fit

__all__ = ["IncidentQueue", "short_reference"]

_STATUS = {
    IncidentStatus.OPEN: "OPEN",
    IncidentStatus.RESOURCED: "RES",
    IncidentStatus.AT_SCENE: "SCENE",
    IncidentStatus.CLOSED: "CLSD",
}
# Meaning never rests on colour alone: the age column carries a marker too.
_MARK = {Level.OK: "", Level.WARN: "!", Level.BREACH: "!!", Level.MET: "\u2713", Level.UNKNOWN: ""}


def _sort_key(incident: Incident) -> tuple:
    return (int(incident.grade), sortable_time(incident.created_at), incident.reference)


class IncidentQueue(Board):
    """Open incidents, most urgent first; rows keyed by reference."""

    empty_words = "no open incidents"
    row_words = "open incident"

    COMPONENT_CLASSES = Board.COMPONENT_CLASSES | {
        "queue--grade-1",
        "queue--grade-2",
        "queue--grade-3",
        "queue--grade-4",
        "queue--grade-5",
        "queue--warn",
        "queue--breach",
        "queue--met",
        "queue--muted",
    }

    DEFAULT_CSS = """
    /* Reverse video: on 16 colours, or none, a grade 1 never looks like a grade 2. */
    IncidentQueue > .queue--grade-1 { color: $grade-1; text-style: bold reverse; }
    IncidentQueue > .queue--grade-2 { color: $grade-2; text-style: bold; }
    IncidentQueue > .queue--grade-3 { color: $grade-3; }
    IncidentQueue > .queue--grade-4 { color: $grade-4; }
    IncidentQueue > .queue--grade-5 { color: $grade-5; }
    IncidentQueue > .queue--warn { color: $age-warn; text-style: bold; }
    IncidentQueue > .queue--breach { color: $age-breach; text-style: bold reverse; }
    IncidentQueue > .queue--met { color: $muted; }
    IncidentQueue > .queue--muted { color: $muted; }
    """

    def __init__(
        self,
        state: DispatchState,
        clock: Callable[[], datetime],
        policy: TimerPolicy = DEFAULT_POLICY,
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.state = state
        self.clock = clock
        self.policy = policy
        self._sorted: list[tuple] = []  # sort keys of shown incidents, in order
        self._refs: list[str] = []  # their references, in the same order (the rows)
        self._keys: dict[str, tuple] = {}
        self._shown_age: dict[str, tuple[str, Level]] = {}
        self.filter_text = ""
        self._hidden: set[str] = set()  # open incidents the filter hides

    # --- keeping the order -----------------------------------------------------------

    def _visible(self, incident: Incident) -> bool:
        if incident.status == IncidentStatus.CLOSED:
            return False
        if not self.filter_text or incident.grade == Grade.EMERGENCY:
            return True  # a filter never hides a grade 1
        if self.filter_text in self._search_text(incident):
            return True
        self._hidden.add(incident.reference)
        return False

    @staticmethod
    def _search_text(incident: Incident) -> str:
        return " ".join(
            [
                incident.reference,
                f"g{int(incident.grade)}",
                incident.incident_type,
                incident.status.value,
                incident.location.address,
                incident.location.sector or "",
                " ".join(incident.assigned),
            ]
        ).lower()

    def reload(self, state: DispatchState) -> None:
        """Show a whole new picture (after a snapshot)."""
        self.state = state
        self._hidden.clear()
        self._keys = {
            ref: _sort_key(incident)
            for ref, incident in state.incidents.items()
            if self._visible(incident)
        }
        self._sorted = sorted(self._keys.values())
        self._refs = [key[2] for key in self._sorted]
        self._shown_age.clear()
        self.invalidate_all()
        self.set_order(self._refs)

    def apply_changes(self, references: Iterable[str]) -> None:
        """Re-place and re-render the incidents that changed."""
        moved = False
        changed = []
        for ref in references:
            incident = self.state.incidents.get(ref)
            self._hidden.discard(ref)
            new = _sort_key(incident) if incident and self._visible(incident) else None
            old = self._keys.get(ref)
            if old != new:
                # Move the row within both lists in place: no pass over the whole queue.
                if old is not None:
                    at = bisect.bisect_left(self._sorted, old)
                    del self._sorted[at]
                    del self._refs[at]
                    del self._keys[ref]
                if new is not None:
                    at = bisect.bisect_left(self._sorted, new)
                    self._sorted.insert(at, new)
                    self._refs.insert(at, ref)
                    self._keys[ref] = new
                moved = True
            changed.append(ref)
            self._shown_age.pop(ref, None)
        if moved:
            self.set_order(self._refs)
        self.invalidate(changed)

    def pinned_indices(self) -> range:
        """Grade 1s stay on screen however the queue is scrolled (they sort first)."""
        return range(bisect.bisect_left(self._sorted, (int(Grade.PRIORITY),)))

    def grade_ones(self) -> list[str]:
        """The open grade 1s: the queue's first rows, whatever the filter (it never
        hides one)."""
        return self._refs[: len(self.pinned_indices())]

    def set_filter(self, text: str) -> None:
        """Show only incidents whose reference, type, location or units contain `text`.

        Grade 1s are shown whatever the filter says: nothing may hide an emergency.
        """
        self.filter_text = text.strip().lower()
        self.reload(self.state)

    def tick(self) -> None:
        """Re-render rows whose age or alert level has moved on (visible rows only)."""
        now = self.clock()
        stale = []
        for key in self._window():
            incident = self.state.incidents.get(key)
            if incident is None:
                continue
            shown = self._age_cell(incident, now)
            if self._shown_age.get(key) != shown:
                stale.append(key)
        if stale:
            self.invalidate(stale)

    # --- rendering ------------------------------------------------------------------

    def _age_cell(self, incident: Incident, now: datetime) -> tuple[str, Level]:
        alert = attendance_alert(incident, self.state, now, self.policy)
        return format_age(alert.age), alert.level

    @staticmethod
    def _widths(width: int) -> tuple[int, int, int]:
        """Widths of the type, location and units columns for this board width."""
        fixed = REF_WIDTH + 1 + 2 + 1 + 9 + 1 + 5 + 1 + 6 + 1
        rest = max(10, width - fixed)
        units = min(18, max(5, rest // 4))
        return 9, rest - units - 1, units

    def render_header(self, width: int) -> Text:
        type_w, loc_w, units_w = self._widths(width)
        return Text(
            f"{'REF':<{REF_WIDTH}} {'G':<2} {'TYPE':<{type_w}} {'STAT':<5} {'AGE':<6} "
            f"{'LOCATION':<{loc_w}} {'UNITS':<{units_w}}"
        )

    def render_row(self, key: str, width: int) -> Text:
        incident = self.state.incidents.get(key)
        if incident is None:
            return Text(key)
        type_w, loc_w, units_w = self._widths(width)
        age, level = self._age_cell(incident, self.clock())
        self._shown_age[key] = (age, level)
        grade = int(incident.grade)
        row = Text()
        mark = PROVISIONAL_MARK if key in self.provisional else " "
        row.append(fit(clean_line(short_reference(incident.reference)), REF_WIDTH) + mark)
        row.append(f"{grade:<2}", style=self.component_style(f"queue--grade-{grade}"))
        row.append(" ")
        row.append(fit(clean_line(incident.incident_type), type_w) + " ")
        row.append(f"{_STATUS[incident.status]:<5} ")
        age_style = {
            Level.WARN: "queue--warn",
            Level.BREACH: "queue--breach",
            Level.MET: "queue--met",
        }.get(level)
        age_text = f"{age}{_MARK[level]}"
        if age_style:
            row.append(f"{age_text:<6}", style=self.component_style(age_style))
        else:
            row.append(f"{age_text:<6}")
        row.append(" ")
        row.append(fit(clean_line(incident.location.address), loc_w) + " ")
        units = ",".join(incident.assigned) or "-"
        row.append(
            fit(clean_line(units), units_w),
            style=None if incident.assigned else self.component_style("queue--muted"),
        )
        return row
