"""What the console looks like: SVG snapshots of the main screen, for every built-in theme.

The picture is fixed (a list of protocol events folded into a `DispatchState`), the clock
is fixed (2026-11-27 14:05:00 UTC, with ``TZ=UTC`` so local times print the same
everywhere), the link status is fixed, and the command field's cursor does not blink, so
a snapshot changes only when the console's looks do. The client is never started: the
app runs with ``connect=False`` and shows the client's picture as it is.

Regenerate after an intended change with ``pytest tests/test_console_snapshots.py
--snapshot-update`` and look at the SVGs in ``tests/__snapshots__/`` before committing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from textual.pilot import Pilot

from cadterm.client import DispatchClient, LinkState, LinkStatus
from cadterm.protocol.domain import Location, Position, UnitState
from cadterm.protocol.events import (
    Event,
    IncidentClosed,
    IncidentCreated,
    NoteAdded,
    UnitAssigned,
    UnitBookedOn,
    UnitLocated,
    UnitStateChanged,
)
from cadterm.protocol.fold import DispatchState, fold
from cadterm.themes import THEMES
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.settings import ConsoleSettings

NOW = datetime(2026, 11, 27, 14, 5, 0, tzinfo=UTC)
DAY = date(2026, 11, 27)
LIVE_SINCE = NOW - timedelta(hours=2, minutes=13, seconds=7)
LOST_AT = NOW - timedelta(seconds=47)


def _at(minutes_ago: float) -> datetime:
    return NOW - timedelta(minutes=minutes_ago)


class _Log:
    """Builds a gap-free event list, one call per event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def add(self, cls: type, minutes_ago: float, **fields: Any) -> None:
        self.events.append(
            cls(
                seq=len(self.events) + 1,
                at=_at(minutes_ago),
                operator="disp1",
                workstation="ws-1",
                **fields,
            )
        )

    def incident(
        self,
        number: int,
        minutes_ago: float,
        grade: int,
        incident_type: str,
        address: str,
        lat: float,
        lon: float,
        sector: str = "LS1",
        description: str = "",
    ) -> str:
        reference = f"{number:04d}-27NOV26"
        self.add(
            IncidentCreated,
            minutes_ago,
            reference=reference,
            log_day=DAY,
            grade=grade,
            incident_type=incident_type,
            location=Location(address=address, position=Position(lat=lat, lon=lon), sector=sector),
            source="999",
            description=description,
        )
        return reference

    def unit(
        self,
        callsign: str,
        minutes_ago: float,
        unit_type: str = "patrol_car",
        capabilities: tuple[str, ...] = (),
        sector: str = "LS1",
        at: tuple[float, float] = (53.80, -1.55),
    ) -> None:
        self.add(
            UnitBookedOn,
            minutes_ago,
            callsign=callsign,
            unit_type=unit_type,
            capabilities=list(capabilities),
            home_sector=sector,
            position=Position(lat=at[0], lon=at[1]),
        )

    def state(self, callsign: str, minutes_ago: float, state: UnitState) -> None:
        self.add(UnitStateChanged, minutes_ago, callsign=callsign, state=state)


