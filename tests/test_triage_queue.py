"""The triage queue in the console: what it lists, what it shows, what it sends.

The console runs on a fixed picture (never connecting); what the queue decides is
caught where it leaves for the server (`CommandController.run`), so each test sees the
exact command a call handler's keys produce. The whole path to a real server, in tmux,
is tests/test_triage_terminal.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from test_console_snapshots import NOW, console, dispatch_picture, utc  # noqa: F401
from textual.widgets import OptionList, Static

from cadterm.client import LinkState, LinkStatus
from cadterm.protocol.domain import Report, ReportChannel
from cadterm.protocol.events import ReportReceived
from cadterm.protocol.fold import DispatchState, apply
from cadterm.sim.gazetteer import brackley_gazetteer
from cadterm.tui.app import CadApp
from cadterm.tui.grammar.places import placed
from cadterm.tui.grammar.verbs import Dispatch
from cadterm.tui.triage_queue import TriageQueue, read_closure, read_creation

LIVE = LinkStatus(LinkState.LIVE, NOW - timedelta(hours=1))
#: The reports' ids: each is R and the seq of its event, after the picture's own events.
WEB, CHAT = (f"R{dispatch_picture().seq + n}" for n in (1, 2))


def with_reports(state: DispatchState) -> DispatchState:
    """Two reports: a web form 20 minutes ago and a chat 5 minutes ago."""
    for minutes, fields in (
        (
            20,
            {
                "channel": "web_form",
                "text": "My bike was stolen \x1b[2J [bold]today[/]",
                "location": "Trinity Centre, Leeds",
            },
        ),
        (
            5,
            {
                "channel": "chat",
                "transcript": [
                    {"sender": "public", "text": "Man trying car doors"},
                    {"sender": "agent", "text": "Where?"},
                ],
            },
        ),
    ):
        apply(
            state,
            ReportReceived(
                seq=state.seq + 1,
                at=NOW - timedelta(minutes=minutes),
                operator="web1",
                workstation="website",
                report=f"R{state.seq + 1}",
                **fields,
            ),
        )
    return state


def triage_console() -> tuple[CadApp, list[Dispatch]]:
    app = console("cadterm-dark", LIVE)
    app.client.store.load_snapshot(with_reports(dispatch_picture()))
    sent: list[Dispatch] = []
    app.controller.run = sent.append  # type: ignore[method-assign]
    return app, sent


def _report(**fields: object) -> Report:
    return Report(
        id="R9",
        channel=ReportChannel.WEB_FORM,
        received_at=NOW,
        text="x",
        operator="web1",
        **fields,  # type: ignore[arg-type]
    )


def test_creating_reads_grade_type_and_location() -> None:
    report = _report(location="Corn Exchange")
    made = read_creation(report, "2 suspicious")
    assert (made.report, made.outcome.value, made.grade, made.incident_type) == (  # type: ignore[attr-defined]
        "R9",
        "created_incident",
        2,
        "SUSPICIOUS",
    )
    assert made.location.address == "Corn Exchange"  # type: ignore[attr-defined]
    assert read_creation(report, "1 RTC 12 High Street").location.address == "12 High Street"  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="grade is 1 to 5, not '7'"):
        read_creation(report, "7 RTC")
    with pytest.raises(ValueError, match="GRADE TYPE"):
        read_creation(report, "2")
    with pytest.raises(ValueError, match="no location"):
        read_creation(_report(), "2 RTC")
    with pytest.raises(ValueError, match="incident_type"):
        read_creation(report, "2 RT$C")
    with pytest.raises(ValueError, match="needs a reason"):
        read_closure(report, "   ")
    assert read_closure(report, " advice given ").reason == "advice given"  # type: ignore[attr-defined]


def test_a_created_incident_is_placed_by_the_gazetteer() -> None:
    made = read_creation(_report(location="Corn Exchange"), "3 THEFT")
    action = placed(Dispatch((made,), "incident from R9"), brackley_gazetteer())
    assert isinstance(action, Dispatch)
    (located,) = action.commands
    assert located.location.position is not None  # type: ignore[attr-defined]
    assert located.location.sector  # type: ignore[attr-defined]
    closed = read_closure(_report(), "duplicate")
    assert placed(Dispatch((closed,), "close R9"), brackley_gazetteer()).commands == (closed,)


async def test_the_queue_lists_reports_oldest_first_and_shows_them_neutralised(utc) -> None:  # noqa: F811
    app, _sent = triage_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        # The status line says reports are waiting, before anyone opens the queue.
        status = str(app.query_one("#status", Static).render())
        assert " | WEB 2 | " in status, status
        await pilot.press("ctrl+o")
        await pilot.pause()
        queue = app.query_one(TriageQueue)
        options = queue.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        assert ids == [WEB, CHAT]
        title = str(queue.query_one("#tq-title", Static).render())
        assert title.startswith("TRIAGE QUEUE  2 online reports waiting")
        shown = str(queue.query_one("#tq-text", Static).render())
        assert "My bike was stolen \u241b[2J [bold]today[/]" in shown
        assert "\x1b" not in shown
        await pilot.press("down")
        shown = str(queue.query_one("#tq-text", Static).render())
        assert "public: Man trying car doors\nagent: Where?" in shown
        await pilot.press("escape")
        assert not app.screen.has_class("-triage")


async def test_keys_create_an_incident_or_close_a_report(utc) -> None:  # noqa: F811
    app, sent = triage_console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+o", "c")
        await pilot.pause()
        prompt = app.query_one("#tq-prompt")
        assert prompt.has_focus
        assert prompt.value == "3 CONCERN Trinity Centre, Leeds"  # type: ignore[attr-defined]
        await pilot.press("ctrl+u", *"9 THEFT", "enter")
        await pilot.pause()
        assert sent == []  # refused where it was typed
        error = str(app.query_one("#tq-error", Static).render())
        assert "grade is 1 to 5" in error
        await pilot.press("ctrl+u", *"2 THEFT", "enter")
        await pilot.pause()
        (created,) = sent
        (command,) = created.commands
        assert (command.type, command.report, command.grade) == ("triage_report", WEB, 2)  # type: ignore[attr-defined]
        assert command.location.address == "Trinity Centre, Leeds"  # type: ignore[attr-defined]

        await pilot.press("down", "x")
        await pilot.pause()
        await pilot.press(*"advice given online", "enter")
        await pilot.pause()
        (command,) = sent[1].commands
        assert (command.report, command.outcome.value, command.reason) == (  # type: ignore[attr-defined]
            CHAT,
            "closed",
            "advice given online",
        )
        # Escape leaves a prompt first, then the queue.
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen.has_class("-triage") and len(sent) == 2
        await pilot.press("escape")
        assert not app.screen.has_class("-triage")
