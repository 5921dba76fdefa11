"""The last known picture on disk: kept while live, shown when no backend answers.

Real files, a real backend on loopback; the picture read back must be the one the
console last had, with the time it last heard from a backend.
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Backend
from test_journal import DISPATCHER, FAST, TIMEOUT, book_on, live
from test_store_contract import history
from waiting import until

from cadterm.client import DispatchClient
from cadterm.client.picture_file import PictureFile
from cadterm.protocol.fold import apply, fold


def keep(path: Path, events, *, upto: int) -> PictureFile:
    """A PictureFile that saw a snapshot at `upto` and then the rest of `events`."""
    keeper = PictureFile(path)
    state = fold(events[:upto])
    keeper.snapshot_loaded(state)
    keeper._rewrite(state.model_dump_json(), datetime.now(UTC), "http://cad-a")
    lines = []
    for event in events[upto:]:
        apply(state, event)
        lines.append(event.model_dump_json())
    if lines:
        keeper._append(lines, datetime.now(UTC))
    return keeper


def test_picture_and_events_read_back_as_one_picture(tmp_path: Path) -> None:
    events = history(12)
    keep(tmp_path / "picture.json", events, upto=5)
    saved = PictureFile(tmp_path / "picture.json").load()
    assert saved is not None
    assert saved.state.model_dump() == fold(events).model_dump()
    assert saved.backend == "http://cad-a"
    assert datetime.now(UTC) - saved.heard_at < timedelta(minutes=1)
    for name in ("picture.json", "picture.events"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o600


def test_a_torn_last_line_is_ignored_and_old_lines_skipped(tmp_path: Path) -> None:
    events = history(10)
    keep(tmp_path / "picture.json", events, upto=6)
    with open(tmp_path / "picture.events", "a", encoding="utf-8") as out:
        out.write('{"seq": 11, "at": "2026-')  # the console died mid-write
    # Lines from before the last rewrite (seq at or below the picture's) are skipped.
    with open(tmp_path / "picture.events", encoding="utf-8") as lines:
        body = lines.read()
    (tmp_path / "picture.events").write_text(events[2].model_dump_json() + "\n" + body)
    saved = PictureFile(tmp_path / "picture.json").load()
    assert saved is not None and saved.state.model_dump() == fold(events).model_dump()


def test_an_unreadable_picture_is_no_picture(tmp_path: Path) -> None:
    (tmp_path / "picture.json").write_text('{"format": 1, "state": {"seq": "x"}}')
    assert PictureFile(tmp_path / "picture.json").load() is None
    (tmp_path / "picture.json").write_text("not json at all \x1b[2J")
    assert PictureFile(tmp_path / "picture.json").load() is None
    assert PictureFile(tmp_path / "absent.json").load() is None


async def test_a_console_started_with_no_backend_shows_its_last_picture(
    backend: Backend, backend_factory, tmp_path: Path
) -> None:
    path = tmp_path / "console" / "picture.json"
    async with live(backend, picture_path=path) as client:
        for callsign in ("AB1", "AB2", "AB3"):
            await client.execute(book_on(callsign))
        assert client.saved_picture is None  # live: the real picture is shown
        last = client.state.model_dump()
        seq = client.seq
    # Closing wrote it whole.
    saved = PictureFile(path).load()
    assert saved is not None and saved.state.seq == seq
    heard = saved.heard_at
    backend_factory.stop(backend)

    offline = DispatchClient([backend.url], DISPATCHER, backoff=FAST, picture_path=path)
    async with offline:
        shown = offline.saved_picture
        assert shown is not None and shown.heard_at == heard
        assert offline.state.model_dump() == last
        assert set(offline.units) == {"AB1", "AB2", "AB3"}
        await until(lambda: offline.status.attempts >= 2, timeout=TIMEOUT)
        assert offline.saved_picture is not None  # still the last known one, still its time
    # Closing while offline keeps the time it was last heard, not the time it closed.
    again = PictureFile(path).load()
    assert again is not None and again.heard_at == heard

    backend.start()
    async with DispatchClient([backend.url], DISPATCHER, backoff=FAST, picture_path=path) as back:
        await back.wait_live(TIMEOUT)
        assert back.saved_picture is None
        assert back.state.model_dump() == last


def test_a_picture_read_from_disk_is_kept_out_of_the_collector_at_once(tmp_path: Path) -> None:
    """The console freezes a picture it read from disk before catching up from it, so
    the catch-up's collections walk only the new events (cli/console.py)."""
    import gc

    from cadterm.cli.console import tune_gc_for_a_live_picture

    events = history(40)
    path = tmp_path / "picture.json"
    keep(path, events, upto=len(events))
    thresholds = gc.get_threshold()
    try:
        gc.unfreeze()
        without = DispatchClient(["http://127.0.0.1:9"], DISPATCHER, workstation="ws")
        tune_gc_for_a_live_picture(without)
        assert gc.get_freeze_count() == 0  # nothing read from disk: nothing to freeze yet
        with_picture = DispatchClient(
            ["http://127.0.0.1:9"], DISPATCHER, workstation="ws", picture_path=path
        )
        assert with_picture.saved_picture is not None
        tune_gc_for_a_live_picture(with_picture)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_the_collector_passes_rarely_while_catching_up_and_at_python_s_pace_while_live() -> None:
    """Young passes are made rare while a picture is caught up (throughput) and left at
    Python's own thresholds while live, where each pass lands inside a frame."""
    import gc

    from cadterm.cli.console import GC_CATCHING_UP, GC_LIVE, tune_gc_for_a_live_picture
    from cadterm.client import LinkState, LinkStatus

    thresholds = gc.get_threshold()
    client = DispatchClient(["http://127.0.0.1:9"], DISPATCHER, workstation="ws")
    try:
        tune_gc_for_a_live_picture(client)
        assert gc.get_threshold() == GC_CATCHING_UP
        now = datetime.now(UTC)
        for state, expected in [
            (LinkState.LIVE, GC_LIVE),
            (LinkState.RESYNCING, GC_CATCHING_UP),
            (LinkState.LIVE, GC_LIVE),
        ]:
            for listener in client._status_listeners:
                listener(LinkStatus(state, now))
            assert gc.get_threshold() == expected, state
        assert GC_LIVE[0] < GC_CATCHING_UP[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