def dispatch_picture() -> DispatchState:
    """A fixed afternoon: 8 open incidents (and one closed), 13 units, one state-0 alarm."""
    log = _Log()
    for callsign, sector, caps, unit_type, at in (
        ("AB12", "LS1", ("taser", "first_aid"), "patrol_car", (53.797, -1.548)),
        ("AB13", "LS1", ("first_aid",), "patrol_car", (53.801, -1.541)),
        ("AB14", "LS1", (), "van", (53.790, -1.560)),
        ("AB15", "LS1", ("taser",), "patrol_car", (53.806, -1.552)),
        ("AB16", "LS1", (), "foot", (53.799, -1.546)),
        ("ARV 1", "LS2", ("firearms", "taser"), "armed_response", (53.812, -1.580)),
        ("CD21", "LS2", (), "patrol_car", (53.820, -1.600)),
        ("CD22", "LS2", ("first_aid",), "patrol_car", (53.825, -1.590)),
        ("CD23", "LS2", (), "van", (53.830, -1.610)),
        ("DOG 2", "LS2", ("dog",), "dog", (53.815, -1.570)),
        ("TR7", "LS3", ("traffic", "first_aid"), "traffic", (53.760, -1.520)),
        ("TR8", "LS3", ("traffic",), "motorcycle", (53.750, -1.500)),
        ("EF31", "LS3", (), "cid", (53.740, -1.530)),
    ):
        log.unit(callsign, 300, unit_type, caps, sector, at)

    breach = log.incident(
        1, 26, 1, "ASSAULT", "Briggate, Leeds LS1 6HD", 53.7985, -1.5413,
        description="Male on the ground, crowd gathering.",
    )  # fmt: skip
    warn = log.incident(
        2, 12, 1, "ROBBERY", "Co-op, 21 Kirkgate, Leeds", 53.7966, -1.5390,
        description="Staff threatened with a knife; suspect still outside.",
    )  # fmt: skip
    scene = log.incident(
        3, 48, 2, "DOMESTIC", "14 Harehills Lane, Leeds LS8", 53.8150, -1.5200, "LS2"
    )
    log.incident(4, 3, 2, "CONCERN", "Leeds Station, New Station St", 53.7955, -1.5475)
    log.incident(5, 295, 3, "BURGLARY", "7 Otley Road, Headingley", 53.8190, -1.5770, "LS2")
    log.incident(6, 125, 3, "CRIMDAM", "Car park, Roundhay Road", 53.8250, -1.5190, "LS2")
    log.incident(7, 184, 4, "FRAUD", "42 Wetherby Road, Leeds", 53.8300, -1.4900, "LS3")
    log.incident(8, 37, 5, "ASB", "Millennium Square, Leeds", 53.8010, -1.5480)
    closed = log.incident(9, 240, 3, "THEFT", "Trinity Centre, Leeds", 53.7960, -1.5440)
    log.add(IncidentClosed, 200, reference=closed, closing_code="NFA")

    log.add(UnitAssigned, 45, reference=scene, callsign="AB14")
    log.state("AB14", 31, UnitState.AT_SCENE)  # 31 min at scene: due a safety check
    log.add(UnitAssigned, 45, reference=scene, callsign="CD21")
    log.state("CD21", 40, UnitState.AT_SCENE)
    log.add(UnitLocated, 5, callsign="CD21", position=Position(lat=53.815, lon=-1.52),
            fixed_at=_at(5))  # fmt: skip
    log.add(UnitAssigned, 9, reference=warn, callsign="AB13")
    log.add(NoteAdded, 7, reference=warn, text="Caller says suspect wearing grey hoodie.")
    log.add(UnitAssigned, 10, reference=breach, callsign="ARV 1")
    log.state("AB15", 2, UnitState.EMERGENCY)  # not acknowledged: the alarm banner
    log.state("AB16", 25, UnitState.REFRESHMENTS)
    log.state("CD22", 60, UnitState.AVAILABLE_AT_STATION)
    log.state("CD23", 90, UnitState.PRISONER_ESCORT)
    log.state("TR8", 15, UnitState.AT_COURT)
    log.state("EF31", 120, UnitState.COMMITTED_NOT_DEPLOYABLE)
    return fold(log.events)


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time is UTC while the test runs, so clock text is the same on every machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def console(theme: str, link: LinkStatus) -> CadApp:
    """The console on the fixed picture, never connecting anywhere."""
    client = DispatchClient(["http://127.0.0.1:9"], "snapshot-token", workstation="ws-1")
    client.store.load_snapshot(dispatch_picture())
    client.subscription.status = link
    settings = ConsoleSettings(
        url=["http://127.0.0.1:9"], token="snapshot-token", workstation="ws-1", theme=theme
    )
    return CadApp(client, settings, operator="disp1 (dispatcher)", clock=lambda: NOW, connect=False)


async def steady_cursor(pilot: Pilot) -> None:
    """A blinking cursor would make every other snapshot differ: hold it visible."""
    pilot.app.query_one(CommandInput).cursor_blink = False
    await pilot.pause()


def test_picture_is_what_the_snapshots_claim() -> None:
    """Guard the fixture: a breached and a warning grade 1, an at-scene job, an alarm."""
    state = dispatch_picture()
    open_incidents = [i for i in state.incidents.values() if i.status != "closed"]
    assert len(open_incidents) == 8
    assert len(state.units) == 13
    assert state.units["AB15"].state == UnitState.EMERGENCY
    assert state.units["AB15"].emergency_acknowledged_by is None
    assert state.incidents["0003-27NOV26"].status == "at_scene"


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
@pytest.mark.parametrize("theme", list(THEMES))
def test_main_screen(snap_compare, utc, theme: str, size: tuple[int, int]) -> None:
    app = console(theme, LinkStatus(LinkState.LIVE, LIVE_SINCE))
    assert snap_compare(app, terminal_size=size, run_before=steady_cursor)


def test_main_screen_not_live(snap_compare, utc) -> None:
    link = LinkStatus(
        LinkState.RECONNECTING,
        LOST_AT,
        reason="connection lost without a close frame",
        attempts=4,
    )
    app = console("cadterm-dark", link)
    assert snap_compare(app, terminal_size=(80, 24), run_before=steady_cursor)


def test_detail_pane_open(snap_compare, utc) -> None:
    async def open_detail(pilot: Pilot) -> None:
        await steady_cursor(pilot)
        await pilot.press("pagedown", "f4")

    app = console("cadterm-dark", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    assert snap_compare(app, terminal_size=(160, 50), run_before=open_detail)
