"""The map under 2,000 moving units: paint time and bytes per frame, at 80x24 and 160x50.

The real console app runs headless with the map shown (F6) over a picture of 2,000
on-duty units spread across a large force's ground (about 30 km square around the demo
town, whose gazetteer outlines the sectors) and 300 open incidents. Each frame, `--moves`
units take one random-walk step (30 m in a random direction, seeded) as `UnitLocated`
events folded into the client's store, exactly where the live stream folds them; the
app then applies the batch as its live worker does, and Textual composes the frame.

Headless Textual composes every frame but writes nothing, so the benchmark renders
each frame's update to the escape sequences a terminal would be sent
(`render_segments`, what the app writes when it has a terminal) and counts their bytes.

Figures per size and moves-per-frame, over `--frames` frames:

- paint: the console's work for one frame, from the batch handed to the app to the
  frame's bytes ready to write (the boards and the map following the batch, the
  compositor, the escape sequences), p50/p99. Folding the events is timed apart (fold);
- map share: of that, the map's own work (following the batch, placing its markers,
  rendering its lines), p50/p99;
- latency: the same, but from the batch to the bytes including the wait for Textual's
  next frame tick (at most 1/60 s), p50/p99;
- bytes per frame, p50/p99 and mean, and lines the map repainted per frame;
- for scale: the bytes of a full repaint of the map (after a pan);
- the machine's speed (`_speed.machine_speed`) in the same run.

Run:  .venv/bin/python bench/bench_map.py [--frames 1000] [--moves 2000,100]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, machine, pct
from _speed import machine_speed

from cadterm.client import DispatchClient
from cadterm.client.stream import LinkState, LinkStatus
from cadterm.domain.gazetteer_csv import read_gazetteer_csv
from cadterm.domain.geography import offset
from cadterm.protocol.domain import Location, Position, UnitState
from cadterm.protocol.events import IncidentCreated, UnitBookedOn, UnitLocated, UnitStateChanged
from cadterm.protocol.fold import fold
from cadterm.sim.gazetteer import BRACKLEY_CSV
from cadterm.tui.app import CadApp
from cadterm.tui.settings import ConsoleSettings

NOW = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
SIZES = ((80, 24), (160, 50))
STEP_KM = 0.03  # a car at 50 km/h between fixes two seconds apart, roughly
SPREAD_KM = 15.0  # units across +/- 15 km of the town centre


def _event(cls: type, seq: int, **fields):
    return cls(seq=seq, at=NOW, operator="bench", workstation="ws-bench", **fields)


def build_picture(units: int, incidents: int, seed: int):
    """The picture: `units` on duty in a mix of states, `incidents` open at gazetteer places."""
    rng = random.Random(seed)
    with BRACKLEY_CSV.open(encoding="utf-8", newline="") as lines:
        places = read_gazetteer_csv(lines, source="brackley.csv")
    centre = places.entries[0].position
    events = []
    states = [UnitState.AVAILABLE_ON_PATROL] * 12 + [UnitState.EN_ROUTE] * 4
    states += [UnitState.AT_SCENE] * 3 + [UnitState.REFRESHMENTS, UnitState.AT_COURT]
    for i in range(units):
        where = offset(
            centre, rng.uniform(-SPREAD_KM, SPREAD_KM), rng.uniform(-SPREAD_KM, SPREAD_KM)
        )
        callsign = f"U{i:04d}"
        events.append(
            _event(
                UnitBookedOn,
                len(events) + 1,
                callsign=callsign,
                unit_type="patrol_car",
                capabilities=[],
                home_sector=None,
                position=where,
            )
        )
        state = rng.choice(states)
        if state != UnitState.AVAILABLE_ON_PATROL:
            events.append(_event(UnitStateChanged, len(events) + 1, callsign=callsign, state=state))
    for i in range(incidents):
        entry = rng.choice(places.entries)
        events.append(
            _event(
                IncidentCreated,
                len(events) + 1,
                reference=f"{i + 1:04d}-01DEC26",
                log_day=date(2026, 12, 1),
                grade=rng.choice((1, 2, 2, 3, 3, 3, 4, 5)),
                incident_type="ASB",
                location=Location(address=entry.name, position=entry.position, sector=entry.sector),
                source="999",
            )
        )
    return fold(events), places


class Probe:
    """What each frame cost and wrote, from hooks on the app's screen."""

    def __init__(self) -> None:
        self.frame_bytes: int | None = None
        self.frame_done_at = 0.0
        self.compose_s = 0.0
        self.map_s = 0.0  # of the frame's work, the map's own: following the batch, its lines


def hook(app: CadApp, probe: Probe) -> None:
    """Render every frame to terminal bytes (headless Textual skips it) and time it."""
    screen = app.screen
    original = screen._compositor_refresh

    def display(_screen, renderable) -> None:
        if renderable is None:
            return
        data = renderable.render_segments(app.console)
        probe.frame_bytes = (probe.frame_bytes or 0) + len(data.encode("utf-8"))

    def refresh() -> None:
        started = time.perf_counter()
        original()
        probe.compose_s += time.perf_counter() - started
        probe.frame_done_at = time.perf_counter()

    view = app.map
    follow, render_line = view.apply_changes, view.render_line

    def timed_follow(incidents, units) -> None:
        started = time.perf_counter()
        follow(incidents, units)
        probe.map_s += time.perf_counter() - started

    def timed_render_line(y: int):
        started = time.perf_counter()
        strip = render_line(y)
        probe.map_s += time.perf_counter() - started
        return strip

    app._display = display  # type: ignore[method-assign]
    screen._compositor_refresh = refresh  # type: ignore[method-assign]
    view.apply_changes = timed_follow  # type: ignore[method-assign]
    view.render_line = timed_render_line  # type: ignore[method-assign]


