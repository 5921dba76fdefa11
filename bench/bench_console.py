"""Console under load: event-to-paint latency, key echo, CPU and memory, against DataTable.

The real console app runs headless (Textual still lays out and renders every frame; it
just does not write to a terminal) over a picture of 10,000 open incidents and 2,000
units. Events are folded into the client's store at a steady rate, exactly where the
live stream would fold them, and the app drains them as it does in service. We record:

- frames: compositor refreshes while the load ran;
- event-to-paint: from an event touching a row on screen being folded to that row's
  line being composed into a frame and the frame turned into terminal bytes (p50/p99),
  over at least `--samples` such events at each rate (the run at a rate is lengthened
  until it has them);
- key echo: from a key press posted to the app to the command line rendering it (p99);
- CPU share of one core and peak RSS of the process;
- both boards run with the collector as a live `cadterm console` sets it (`gc.freeze()`
  of the loaded picture, Python's own young-generation thresholds), so a full
  collection over a picture that lives as long as the process does not stall either
  of them, and no young pass is long;
- the output step: each composed frame is turned into terminal bytes as a terminal
  would be sent them (Textual's `render_segments`, then for cadterm its driver's cut
  down to the cells that changed, `PaintedScreen`; the stock driver writes the frame as
  it is), timed per frame (output p50/p99) and counted (bytes/s). The clock of
  event-to-paint stops once that is done, not when the frame is composed.

The baseline, in the same run, is a stock `DataTable` of the same 10,000 rows fed the
same events (`update_cell` on the row each event touches).

The machine's speed (`json.loads` a second) and load average are printed at the start
and the end of each board's run.

Run:  .venv/bin/python bench/bench_console.py [--seconds 10] [--rates 100,200,1000]
      [--samples 1000] [--board cadterm|datatable|both]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, machine, pct
from _speed import machine_speed
from console_load import EventStream, big_picture
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import DataTable, Input

from cadterm.cli.console import GC_LIVE, tune_gc_for_a_live_picture
from cadterm.client import DispatchClient
from cadterm.client.stream import LinkState, LinkStatus
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.incident_queue import IncidentQueue
from cadterm.tui.settings import ConsoleSettings

SIZE = (120, 40)
LONGEST = 120.0  # seconds: the most a rate's run is lengthened to reach its samples


class Probe:
    """Arrival and paint times, shared by the hooks below."""

    def __init__(self) -> None:
        self.pending: dict[str, list[float]] = defaultdict(list)
        self.rendered: list[float] = []  # arrivals whose row is rendered, frame not done
        self.latencies: list[float] = []
        self.key_sent: list[tuple[int, float]] = []
        self.echo: list[float] = []
        self.frames = 0
        self.measuring = False

    def arrived(self, key: str) -> None:
        if self.measuring:
            self.pending[key].append(time.perf_counter())

    def painted(self, key: str) -> None:
        """The row was rendered; it reaches the screen with the frame being composed."""
        waiting = self.pending.pop(key, None)
        if waiting:
            self.rendered.extend(waiting)

    def frame_done(self) -> None:
        if self.rendered:
            now = time.perf_counter()
            self.latencies.extend(now - t for t in self.rendered)
            self.rendered.clear()

    def input_painted(self, length: int) -> None:
        now = time.perf_counter()
        while self.key_sent and self.key_sent[0][0] <= length:
            _, sent = self.key_sent.pop(0)
            self.echo.append(now - sent)


PROBE = Probe()


class Output:
    """The output step's bytes and per-frame times, since the last `take`."""

    def __init__(self) -> None:
        self.bytes = 0
        self.seconds: list[float] = []

    def take(self, result: dict) -> dict:
        wall = result["events"] / result["events_per_s"] if result["events_per_s"] else 0
        ms = [x * 1000 for x in self.seconds]
        figures = {
            "output_frames": len(ms),
            "output_p50_ms": round(pct(ms, 50), 2) if ms else None,
            "output_p99_ms": round(pct(ms, 99), 2) if ms else None,
            "terminal_bytes_per_s": round(self.bytes / wall, 1) if wall else None,
        }
        self.bytes = 0
        self.seconds.clear()
        return figures


OUTPUT = Output()


