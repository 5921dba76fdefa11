"""The drain paints what it applies at once, and a change nothing on screen shows costs
no frame at all.

The console runs on the snapshot tests' fixed picture (never connecting anywhere);
changes are folded into the client's store and drained as the live worker drains them.
Every assertion is on what was written or counted, never on how long it took.
"""

from __future__ import annotations

from test_console_snapshots import LIVE_SINCE, NOW, console

from cadterm.client import LinkState, LinkStatus
from cadterm.protocol.domain import Location
from cadterm.protocol.events import IncidentRelocated, UnitLocated
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput


def _frames(app: CadApp) -> list[str]:
    """Collect every frame the screen hands to the app for the terminal, as text."""
    written: list[str] = []
    original = app._display

    def display(screen, renderable) -> None:
        if renderable is not None:
            written.append(
                "".join(segment.text for segment in app.console.render(renderable))
                if not hasattr(renderable, "render_segments")
                else renderable.render_segments(app.console)
            )
        original(screen, renderable)

    app._display = display  # type: ignore[method-assign]
    return written


def _drain(app: CadApp, event) -> None:
    app.client.store.apply(event)
    changes = app.client.take_changes()
    app.apply_changes(changes.incidents, changes.units)


def _base(app: CadApp) -> dict:
    return {"seq": app.client.seq + 1, "at": NOW, "operator": "disp1", "workstation": "ws-1"}


async def _settled(pilot) -> None:
    pilot.app.query_one(CommandInput).cursor_blink = False  # a blink is a frame too
    for _ in range(3):
        await pilot.pause()


async def test_a_change_on_screen_is_in_the_frame_the_drain_writes_at_once():
    app = console("cadterm-dark", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot)
        reference = app.queue.keys[0]
        incident = app.client.state.incidents[reference]
        written = _frames(app)
        location = Location(address="77 Quarry Lane", position=incident.location.position)
        _drain(app, IncidentRelocated(**_base(app), reference=reference, location=location))
        assert not written  # applied, not yet painted: Textual would wait for its tick
        assert app.paint_now()
        # One frame, written within the same step, with the row's new text in it.
        assert len(written) == 1
        assert "77 Quarry Lane" in written[0]
        assert not app.screen._dirty_widgets


async def test_a_change_nothing_on_screen_shows_writes_no_frame():
    app = console("cadterm-dark", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot)
        unit = app.client.state.units["TR7"]
        assert unit.position is not None
        moved = unit.position.model_copy(update={"lat": unit.position.lat + 0.003})
        _drain(app, UnitLocated(**_base(app), callsign="TR7", position=moved, fixed_at=NOW))
        await _settled(pilot)  # the status line may say when the last event came
        written = _frames(app)
        frames_before = app.frames_painted
        again = moved.model_copy(update={"lon": moved.lon + 0.003})
        _drain(app, UnitLocated(**_base(app), callsign="TR7", position=again, fixed_at=NOW))
        # The unit board shows no position and the map is hidden: nothing to paint.
        assert not app.paint_now()
        await _settled(pilot)
        assert written == [] and app.frames_painted == frames_before


async def test_the_status_line_says_live_only_with_the_live_picture():
    """A link that goes live with a snapshot still waiting for the drain keeps its old
    status (and the banner) until the boards show that snapshot: never LIVE over the
    last known picture."""
    from test_console_snapshots import dispatch_picture

    from cadterm.protocol.domain import UnitType
    from cadterm.protocol.events import UnitBookedOn
    from cadterm.protocol.fold import apply
    from cadterm.tui.status import StaleBanner, StatusBar

    app = console("cadterm-dark", LinkStatus(LinkState.RESYNCING, LIVE_SINCE))
    async with app.run_test(size=(120, 40)) as pilot:
        await _settled(pilot)
        bar, banner = app.query_one(StatusBar), app.query_one(StaleBanner)
        assert "RESYNCING" in str(bar.render()) and banner.has_class("-shown")
        live = dispatch_picture()
        apply(live, UnitBookedOn(**_base(app), callsign="NC11", unit_type=UnitType.PATROL_CAR))
        # What the subscription does as its snapshot arrives: picture in, link live.
        app.client.store.load_snapshot(live)
        app.client._applied()
        app.client.subscription.status = LinkStatus(LinkState.LIVE, NOW)
        app.refresh_status()  # as the status listener does
        assert "LIVE" not in str(bar.render()).replace("NOT LIVE", "")
        assert banner.has_class("-shown") and "NC11" not in app.units.keys
        changes = app.client.take_changes()  # the drain
        app.apply_changes(changes.incidents, changes.units, replaced=changes.replaced)
        assert "| LIVE |" in str(bar.render()) and not banner.has_class("-shown")
        assert "NC11" in app.units.keys
        app.refresh_status()  # from then on the line follows the link at once
        assert "| LIVE |" in str(bar.render())
