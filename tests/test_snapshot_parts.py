"""A large picture reaches a subscriber in parts that a library's defaults accept.

The server's store is filled with a long shift of real events (ten thousand incidents,
about 11 MB of picture, and 300 units), the server rebuilds its picture from them at
start, and a subscriber using the plain `websockets` library with its default
`max_size` (1 MiB) reads the snapshot: every frame is within `SNAPSHOT_PART_BYTES`, and
folding the parts gives exactly the server's picture. The console's own client goes
live on it too.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import TOKENS, BackendThread, make_config
from websockets.asyncio.client import connect

from cadterm.client import DispatchClient
from cadterm.client.link import LinkRules
from cadterm.client.store import LocalStore
from cadterm.protocol.domain import Location, Position, Role
from cadterm.protocol.events import (
    Event,
    IncidentClosed,
    IncidentCreated,
    NoteAdded,
    UnitAssigned,
    UnitBookedOn,
)
from cadterm.protocol.fold import DispatchState, fold
from cadterm.protocol.frames import (
    SERVER_FRAME_ADAPTER,
    SNAPSHOT_PART_BYTES,
    SUBPROTOCOL,
    CaughtUp,
    SnapshotPart,
)
from cadterm.server.snapshot_parts import snapshot_frames
from cadterm.server.store import SQLiteEventStore

TOKEN = TOKENS[Role.DISPATCHER]
INCIDENTS = 10_000
UNITS = 300
START = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)


def long_shift() -> list[Event]:
    """A busy shift as the server's rules would have recorded it, oldest first."""
    events: list[Event] = []

    def add(cls: type, **fields) -> None:
        seq = len(events) + 1
        at = START + timedelta(milliseconds=seq)
        events.append(cls(seq=seq, at=at, operator="disp1", workstation="ws-1", **fields))

    for n in range(UNITS):
        add(UnitBookedOn, callsign=f"U{n:03d}", unit_type="patrol_car", home_sector="LS1")
    for n in range(1, INCIDENTS + 1):
        reference = f"{n:04d}-27NOV26"
        add(
            IncidentCreated,
            reference=reference,
            grade=1 + n % 4,
            incident_type="THEFT",
            description=f"Bike {n} taken from outside the library",
            location=Location(
                address=f"{n} High Street", position=Position(lat=53.8, lon=-1.55), sector="LS1"
            ),
            source="999",
        )
        add(NoteAdded, reference=reference, text="Caller rang back: no change")
        if n <= UNITS:  # the first few are still being worked
            add(UnitAssigned, reference=reference, callsign=f"U{n - 1:03d}")
        else:
            add(IncidentClosed, reference=reference, closing_code="RESOLVED")
    return events


def fill_store(path: Path, events: list[Event]) -> None:
    """Write `events` to a new event store at `path` in one transaction.

    Through the store's own file layout (``events(seq, type, at, body)``): appending
    them one durable command at a time would take minutes, and the server rebuilds its
    picture from these rows at start exactly as from appended ones.
    """
    SQLiteEventStore(path).close()  # create and migrate the file
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO events (seq, type, at, body) VALUES (?, ?, ?, ?)",
            ((e.seq, e.type, e.at.isoformat(), e.model_dump_json()) for e in events),
        )


@pytest.fixture(scope="module")
def shift() -> DispatchState:
    return fold(long_shift())


def test_parts_fold_to_the_picture_and_stay_under_the_limit(shift: DispatchState) -> None:
    frames = snapshot_frames(shift, "requested", SNAPSHOT_PART_BYTES)
    assert len(frames) > 4
    assert max(len(frame.encode()) for frame in frames) <= SNAPSHOT_PART_BYTES
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    effects = [rules.received(frame, 0.0) for frame in frames]
    assert all(not e for e in effects[:-1]) and effects[-1]
    assert rules.store.state == shift


def test_a_small_picture_is_still_one_snapshot_frame() -> None:
    (frame,) = snapshot_frames(DispatchState(seq=3), "requested", SNAPSHOT_PART_BYTES)
    assert json.loads(frame)["type"] == "snapshot"


async def test_a_default_websockets_client_reads_a_long_shift_snapshot(
    tmp_path: Path, shift: DispatchState
) -> None:
    path = tmp_path / "cad.db"
    fill_store(path, long_shift())
    with BackendThread(path, make_config()) as backend:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        # The library's defaults: max_size is 1 MiB; a larger frame would close 1009.
        async with connect(
            backend.ws_url, subprotocols=[SUBPROTOCOL], additional_headers=headers, proxy=None
        ) as conn:
            await conn.send('{"type":"subscribe"}')
            parts: list[SnapshotPart] = []
            sizes: list[int] = []
            for _ in range(10_000):
                raw = await conn.recv()
                sizes.append(len(raw.encode()))
                frame = SERVER_FRAME_ADAPTER.validate_json(raw)
                if isinstance(frame, CaughtUp):
                    break
                assert isinstance(frame, SnapshotPart)
                parts.append(frame)
        assert max(sizes) <= SNAPSHOT_PART_BYTES
        assert [p.part for p in parts] == list(range(1, len(parts) + 1)) and len(parts) > 4
        assert {p.parts for p in parts} == {len(parts)} and {p.seq for p in parts} == {shift.seq}
        folded = DispatchState(seq=shift.seq)
        for part in parts:
            folded.incidents.update(part.state.incidents)
            folded.units.update(part.state.units)
            folded.log_day, folded.log_number = part.state.log_day, part.state.log_number
        async with httpx.AsyncClient(headers=headers, timeout=20, trust_env=False) as http:
            server = (await http.get(f"{backend.url}/v1/state")).json()
        assert folded.model_dump(mode="json") == server
        assert folded == shift

        # The console's client goes live on the same picture from the same parts.
        async with DispatchClient([backend.url], TOKEN, workstation="ws-1") as client:
            await client.wait_live(20)
            assert client.state == shift
