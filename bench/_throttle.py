"""A thin link for bench_ssh.py: an ssh ProxyCommand that paces bytes to N bit/s.

    ssh -o 'ProxyCommand=python bench/_throttle.py --bits 64000 --log FILE -- sshd -i -f CFG'

It starts the command (an inetd-mode sshd) on pipes and relays ssh's stdin to it and its
stdout back, each direction on its own, at `--bits` bits a second (0: unthrottled).
Like a real slow link it takes the next bytes only when the previous ones have been
"sent", so sshd's writes back up as they would at a modem or a congested radio link
(sshd then buffers up to its channel window, as it does on a real one). Every half
second it appends "unix-time bytes-down bytes-up" (cumulative, down = towards the ssh
client) to `--log`, the bytes on the wire that the bench reports. Not a benchmark by
itself.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable

CHUNK = 256  # bytes a "packet" carries: small enough that pacing is smooth


class Direction:
    """One direction of the link: bytes from `source` to `sink` at `bits` a second."""

    def __init__(
        self, source: int, sink: int, bits: int, at_end: Callable[[], None] | None = None
    ) -> None:
        self.source, self.sink, self.bits, self.at_end = source, sink, bits, at_end
        self.bytes = 0
        self.done = threading.Event()

    def run(self) -> None:
        free_at = time.monotonic()  # when the link has finished sending what it took
        try:
            while True:
                data = os.read(self.source, CHUNK if self.bits else 65536)
                if not data:
                    return
                if self.bits:
                    free_at = max(free_at, time.monotonic()) + len(data) * 8 / self.bits
                    delay = free_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                view = memoryview(data)
                while view:
                    view = view[os.write(self.sink, view) :]
                self.bytes += len(data)
        except OSError:
            return
        finally:
            self.done.set()
            if self.at_end is not None:
                self.at_end()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bits", type=int, default=0, help="bits a second each way (0: any)")
    parser.add_argument("--log", required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    child = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    assert child.stdin is not None and child.stdout is not None
    # The end of ssh's input ends sshd's: the session is over.
    up = Direction(sys.stdin.fileno(), child.stdin.fileno(), args.bits, child.stdin.close)
    down = Direction(child.stdout.fileno(), sys.stdout.fileno(), args.bits)
    for direction in (up, down):
        threading.Thread(target=direction.run, daemon=True).start()
    with open(args.log, "a", buffering=1) as log:
        while not down.done.is_set():
            log.write(f"{time.time():.3f} {down.bytes} {up.bytes}\n")
            down.done.wait(0.5)
        log.write(f"{time.time():.3f} {down.bytes} {up.bytes}\n")
    try:
        child.wait(5)
    except subprocess.TimeoutExpired:
        child.kill()


if __name__ == "__main__":
    main()