def _hook_output(app: App, cut_to_changes: bool) -> None:
    """Turn each composed frame into the bytes the terminal would be written.

    Headless, Textual composes frames but skips this step (`App._display`); here it is
    done as the driver does it: `render_segments` and the cursor move, then, for the
    cadterm console, its driver's cut to the cells that changed (`PaintedScreen`). The
    bytes go nowhere; their count and the time taken are kept.
    """
    from rich.control import Control
    from textual._compositor import CompositorUpdate

    from cadterm.tui.painted_screen import PaintedScreen

    painted = PaintedScreen() if cut_to_changes else None
    original = app._display

    def display(screen, renderable) -> None:
        original(screen, renderable)
        if not isinstance(renderable, CompositorUpdate) or app._batch_count:
            return
        started = time.perf_counter()
        cursor = app.screen.outer_size.clamp_offset(app.cursor_position)
        data = renderable.render_segments(app.console) + Control.move_to(*cursor).segment.text
        if painted is not None:
            data = painted.take(data, (app.size.width, app.size.height)) + painted.changes()
        OUTPUT.seconds.append(time.perf_counter() - started)
        OUTPUT.bytes += len(data.encode())

    app._display = display  # type: ignore[method-assign]


def _hook_frames(app: App) -> None:
    screen = app.screen
    original = screen._compositor_refresh

    def counted() -> None:
        PROBE.frames += 1
        original()
        PROBE.frame_done()

    screen._compositor_refresh = counted  # type: ignore[method-assign]


def _hook_queue() -> None:
    """Count a row as painted when its line is composed into a frame (not when the board
    renders it into its cache, which may be frames earlier)."""
    original = IncidentQueue.render_line

    def render_line(self, y):
        strip = original(self, y)
        if y >= 1 and PROBE.pending:
            shown, top, _ = self._layout()
            index = shown[y - 1] if y - 1 < len(shown) else top + y - 1 - len(shown)
            if index < len(self.keys):
                PROBE.painted(self.keys[index])
        return strip

    IncidentQueue.render_line = render_line  # type: ignore[method-assign]


def _hook_input(cls: type[Input]) -> None:
    original = cls.render_line

    def render_line(self, y):
        strip = original(self, y)
        PROBE.input_painted(len(self.value))
        return strip

    cls.render_line = render_line  # type: ignore[method-assign]


def _samples() -> int:
    return len(PROBE.latencies) + len(PROBE.rendered) + sum(map(len, PROBE.pending.values()))


async def _drive(app, feed, seconds: float, rate: int, input_widget, samples: int = 0) -> dict:
    """Feed `rate` events/s for `seconds`, and on until `samples` watched events have
    arrived (at most `LONGEST` s), while typing a key every 100 ms."""
    PROBE.measuring = True
    gc.collect()
    cpu0 = time.process_time()
    frames0 = PROBE.frames
    start = time.perf_counter()
    sent = 0
    next_key = start + 0.1
    typed = 0
    while True:
        now = time.perf_counter()
        elapsed = now - start
        if elapsed >= seconds and (_samples() >= samples or elapsed >= LONGEST):
            break
        due = int(elapsed * rate) - sent
        for _ in range(max(0, due)):
            feed()
            sent += 1
        if now >= next_key:
            typed += 1
            PROBE.key_sent.append((len(input_widget.value) + 1, time.perf_counter()))
            app.post_message(events.Key("x", "x"))
            next_key += 0.1
        await asyncio.sleep(0.002)
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu0
    await asyncio.sleep(0.2)  # let the last frame paint
    PROBE.measuring = False
    return {
        "seconds": round(wall, 1),
        "events": sent,
        "events_per_s": round(sent / wall, 1),
        "frames": PROBE.frames - frames0,
        "frames_per_s": round((PROBE.frames - frames0) / wall, 1),
        "cpu_share": round(cpu / wall, 3),
        "keys": typed,
    }