async def _wait_for_frame(probe: Probe, timeout: float = 0.1) -> bool:
    deadline = time.perf_counter() + timeout
    while probe.frame_bytes is None:
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.0005)
    return True


async def run_size(state, places, size, moves_list, frames: int, seed: int) -> None:
    client = DispatchClient(["http://127.0.0.1:9"], "unused")
    client.store.load_snapshot(state)
    client.store.take_changes()
    client.subscription.status = LinkStatus(LinkState.LIVE, NOW)
    app = CadApp(client, ConsoleSettings(bell=False), clock=lambda: NOW, connect=False)
    probe = Probe()
    async with app.run_test(size=size) as pilot:
        app.map.set_places(places)
        await pilot.press("f6")
        for _ in range(20):
            await pilot.pause()
        hook(app, probe)
        view = app.map
        rng = random.Random(seed)
        callsigns = sorted(client.state.units)
        # A full repaint for scale: pan away and back, measuring the frame after the pan.
        probe.frame_bytes = None
        view.action_pan(1, 0)
        await _wait_for_frame(probe, 1.0)
        full_bytes = probe.frame_bytes or 0
        view.action_pan(-1, 0)
        await _wait_for_frame(probe, 1.0)
        await pilot.pause()
        emit(
            "map_full_repaint",
            size=f"{size[0]}x{size[1]}",
            map_cells=f"{view.window.columns}x{view.window.rows}",
            scale_m_per_column=view.window.metres_per_column,
            markers=len(view.markers),
            crowded=view.placement.crowded,
            off_map=view.placement.off_map,
            full_map_frame_bytes=full_bytes,
        )
        for moves in moves_list:
            paint, latency, fold_ms, sent, lines, map_ms = [], [], [], [], [], []
            gc.collect()
            for _ in range(frames):
                moved = rng.sample(callsigns, moves)
                started = time.perf_counter()
                for callsign in moved:
                    unit = client.state.units[callsign]
                    heading = rng.uniform(0, 2 * math.pi)
                    where = offset(
                        unit.position, STEP_KM * math.cos(heading), STEP_KM * math.sin(heading)
                    )
                    client.store.apply(
                        UnitLocated(
                            seq=client.seq + 1,
                            at=NOW,
                            operator="bench",
                            workstation="ws-bench",
                            callsign=callsign,
                            position=Position(lat=where.lat, lon=where.lon),
                            fixed_at=NOW,
                        )
                    )
                changes = client.store.take_changes()
                folded = time.perf_counter()
                fold_ms.append((folded - started) * 1000)
                probe.frame_bytes = None
                probe.compose_s = 0.0
                probe.map_s = 0.0
                painted = view.painted_lines
                app.apply_changes(changes.incidents, changes.units)
                applied = time.perf_counter() - folded
                if await _wait_for_frame(probe):
                    latency.append((probe.frame_done_at - folded) * 1000)
                    sent.append(probe.frame_bytes or 0)
                else:  # nothing on screen changed: no frame, no bytes
                    latency.append(applied * 1000)
                    sent.append(0)
                paint.append((applied + probe.compose_s) * 1000)
                map_ms.append(probe.map_s * 1000)
                lines.append(view.painted_lines - painted)
            emit(
                "map_frames",
                size=f"{size[0]}x{size[1]}",
                units=len(callsigns),
                moves_per_frame=moves,
                frames=frames,
                paint_p50_ms=round(pct(paint, 50), 2),
                paint_p99_ms=round(pct(paint, 99), 2),
                map_share_p50_ms=round(pct(map_ms, 50), 2),
                map_share_p99_ms=round(pct(map_ms, 99), 2),
                latency_p50_ms=round(pct(latency, 50), 2),
                latency_p99_ms=round(pct(latency, 99), 2),
                fold_p50_ms=round(pct(fold_ms, 50), 2),
                bytes_p50=pct(sent, 50),
                bytes_p99=pct(sent, 99),
                bytes_mean=round(sum(sent) / len(sent), 1),
                map_lines_repainted_mean=round(sum(lines) / len(lines), 2),
                frames_with_no_bytes=sent.count(0),
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames per case (>= 1000)")
    parser.add_argument("--moves", default="2000,100", help="units moving per frame")
    parser.add_argument("--units", type=int, default=2000)
    parser.add_argument("--incidents", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    moves = [min(int(m), args.units) for m in args.moves.split(",")]
    emit("machine", **machine(), **machine_speed())
    for size in SIZES:  # a fresh picture per size: the same seed, the same start
        state, places = build_picture(args.units, args.incidents, args.seed)
        asyncio.run(run_size(state, places, size, moves, args.frames, args.seed))
    emit("machine_after", **machine_speed())


if __name__ == "__main__":
    main()
