"""Long daily references in the incident queue: the REF column never grows.

Past 9,999 incidents in a day a reference has five digits (``50003-27NOV26``). The queue
shows it in the same ten characters as ``0042-27NOV``, so every column after REF stays
where it is at 80x24.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from console_helpers import screen_text

from cadterm.client import DispatchClient, LinkState, LinkStatus
from cadterm.protocol.domain import Location, Position
from cadterm.protocol.events import IncidentCreated
from cadterm.protocol.fold import fold
from cadterm.tui.app import CadApp
from cadterm.tui.incident_queue import REF_WIDTH, short_reference
from cadterm.tui.settings import ConsoleSettings

NOW = datetime(2026, 11, 27, 14, 5, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("reference", "shown"),
    [
        ("0042-27NOV26", "0042-27NOV"),
        ("9999-01DEC26", "9999-01DEC"),
        ("50003-27NOV26", "50003-27"),
        ("123456-27NOV26", "123456-27"),
    ],
)
def test_short_reference_fits_the_column(reference: str, shown: str) -> None:
    assert short_reference(reference) == shown
    assert len(shown) <= REF_WIDTH


def _created(seq: int, reference: str, incident_type: str) -> IncidentCreated:
    return IncidentCreated(
        seq=seq,
        at=NOW - timedelta(minutes=10 - seq),
        operator="disp1",
        workstation="ws-1",
        reference=reference,
        log_day=date(2026, 11, 27),
        grade=2,
        incident_type=incident_type,
        location=Location(address="1 Park Row", position=Position(lat=53.8, lon=-1.55)),
        source="999",
    )


async def test_five_digit_reference_keeps_the_columns_at_80x24() -> None:
    picture = fold([_created(1, "0042-27NOV26", "ASSAULT"), _created(2, "50003-27NOV26", "THEFT")])
    client = DispatchClient(["http://127.0.0.1:9"], "token", workstation="ws-1")
    client.store.load_snapshot(picture)
    client.subscription.status = LinkStatus(LinkState.LIVE, NOW)
    settings = ConsoleSettings(url=["http://127.0.0.1:9"], token="token", workstation="ws-1")
    app = CadApp(client, settings, operator="disp1 (dispatcher)", clock=lambda: NOW, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_text(app).splitlines()
    four = next(line for line in lines if re.match(r"\W*0042-27NOV ", line))
    five = next(line for line in lines if re.match(r"\W*50003-27 ", line))
    header = next(line for line in lines if re.match(r"\W*REF ", line))
    # The grade, the type and the location start in the same column on every row.
    for word, row in (("ASSAULT", four), ("THEFT", five)):
        assert row.index(word) == header.index("TYPE")
        assert row.index("1 Park Row") == header.index("LOCATION")
