"""The supervisor board: its figures against the picture, its looks, and its keys.

The picture is the main-screen snapshot's fixed afternoon (tests/test_console_snapshots.py)
with a second dispatcher's work added, so workload has two people to tell apart and
there are two breaches: incident 1 (grade 1, 26 min old, ARV 1 still en route) and
incident 10 (grade 2, 70 min old, nobody sent).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_console_snapshots import NOW, console, dispatch_picture, steady_cursor, utc  # noqa: F401
from textual.pilot import Pilot
from textual.widgets import OptionList, Static

from cadterm.client import LinkState, LinkStatus
from cadterm.domain.room_summary import room_summary
from cadterm.domain.timers import DEFAULT_POLICY
from cadterm.protocol.domain import Grade, Location, Position, Role
from cadterm.protocol.events import IncidentCreated, NoteAdded
from cadterm.protocol.fold import DispatchState, apply
from cadterm.tui.app import CadApp
from cadterm.tui.supervisor_board import SupervisorBoard, sparkline

MINIMUMS = {"LS1": 3, "LS2": 2, "LS3": 2}
LIVE = LinkStatus(LinkState.LIVE, NOW - timedelta(hours=2))


def room_picture() -> DispatchState:
    """The snapshot picture plus a second dispatcher (disp2 at ws-2) at work."""
    state = dispatch_picture()

    def add(cls: type, minutes_ago: float, **fields: object) -> None:
        event = cls(
            seq=state.seq + 1,
            at=NOW - timedelta(minutes=minutes_ago),
            operator="disp2",
            workstation="ws-2",
            **fields,
        )
        apply(state, event)

    add(
        IncidentCreated,
        70,
        reference="0010-27NOV26",
        grade=2,
        incident_type="SUSPICIOUS",
        location=Location(
            address="Kirkstall Road, Leeds",
            position=Position(lat=53.805, lon=-1.575),
            sector="LS3",
        ),
        source="101",
    )
    add(NoteAdded, 1, reference="0004-27NOV26", text="Second caller: still there.")
    add(NoteAdded, 1, reference="0005-27NOV26", text="Owner back home at 18:00.")
    return state


def supervisor_console(size_class: str = "") -> CadApp:
    app = console("cadterm-dark", LIVE)
    app.client.store.load_snapshot(room_picture())
    app.settings = app.settings.model_copy(update={"sector_minimum": MINIMUMS})
    app.role = Role.SUPERVISOR
    return app


def test_summary_counts_the_picture() -> None:
    """Every figure, counted by hand from the events in `room_picture`."""
    summary = room_summary(room_picture(), NOW, policy=DEFAULT_POLICY, minimums=MINIMUMS)
    rows = {
        row.grade: (row.total, row.waiting, row.resourced, row.breached) for row in summary.grades
    }
    assert rows == {
        Grade.EMERGENCY: (2, 0, 2, 1),  # 0001 breached (ARV 1 en route), 0002 resourced
        Grade.PRIORITY: (3, 2, 1, 1),  # 0003 at scene, 0004 waiting, 0010 breached
        Grade.SCHEDULED: (2, 2, 0, 0),  # 0005, 0006; 0009 is closed
        Grade.APPOINTMENT: (1, 1, 0, 0),
        Grade.RESOLVED_WITHOUT_DEPLOYMENT: (1, 1, 0, 0),
    }
    assert (summary.open_total, summary.breached_total) == (9, 2)
    assert [(b.reference, b.over_by, b.resourced) for b in summary.breaches] == [
        ("0001-27NOV26", timedelta(minutes=11), True),
        ("0010-27NOV26", timedelta(minutes=10), False),
    ]
    cover = {c.sector: (c.available, c.on_duty, c.minimum, c.short) for c in summary.sectors}
    assert cover == {
        "LS1": (1, 5, 3, True),  # AB12 only: AB13 en route, AB14 at scene, AB15 state 0, AB16 refs
        "LS2": (2, 5, 2, False),  # CD22 at station, DOG 2
        "LS3": (1, 3, 2, True),  # TR7: TR8 at court, EF31 committed
    }
    loads = {
        w.operator: (w.workstations, w.open_incidents, w.latest, w.actions)
        for w in summary.workloads
    }
    # disp1: 9 opened, 1 closed, 4 assignments, 2 arrivals, 1 note: 17 entries, on 8 open
    # incidents, the last hand on all but 0004 and 0005 (disp2's notes came after).
    assert loads == {"disp1": (("ws-1",), 8, 6, 17), "disp2": (("ws-2",), 3, 3, 3)}
    # Incidents raised N minutes before 14:05 fall in 30-minute buckets from 08:05.
    assert summary.demand == (0, 0, 1, 0, 1, 1, 0, 1, 0, 1, 2, 3)
    assert summary.demand_by_grade[Grade.EMERGENCY] == (0,) * 11 + (2,)


def test_sparkline_marks_every_count() -> None:
    assert sparkline([0, 1, 2, 8]) == " \u2581\u2582\u2588"
    assert sparkline([0, 1, 4], unicode=False) == " :@"
    assert sparkline([0, 0]) == "  "
    assert sparkline([1, 30], top=30)[0] != " "  # one incident is never drawn as none


def _board_text(app: CadApp) -> str:
    board = app.query_one(SupervisorBoard)
    parts = [str(w.render()) for w in board.query(Static)]
    option_list = board.query_one(OptionList)
    parts += [
        str(option_list.get_option_at_index(i).prompt) for i in range(option_list.option_count)
    ]
    return "\n".join(parts)


async def test_board_shows_the_figures_and_opens_an_incident(utc) -> None:  # noqa: F811
    app = supervisor_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f11")
        await pilot.pause()
        text = _board_text(app)
        lines = text.splitlines()
        rows = [line.split() for line in lines]
        # grade, open, waiting, resourced, breached ("!" marks a breach without colour)
        assert ["1", "Emergency", "2", "0", "2", "1!"] in rows
        assert ["2", "Priority", "3", "2", "1", "1!"] in rows
        assert ["3", "Scheduled", "2", "2", "0", "0"] in rows
        assert ["All", "9", "6", "3", "2"] in rows
        assert any(
            line.startswith("LS1") and "1/3" in line and line.endswith("LOW") for line in lines
        )
        assert any(line.startswith("LS2") and "2/2" in line and "LOW" not in line for line in lines)
        assert any("disp1" in line and line.split()[-3:] == ["8", "6", "17"] for line in lines)
        # Demand (0 0 1 0 1 1 0 1 0 1 2 3): one block height per count up to the peak of 3.
        assert "|  \u2583 \u2583\u2583 \u2583 \u2583\u2585\u2588| 10 new, peak 3" in text
        options = app.query_one(SupervisorBoard).query_one(OptionList)
        first = [options.get_option_at_index(i).id for i in range(3)]
        assert first[:2] == ["0001-27NOV26", "0010-27NOV26"]  # the breaches lead
        assert str(options.get_option_at_index(0).prompt).startswith("! 0001-27NOV")
        await pilot.press("down", "enter")
        await pilot.pause()
        assert not app.screen.has_class("-supervisor")
        assert app.showing("incident")
        assert app.queue.cursor_key == "0010-27NOV26"


async def test_board_refused_to_a_dispatcher(utc) -> None:  # noqa: F811
    app = supervisor_console()
    app.role = Role.DISPATCHER
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f11")
        await pilot.pause()
        assert not app.screen.has_class("-supervisor")
        assert "for supervisors" in str(app.command_line.query_one("#command-feedback").render())


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
def test_board_snapshot(snap_compare, utc, size: tuple[int, int]) -> None:  # noqa: F811
    async def open_board(pilot: Pilot) -> None:
        await steady_cursor(pilot)
        await pilot.press("f11")
        await pilot.pause()

    assert snap_compare(supervisor_console(), terminal_size=size, run_before=open_board)
