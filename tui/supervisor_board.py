"""The supervisor's board: the whole room on one screen, and a way into any incident.

The figures come from `cadterm.domain.room_summary` (pure code over the picture); this
screen only lays them out: open incidents by grade, available units per sector against
the room's minimums, each operator's workload, demand over the last hours as
sparklines, and a list of the open incidents with the breaches first. Enter on a line
closes the board and opens that incident in the detail pane; Escape closes it.

Everything reads without colour: a sector short of its minimum is marked ``LOW``, a
breach ``!``, and the sparklines are drawn in block characters (``.:-=+*#@`` on a
terminal without Unicode).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from cadterm.domain.room_summary import RoomSummary, room_summary
from cadterm.domain.timers import TimerPolicy, attendance_alert, format_age
from cadterm.protocol.domain import Grade, Incident, IncidentStatus
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import sortable_time

from .incident_queue import short_reference
from .safe_text import clean_line, fit

__all__ = ["SupervisorBoard", "sparkline"]

_BLOCKS = " \u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"
_ASCII = " .:-=+*#@"
#: Marks a breached incident in the list; it reads without colour.
BREACH = "!"
#: Marks a sector with fewer available units than its minimum.
LOW = "LOW"
#: The most of the console's time the board's recount may take: on a picture so big
#: that a recount costs more than this share of a second, it counts less often.
RECOUNT_SHARE = 0.05


def sparkline(values: Sequence[int], *, unicode: bool = True, top: int | None = None) -> str:
    """One character per value, scaled so `top` (default: the largest) is the tallest.

    Zero is a blank and any count above zero at least the lowest mark, so one incident
    in a bucket is never drawn as none.
    """
    ramp = _BLOCKS if unicode else _ASCII
    top = max(values, default=0) if top is None else top
    if top <= 0:
        return ramp[0] * len(values)
    steps = len(ramp) - 1
    return "".join(
        ramp[0] if value <= 0 else ramp[max(1, min(steps, round(value * steps / top)))]
        for value in values
    )


class SupervisorBoard(Vertical):
    """Counts, cover, workload and demand, with every open incident to choose from.

    The app shows it in the boards' place (the alarm banner, command line and status
    line stay) and refreshes it once a second while it is shown.
    """

    class Chosen(Message):
        """Enter on a line of the list: open this incident."""

        def __init__(self, reference: str) -> None:
            super().__init__()
            self.reference = reference

    class Closed(Message):
        """Escape: back to the boards."""

    BINDINGS = [
        Binding("escape", "close", "Back", show=False, id="supervisor.close"),
    ]

    DEFAULT_CSS = """
    SupervisorBoard > #sv-title { height: 1; background: $panel; text-style: bold; }
    SupervisorBoard > #sv-top { height: auto; }
    SupervisorBoard #sv-grades { width: 44; height: auto; }
    SupervisorBoard #sv-sectors { width: 1fr; height: auto; }
    SupervisorBoard > #sv-demand { height: auto; }
    SupervisorBoard > #sv-workload { height: auto; }
    SupervisorBoard > #sv-incidents { height: 1fr; border: none; padding: 0; }
    SupervisorBoard > #sv-incidents > .option-list--option-highlighted {
        background: $cursor-bg; color: $cursor-fg; text-style: bold;
    }
    /* Without colour the cursor's shades are gone: underline marks the line (an option
       list draws reverse video by swapping colours, which no colour leaves nothing of). */
    SupervisorBoard > #sv-incidents:nocolor > .option-list--option-highlighted {
        text-style: bold underline;
    }
    """

    def __init__(
        self,
        state: Callable[[], DispatchState],
        clock: Callable[[], datetime],
        policy: TimerPolicy,
        minimums: Mapping[str, int],
        *,
        unicode: bool = True,
        hours: int = 6,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._state = state
        self._clock = clock
        self.policy = policy
        self.minimums = dict(minimums)
        self.unicode = unicode
        self.hours = hours
        self.summary: RoomSummary | None = None
        self._listed: list[str] = []  # the references in the list, in order
        self._due = 0.0  # time.monotonic() of the next recount `tick` makes

    def compose(self) -> ComposeResult:
        yield Static(id="sv-title")
        with Horizontal(id="sv-top"):
            yield Static(id="sv-grades")
            yield Static(id="sv-sectors")
        yield Static(id="sv-demand")
        yield Static(id="sv-workload")
        yield OptionList(id="sv-incidents")

    def on_resize(self) -> None:
        if self.display:
            self.refresh_board()

    def focus_list(self) -> None:
        """Put the keyboard on the incident list."""
        self.query_one(OptionList).focus()

    def tick(self) -> None:
        """The app's once-a-second tick: recount, unless the last recount says wait.

        A recount runs on the console's event loop, so it may take at most
        `RECOUNT_SHARE` of the time: one that took 200 ms (some 20,000 open incidents,
        bench/bench_room_summary.py) is next made 4 s later. The title says when the
        figures were counted.
        """
        if time.monotonic() >= self._due:
            self.refresh_board()

    def refresh_board(self) -> None:
        """Recount from the picture and redraw (when opened, and on `tick`)."""
        started = time.monotonic()
        state, now = self._state(), self._clock()
        bucket = timedelta(minutes=30) if self.hours <= 12 else timedelta(hours=1)
        summary = room_summary(
            state, now, policy=self.policy, minimums=self.minimums, hours=self.hours, bucket=bucket
        )
        self.summary = summary
        wide = self.size.width >= 120
        tall = self.size.height >= 40
        self.query_one("#sv-title", Static).update(self._title(summary, now))
        self.query_one("#sv-grades", Static).update(self._grades(summary))
        self.query_one("#sv-sectors", Static).update(self._sectors(summary, wide))
        self.query_one("#sv-demand", Static).update(self._demand(summary, by_grade=tall))
        self.query_one("#sv-workload", Static).update(self._workload(summary, 8 if tall else 3))
        self._list_incidents(state, summary, now, wide)
        spent = time.monotonic() - started
        self._due = started + max(1.0, spent / RECOUNT_SHARE)

    # --- sections ---------------------------------------------------------------------

    def _title(self, summary: RoomSummary, now: datetime) -> Text:
        clock = now.astimezone().strftime("%H:%M:%S")
        return Text(
            f"SUPERVISOR BOARD  {clock}  open {summary.open_total}  "
            f"breached {summary.breached_total}   Enter: open  Esc: back",
            no_wrap=True,
            overflow="ellipsis",
        )

    def _grades(self, summary: RoomSummary) -> Text:
        lines = [f"{'Grade':<15}{'open':>6}{'waiting':>8}{'resrcd':>7}{'breach':>7}"]
        for row in summary.grades:
            label = f"{int(row.grade)} {row.grade.label}"[:15]
            mark = f"{row.breached:>6}{BREACH}" if row.breached else f"{row.breached:>6} "
            lines.append(f"{label:<15}{row.total:>6}{row.waiting:>8}{row.resourced:>7}{mark}")
        waiting = sum(g.waiting for g in summary.grades)
        resourced = sum(g.resourced for g in summary.grades)
        lines.append(
            f"{'All':<15}{summary.open_total:>6}{waiting:>8}{resourced:>7}"
            f"{summary.breached_total:>6}"
        )
        return Text("\n".join(lines), no_wrap=True)

    def _sectors(self, summary: RoomSummary, wide: bool) -> Text:
        width = 16 if wide else 8
        lines = [f"{'Sector':<{width}} avail/min  on duty"]
        for cover in summary.sectors:
            name = fit(clean_line(cover.sector), width)
            flag = f" {LOW}" if cover.short else ""
            lines.append(f"{name} {cover.available:>5}/{cover.minimum:<3} {cover.on_duty:>7}{flag}")
        if not summary.sectors:
            lines.append("no units on duty")
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")

    def _demand(self, summary: RoomSummary, *, by_grade: bool) -> Text:
        bucket = format_age(summary.bucket)
        top = max(summary.demand, default=0)
        line = sparkline(summary.demand, unicode=self.unicode)
        lines = [
            f"Demand per {bucket}, last {self.hours}h: |{line}| {sum(summary.demand)} new,"
            f" peak {top}"
        ]
        if by_grade:
            for grade in Grade:
                row = summary.demand_by_grade.get(grade, ())
                line = sparkline(row, unicode=self.unicode, top=top)
                lines.append(f"  grade {int(grade)} {grade.label:<12.12} |{line}| {sum(row)}")
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")

    def _workload(self, summary: RoomSummary, rows: int) -> Text:
        lines = [
            f"Workload: {'operator':<14}{'desk':<12}{'open':>5}{'last':>5}"
            f"{'acts ' + str(self.hours) + 'h':>9}"
        ]
        for load in summary.workloads[:rows]:
            desk = ",".join(load.workstations)
            lines.append(
                f"          {fit(clean_line(load.operator), 13)} {fit(clean_line(desk), 11)} "
                f"{load.open_incidents:>5}{load.latest:>5}{load.actions:>9}"
            )
        if len(summary.workloads) > rows:
            lines.append(f"          and {len(summary.workloads) - rows} more")
        if not summary.workloads:
            lines.append("          nobody has acted on an incident in the picture")
        return Text("\n".join(lines), no_wrap=True, overflow="ellipsis")

    def _list_incidents(
        self, state: DispatchState, summary: RoomSummary, now: datetime, wide: bool
    ) -> None:
        """Breaches first (furthest over first), then every other open incident, oldest first."""
        breached = [b.reference for b in summary.breaches]
        skip = set(breached)
        others = sorted(
            (
                i
                for i in state.incidents.values()
                if i.status != IncidentStatus.CLOSED and i.reference not in skip
            ),
            key=lambda i: (sortable_time(i.created_at), i.reference),
        )
        order = breached + [i.reference for i in others]
        width = max(40, self.size.width - 2)
        options = [
            Option(self._line(state.incidents[ref], state, now, width, wide), id=ref)
            for ref in order
            if ref in state.incidents
        ]
        option_list = self.query_one(OptionList)
        highlighted = option_list.highlighted_option
        keep = highlighted.id if highlighted is not None else None
        if order == self._listed:
            for option in options:
                option_list.replace_option_prompt(option.id or "", option.prompt)
            return
        self._listed = order
        option_list.clear_options()
        option_list.add_options(options)
        if keep in order:
            option_list.highlighted = order.index(keep)
        elif options:
            option_list.highlighted = 0

    def _line(
        self, incident: Incident, state: DispatchState, now: datetime, width: int, wide: bool
    ) -> Text:
        alert = attendance_alert(incident, state, now, self.policy)
        breached = alert.level.value == "breach"
        mark = BREACH if breached else " "
        status = {"open": "WAIT", "resourced": "RES", "at_scene": "SCENE"}.get(
            incident.status.value, incident.status.value.upper()
        )
        over = (
            f"+{format_age(-alert.remaining)}" if breached and alert.remaining is not None else ""
        )
        head = (
            f"{mark} {short_reference(incident.reference):<10} g{int(incident.grade)} "
            f"{fit(clean_line(incident.incident_type), 9)} {status:<5} "
            f"{format_age(alert.age):>5} {over:>6} "
        )
        address = fit(clean_line(incident.location.address), max(8, width - len(head)))
        return Text(head + address, no_wrap=True)

    # --- keys -------------------------------------------------------------------------

    def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        if message.option.id is not None:
            self.post_message(self.Chosen(message.option.id))

    def action_close(self) -> None:
        """Back to the boards, opening nothing."""
        self.post_message(self.Closed())
