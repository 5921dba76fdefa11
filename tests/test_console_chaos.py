"""Chaos: the real console against a backend that misbehaves in a seeded random order.

The backend (`chaos_backend.ChaosBackend`) is a real WebSocket server on loopback.
Across its connections it sends thousands of frames: valid events, schema-valid odd
values, huge texts, heartbeats, and each connection ends in a fault (invalid JSON, an
unknown frame type, a seq gap or repeat, an event about nothing, abrupt and coded
closes). After each fault the console must still be running, its screen must say what
the backend did (LIVE after a good picture, RECONNECTING after a cut, STOPPED with the
reason after a violation), and every fault must be in the console's log file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from chaos_backend import ENDINGS, ChaosBackend, Episode
from console_helpers import screen_text, until
from textual.pilot import Pilot

from cadterm.cli.console import keep_a_log
from cadterm.client import Backoff, DispatchClient, LinkState
from cadterm.tui.app import CadApp
from cadterm.tui.settings import ConsoleSettings
from cadterm.tui.status import StaleBanner

EPISODES = 36
SIZE = (200, 40)  # wide enough for the banner to hold a whole reason on one row
TOKEN = "chaos-token-0123456789abcdef"


def _status_bar(app: CadApp) -> str:
    return screen_text(app).splitlines()[-1]


def _banner(app: CadApp) -> str:
    """The stale banner's rows as on screen, joined (a long reason wraps to a second)."""
    region = app.query_one(StaleBanner).region
    rows = screen_text(app).splitlines()[region.y : region.y + region.height]
    return " ".join(row.strip() for row in rows)


async def _play(pilot: Pilot, app: CadApp, backend: ChaosBackend, episode: Episode) -> str:
    """Let one episode in, and check the screen at each of its checkpoints.

    Returns the stale banner as the episode's ending left it ("" for one that ends live).
    """
    client = app.client
    backend.release(episode)
    number, what = await _checkpoint(pilot, backend)
    cut_in_the_picture = episode.ending is not None and episode.ending.name == "parts_cut"
    assert (number, what) == (episode.number, "ended" if cut_in_the_picture else "live")
    if what == "live":
        await until(
            pilot,
            lambda: " | LIVE | " in _status_bar(app) and "NOT LIVE" not in screen_text(app),
            10,
            what=f"LIVE after episode {number}'s picture",
        )
        assert client.store.state.seq == backend.truth.seq
        backend.proceed()
        number, what = await _checkpoint(pilot, backend)
        assert (number, what) == (episode.number, "ended")
    if episode.ending is None:
        await until(pilot, lambda: client.store.state.seq == backend.truth.seq, 10, what="head")
        backend.proceed()
        return ""
    ending = episode.ending
    word = ending.state.value.upper()
    await until(
        pilot,
        lambda: f" | {word} | " in _status_bar(app) and ending.reason in _banner(app),
        10,
        what=f"{word}: {ending.reason} after {ending.name} (#{number})",
    )
    assert app.is_running
    banner = _banner(app)
    backend.proceed()
    if ending.state == LinkState.STOPPED:
        assert "Ctrl+R tries again" in banner
        await pilot.press("ctrl+r")
    return banner


async def _checkpoint(pilot: Pilot, backend: ChaosBackend) -> tuple[int, str]:
    return await until(
        pilot,
        lambda: None if backend.checkpoints.empty() else backend.checkpoints.get_nowait(),
        10,
        what="the backend's next checkpoint",
    )


@contextlib.asynccontextmanager
async def chaos_console(
    tmp_path: Path, seed: int, size: tuple[int, int] = SIZE
) -> AsyncIterator[tuple[CadApp, Pilot, ChaosBackend, Path]]:
    """The real console on a `ChaosBackend`, keeping its log in `tmp_path`."""
    backend = ChaosBackend(seed)
    await backend.start()
    log_path = tmp_path / "console.log"
    handler = keep_a_log(log_path)
    assert handler is not None
    client = DispatchClient(
        [backend.url], TOKEN, workstation="ws-test", backoff=Backoff(base=0.02, cap=0.2)
    )
    settings = ConsoleSettings(url=[backend.url], token=TOKEN, workstation="ws-test")
    app = CadApp(client, settings)
    app.bell = lambda: None  # type: ignore[method-assign]
    try:
        async with app.run_test(size=size) as pilot:
            yield app, pilot, backend, log_path
            await pilot.pause()
    finally:
        await client.close()
        await backend.close()
        logging.getLogger("cadterm").removeHandler(handler)
        handler.close()


@pytest.mark.parametrize("seed", [20261127])
async def test_the_console_outlives_a_misbehaving_backend_and_says_what_it_did(
    tmp_path: Path, seed: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with chaos_console(tmp_path, seed) as (app, pilot, backend, log_path):
        plan = backend.plan(EPISODES)
        for episode in plan:
            await _play(pilot, app, backend, episode)
        assert app.is_running and app.return_code is None
        # The console's picture is the backend's truth, event for event.
        assert app.client.store.state.model_dump() == backend.truth.model_dump()

    assert backend.frames_sent >= 3000, backend.frames_sent
    assert backend.connections == EPISODES
    assert {"snapshot", "parts", "replay"} <= set(backend.pictures), backend.pictures
    # Every fault the console met is in its log, in the order it met them.
    log = log_path.read_text(encoding="utf-8").splitlines()
    said = [line for line in log if "link reconnecting (" in line or "link stopped (" in line]
    faults = [episode.ending for episode in plan if episode.ending is not None]
    position = 0
    for ending in faults:
        word = f"link {ending.state.value} ({ending.reason}"
        found = next((i for i in range(position, len(said)) if word in said[i]), None)
        assert found is not None, f"{word!r} not in the log after line {position}: {said}"
        position = found + 1
    assert not [line for line in log if "Traceback" in line or "internal error" in line]
    # Every close was the console's own choice, never an error in its WebSocket library
    # (which would close with 1011) nor a connection handler of the backend that failed.
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not failures, [r.getMessage() for r in failures]


async def test_a_long_reason_never_hides_how_to_start_the_link_again(tmp_path: Path) -> None:
    """At 80 columns a stop's reason (pydantic's list of frame types) is two rows long:
    the banner cuts the reason, never the Ctrl+R that starts the link again."""
    async with chaos_console(tmp_path, 1, size=(80, 24)) as (app, pilot, backend, _):
        stop = Episode(0, 5, False, ENDINGS["unknown_type"])
        banner = await _play(pilot, app, backend, stop)
        assert "unreadable frame from the server" in banner and "…" in banner
        await _play(pilot, app, backend, Episode(1, 5, False, None))
