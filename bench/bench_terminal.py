"""Terminal bandwidth: bytes a second the console writes to a real pty, against DataTable.

Each board runs in a child process attached to a real pseudo-terminal at 80x24 and at
200x50. The parent reads everything written to the terminal and feeds it to a terminal
emulator (pyte) to count the cells that actually changed on screen. Phases:

- idle: nothing happens but the clock and the timers;
- load: a steady --rate events a second (notes, some on rows on screen, unit moves,
  state changes, regrades).

Figures: bytes/s idle and under load, changed cells/s, bytes per changed cell, and the
ratio of the console's bytes/s to the DataTable baseline's in the same run.

Run:  .venv/bin/pip install -e '.[bench]'   # pyte, the terminal emulator
      .venv/bin/python bench/bench_terminal.py [--rate 50] [--load 10]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyte
from _common import emit, machine

CHILD = Path(__file__).parent / "_pty_console.py"


class ChangeCounter:
    """Feeds terminal output to an emulator and counts cells whose content changed."""

    def __init__(self, columns: int, lines: int) -> None:
        self.screen = pyte.Screen(columns, lines)
        self.stream = pyte.ByteStream(self.screen)
        self.previous = self._snapshot(range(lines))

    def _snapshot(self, rows) -> dict[int, list]:
        buffer = self.screen.buffer
        return {y: [buffer[y][x] for x in range(self.screen.columns)] for y in rows}

    def feed(self, data: bytes) -> int:
        """Feed bytes; return how many cells now differ from before."""
        self.screen.dirty.clear()
        self.stream.feed(data)
        rows = sorted(self.screen.dirty)
        now = self._snapshot(rows)
        changed = 0
        for y in rows:
            before = self.previous.get(y)
            after = now[y]
            if before is None:
                changed += len(after)
                continue
            changed += sum(1 for a, b in zip(after, before, strict=True) if a != b)
        self.previous.update(now)
        return changed


def run_board(board: str, size: tuple[int, int], args) -> dict:
    columns, lines = size
    marks = Path(tempfile.mkstemp(prefix="cadterm-marks-")[1])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["TERM"] = "xterm-256color"
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            "--board",
            board,
            "--marks",
            str(marks),
            "--rate",
            str(args.rate),
            "--idle",
            str(args.idle),
            "--load",
            str(args.load),
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    counter = ChangeCounter(columns, lines)
    log: list[tuple[float, int, int]] = []  # (wall time, bytes, changed cells)
    deadline = time.monotonic() + args.warmup + args.idle + args.load + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    break  # the child closed the terminal
                if not data:
                    break
                log.append((time.time(), len(data), counter.feed(data)))
            elif child.poll() is not None:
                break
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)
        os.close(master)
    times = dict(line.split() for line in marks.read_text().splitlines())
    marks.unlink(missing_ok=True)
    idle0, load0, end = float(times["idle"]), float(times["load"]), float(times["end"])

    def window(a: float, b: float) -> tuple[int, int]:
        chunks = [(n, c) for t, n, c in log if a <= t < b]
        return sum(n for n, _ in chunks), sum(c for _, c in chunks)

    idle_bytes, idle_cells = window(idle0, load0)
    load_bytes, load_cells = window(load0, end)
    return {
        "board": board,
        "size": f"{columns}x{lines}",
        "rate": args.rate,
        "idle_bytes_per_s": round(idle_bytes / (load0 - idle0), 1),
        "idle_cells_per_s": round(idle_cells / (load0 - idle0), 1),
        "load_bytes_per_s": round(load_bytes / (end - load0), 1),
        "load_changed_cells_per_s": round(load_cells / (end - load0), 1),
        "bytes_per_changed_cell": round(load_bytes / load_cells, 1) if load_cells else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--idle", type=float, default=5)
    parser.add_argument("--load", type=float, default=10)
    args = parser.parse_args()
    emit("machine", **machine())
    for size in ((80, 24), (200, 50)):
        results = {}
        for board in ("cadterm", "datatable"):
            results[board] = run_board(board, size, args)
            emit("terminal_bandwidth", **results[board])
        ours, base = results["cadterm"], results["datatable"]
        emit(
            "terminal_bandwidth_ratio",
            size=ours["size"],
            load_bytes_ratio=round(ours["load_bytes_per_s"] / base["load_bytes_per_s"], 3)
            if base["load_bytes_per_s"]
            else None,
        )
        print(
            f"{ours['size']}: cadterm {ours['load_bytes_per_s'] / 1024:.1f} KB/s under "
            f"{args.rate:g} events/s ({ours['idle_bytes_per_s']:.0f} B/s idle, "
            f"{ours['bytes_per_changed_cell']} B per changed cell); DataTable "
            f"{base['load_bytes_per_s'] / 1024:.1f} KB/s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
