"""A program on a real pseudo-terminal that the test owns: every byte it writes, kept.

The program is the session leader with the pty as its controlling terminal, as under
sshd, so closing the test's end hangs it up.
"""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Sequence


def _take_the_terminal() -> None:
    # In the child, after setsid: the pty on stdin becomes its controlling terminal.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtySession:
    """`argv` running on a fresh `width` x `height` pty; `output` is all it wrote."""

    def __init__(
        self, argv: Sequence[str], env: dict[str, str], width: int = 80, height: int = 24
    ) -> None:
        self.leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        self.process = subprocess.Popen(
            list(argv),
            stdin=follower,
            stdout=follower,
            stderr=follower,
            env=env,
            start_new_session=True,
            preexec_fn=_take_the_terminal,
        )
        os.close(follower)
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:  # the program must never block writing to its terminal
        while True:
            try:
                chunk = os.read(self.leader, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output.extend(chunk)

    def wait_for(self, needle: bytes, timeout: float) -> None:
        """Until `needle` has been written (fails if the program ends or time runs out)."""
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            assert self.process.poll() is None, bytes(self.output[-400:])
            assert time.monotonic() < deadline, bytes(self.output[-400:])
            time.sleep(0.05)

    def send(self, data: bytes) -> None:
        os.write(self.leader, data)

    def hang_up(self) -> None:
        """Close the terminal, as the end of an SSH session does."""
        if self.leader >= 0:
            os.close(self.leader)
            self.leader = -1

    def close(self) -> None:
        """End the program if it is still running, and close the terminal."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.hang_up()