def _summary(result: dict) -> dict:
    lat = [x * 1000 for x in PROBE.latencies]
    echo = [x * 1000 for x in PROBE.echo]
    result.update(
        painted_samples=len(lat),
        paint_p50_ms=round(pct(lat, 50), 2) if lat else None,
        paint_p99_ms=round(pct(lat, 99), 2) if lat else None,
        echo_samples=len(echo),
        echo_p50_ms=round(pct(echo, 50), 2) if echo else None,
        echo_p99_ms=round(pct(echo, 99), 2) if echo else None,
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    PROBE.latencies.clear()
    PROBE.echo.clear()
    PROBE.key_sent.clear()
    PROBE.pending.clear()
    return result


async def run_cadterm(state, rates: list[int], seconds: float, samples: int = 0) -> None:
    client = DispatchClient(["http://127.0.0.1:9"], "unused")
    client.store.load_snapshot(state)
    client.store.take_changes()
    from datetime import UTC, datetime

    app = CadApp(client, ConsoleSettings(bell=False), connect=False)
    _hook_queue()
    _hook_input(CommandInput)
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        emit(
            "console_startup",
            board="cadterm",
            mount_and_first_paint_s=round(time.perf_counter() - t0, 3),
        )
        t1 = time.perf_counter()
        app.queue.reload(client.state)
        app.units.reload(client.state)
        emit(
            "console_board_build",
            board="cadterm",
            rebuild_both_boards_s=round(time.perf_counter() - t1, 3),
        )
        # As `cadterm console` runs: the collector tuned for a live picture, which is
        # frozen out of collection as the link goes live (its status listeners hear it).
        tune_gc_for_a_live_picture(client)
        status = LinkStatus(LinkState.LIVE, datetime.now(UTC))
        client.subscription.status = status
        for listener in client._status_listeners:
            listener(status)
        _hook_output(app, cut_to_changes=True)
        _hook_frames(app)
        stream = EventStream(client.state)
        top = int(app.queue.scroll_offset.y)
        stream.watched = list(app.queue.keys[top : top + app.queue.size.height - 1])
        events_iter = iter(stream)
        input_widget = app.query_one(CommandInput)

        def feed() -> None:
            event, watched = next(events_iter)
            client.store.apply(event)
            client._changed.set()
            if watched:
                PROBE.arrived(watched)

        for rate in rates:
            input_widget.value = ""
            result = await _drive(app, feed, seconds, rate, input_widget, samples)
            output = OUTPUT.take(result)
            emit(
                "console_load",
                board="cadterm",
                rate=rate,
                **_summary(result),
                **output,
            )


class TableApp(App[None]):
    """The baseline: a stock DataTable of the same incidents."""

    def __init__(self, state) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        yield DataTable(id="table", cursor_type="row")
        yield Input(id="input")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name in ("ref", "g", "type", "age", "location", "units", "version"):
            table.add_column(name, key=name)
        ordered = sorted(self.state.incidents.values(), key=lambda i: (int(i.grade), i.created_at))
        for incident in ordered:
            table.add_row(
                incident.reference,
                str(int(incident.grade)),
                incident.incident_type,
                "1m",
                incident.location.address,
                "-",
                str(incident.version),
                key=incident.reference,
            )
        self.query_one(Input).focus()


async def run_datatable(state, rates: list[int], seconds: float, samples: int = 0) -> None:
    app = TableApp(state)
    original = DataTable._render_line_in_row

    def render_line_in_row(self, row_key, *args, **kwargs):
        if row_key.value is not None:
            PROBE.painted(row_key.value)
        return original(self, row_key, *args, **kwargs)

    DataTable._render_line_in_row = render_line_in_row  # type: ignore[method-assign]
    _hook_input(Input)
    t0 = time.perf_counter()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        emit(
            "console_startup",
            board="datatable",
            mount_and_first_paint_s=round(time.perf_counter() - t0, 3),
        )
        _hook_output(app, cut_to_changes=False)
        _hook_frames(app)
        # The same collector settings as the console's process, so the two differ by
        # their boards alone.
        gc.set_threshold(*GC_LIVE)
        gc.collect()
        gc.freeze()
        table = app.query_one(DataTable)
        stream = EventStream(state)
        stream.watched = [
            str(table.coordinate_to_cell_key((y, 0)).row_key.value) for y in range(SIZE[1] - 4)
        ]
        events_iter = iter(stream)
        input_widget = app.query_one(Input)
        from cadterm.protocol.fold import apply

        def feed() -> None:
            event, watched = next(events_iter)
            changes = apply(state, event)
            for reference in changes.incidents:
                incident = state.incidents[reference]
                table.update_cell(reference, "version", str(incident.version))
                table.update_cell(reference, "location", incident.location.address)
            if watched:
                PROBE.arrived(watched)

        for rate in rates:
            input_widget.value = ""
            result = await _drive(app, feed, seconds, rate, input_widget, samples)
            output = OUTPUT.take(result)
            emit(
                "console_load",
                board="datatable",
                rate=rate,
                **_summary(result),
                **output,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="100,200,1000")
    parser.add_argument(
        "--samples", type=int, default=1000, help="the fewest event-to-paint samples a rate"
    )
    parser.add_argument("--board", choices=["cadterm", "datatable", "both"], default="both")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    if args.board == "both":
        # One process per board, so each one's peak RSS and CPU are its own.
        for board in ("cadterm", "datatable"):
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--board",
                    board,
                    "--seconds",
                    str(args.seconds),
                    "--rates",
                    args.rates,
                    "--samples",
                    str(args.samples),
                ],
                check=True,
            )
        return
    emit("machine", board=args.board, **machine(), **machine_speed())
    t = time.perf_counter()
    state = big_picture()
    emit(
        "console_picture",
        incidents=len(state.incidents),
        units=len(state.units),
        build_s=round(time.perf_counter() - t, 2),
    )
    if args.board == "cadterm":
        asyncio.run(run_cadterm(state, rates, args.seconds, args.samples))
    else:
        asyncio.run(run_datatable(state, rates, args.seconds, args.samples))
    emit(
        "machine_after",
        board=args.board,
        loadavg_1m=round(os.getloadavg()[0], 2),
        **machine_speed(),
    )


if __name__ == "__main__":
    main()
