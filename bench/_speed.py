"""A machine-speed figure measured in the same run as a benchmark.

Runs on different days, or on a machine shared with other work, are only comparable
next to how fast the machine was at the time: `machine_speed` times `json.loads` of a
fixed event-sized document, a pure-CPU job close to what cadterm itself does, and
`fsync_speed` how many small appends a second the disk makes durable (`os.fsync`),
which bounds a single sender's durable commands.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

__all__ = ["fsync_speed", "machine_speed"]

#: A fixed document shaped like a stored event (an AVL fix with its stored answer).
_DOCUMENT = json.dumps(
    {
        "idempotency_key": "5b7f3c1e-2d4a-4e8b-9f61-0c2d3e4f5a6b",
        "seq": 123456,
        "event": {
            "type": "unit_located",
            "seq": 123456,
            "at": "2026-11-27T14:03:21.123000Z",
            "operator": "op-dispatch-1",
            "callsign": "BX21",
            "position": {"lat": 52.4862, "lon": -1.8904},
            "workstation": "ws-07",
        },
        "replayed": False,
    }
)


def machine_speed(seconds: float = 0.5) -> dict[str, float]:
    """`json.loads` of a fixed event-sized document per second, best of three rounds."""
    best = 0.0
    for _ in range(3):
        count = 0
        started = time.perf_counter()
        deadline = started + seconds / 3
        while True:
            for _ in range(1000):
                json.loads(_DOCUMENT)
            count += 1000
            now = time.perf_counter()
            if now >= deadline:
                break
        best = max(best, count / (now - started))
    return {"json_loads_per_s": round(best)}


def fsync_speed(directory: str | os.PathLike[str], seconds: float = 0.5) -> dict[str, float]:
    """4 KiB appends made durable with `os.fsync` per second, in a file in `directory`."""
    block = b"\0" * 4096
    with tempfile.NamedTemporaryFile(dir=directory, prefix="fsync-") as handle:
        fd = handle.fileno()
        count = 0
        started = time.perf_counter()
        while True:
            os.write(fd, block)
            os.fsync(fd)
            count += 1
            now = time.perf_counter()
            if now - started >= seconds:
                break
    return {"fsync_per_s": round(count / (now - started))}
