"""The console over SSH on thin links: bytes a second, and key echo under load.

A real sshd (inetd mode, this bench's own config and host key, no port: it is ssh's
ProxyCommand behind `_throttle.py`, which paces the link to N bit/s each way) runs
`cadterm console` against a real embedded backend. The ssh client runs in a pty at 80x24
that this bench owns; what it writes is fed to a terminal emulator (pyte), which also
answers the console's cursor position requests, as any terminal does.

For each link speed (default: unthrottled, 64 kbit/s, 32 kbit/s):

- idle (`--idle` s): nothing happens; the clock is shown (the default);
- load (`--seconds` s): `--rate` commands a second go to the backend (AVL fixes, state
  changes, notes, new incidents, assignments, closures), while a key is typed on the
  console's command line every `--key-every` s on a fixed schedule (not waiting for the
  echo, so a slow echo cannot slow the typing and hide itself). Echo latency runs from
  the moment the key is written to the ssh client's terminal to the moment the emulator
  shows it on the command row. Whether the backlog grows is read from the echo latency
  in the first and the last third of the load phase.

Then, unthrottled, one more idle phase with `clock = false`.

Figures: terminal bytes/s (what the ssh client hands its terminal) and wire bytes/s
(what crosses the throttled link, SSH framing included) idle and under load; echo
p50/p99/max (ms); keys never echoed; the machine-speed figure of the same run.

Needs root (sshd -i starts a session for an account), sshd and ssh, pyte.
Run:  .venv/bin/python bench/bench_ssh.py [--seconds 30] [--idle 10] [--links 0,64000,32000]
(about five minutes: two of them wait for the picture to settle)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import httpx
import pyte
from _common import _WORKSTATIONS, Workload, emit, machine, pct
from _speed import machine_speed

from cadterm.server.embedded import EmbeddedBackend

THROTTLE = Path(__file__).parent / "_throttle.py"
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
COLUMNS, LINES = 80, 24
WORD = "zqjxvkwzqj"  # typed on the command line, then cleared with Escape
PLACEHOLDER = "type a command"


class Commands(Workload):
    """The bench workload, kept as commands to send (only those its rules accept)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.queued: list = []

    def _do(self, command):
        event = super()._do(command)
        if event is not None:
            self.queued.append(command)
        return event


class Sender:
    """Posts workload commands to the backend, as fast as asked or at a steady rate."""

    def __init__(self, url: str, token: str, workload: Commands) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        self.workload = workload
        self.sent = self.failed = 0
        self.stop = threading.Event()

    def flush(self) -> None:
        while self.workload.queued:
            command = self.workload.queued.pop(0)
            reply = self.http.post("/v1/commands", json=command.model_dump(mode="json"))
            if reply.status_code == 200:
                self.sent += 1
            else:
                self.failed += 1

    def steady(self, rate: float) -> None:
        start, made = time.monotonic(), 0
        while not self.stop.is_set():
            due = start + made / rate
            delay = due - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
                continue
            while not self.workload.queued:
                self.workload.step()
            self.flush()
            made += 1


class Terminal(pyte.Screen):
    """The emulator the ssh client draws on; answers cursor position requests."""

    def __init__(self, leader: int) -> None:
        super().__init__(COLUMNS, LINES)
        self.leader = leader

    def write_process_input(self, data: str) -> None:
        os.write(self.leader, data.encode())


class Session:
    """`ssh -tt` to the console through the throttle, on a pty this bench reads."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            argv, stdin=follower, stdout=follower, stderr=follower, env=env,
            start_new_session=True,
        )  # fmt: skip
        os.close(follower)
        self.screen = Terminal(self.leader)
        self.stream = pyte.ByteStream(self.screen)
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, int]] = []  # (time, bytes) as read
        self.row: int | None = None  # the command row, and where typing starts on it
        self.column = 0
        self.word_started = 0.0
        self.keys: list[float] = []  # when each key of the current word was written
        self.echoes_in_word: list[int] = []  # keys of the current word seen echoed
        self.echoes: list[tuple[float, float]] = []  # (sent, latency) per echoed key
        self.typed = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                ready, _, _ = select.select([self.leader], [], [], 0.5)
                if not ready:
                    if self.process.poll() is not None:
                        return
                    continue
                data = os.read(self.leader, 65536)
            except OSError:
                return
            if not data:
                return
            now = time.monotonic()
            with self.lock:
                self.chunks.append((now, len(data)))
                self.stream.feed(data)
                self._see_echo(now)

    def _see_echo(self, now: float) -> None:
        if self.row is None or not self.keys:
            return
        shown = "".join(
            self.screen.buffer[self.row][x].data
            for x in range(self.column, self.column + len(WORD))
        )
        echoed = 0
        while echoed < len(shown) and echoed < len(WORD) and shown[echoed] == WORD[echoed]:
            echoed += 1
        for index in range(len(self.echoes_in_word), min(echoed, len(self.keys))):
            sent = self.keys[index]
            self.echoes.append((sent, now - sent))
            self.echoes_in_word.append(index)

    def text(self) -> str:
        with self.lock:
            return "\n".join(self.screen.display)

    def find_command_row(self) -> None:
        """The row and column where the command line's placeholder (and typing) starts."""
        with self.lock:
            for y, line in enumerate(self.screen.display):
                if PLACEHOLDER in line:
                    self.row, self.column = y, line.index(PLACEHOLDER)
                    return
        raise SystemExit("bench_ssh: the command line is not on the screen")

    def type_key(self, index: int) -> None:
        """Key `index` of the word (the word's length: Escape, which clears the line)."""
        with self.lock:
            if index == 0:
                self.keys, self.echoes_in_word = [], []
            if index < len(WORD):
                self.keys.append(time.monotonic())
                key = WORD[index].encode()
            else:
                key = b"\x1b"
        os.write(self.leader, key)
        self.typed += index < len(WORD)

    def bytes_between(self, start: float, end: float) -> int:
        with self.lock:
            return sum(n for t, n in self.chunks if start <= t < end)

    def close(self) -> None:
        if self.process.poll() is None:
            os.write(self.leader, b"\x11")  # Ctrl+Q: quit (nothing is unsent)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        os.close(self.leader)


def wire_bytes(log: Path, start: float, end: float) -> int:
    """Bytes towards the ssh client between two wall-clock times, from the throttle."""
    rows = [line.split() for line in log.read_text().splitlines()]
    points = [(float(t), int(down)) for t, down, _ in rows]

    def at(moment: float) -> int:
        before = [down for t, down in points if t <= moment]
        return before[-1] if before else 0

    return at(end) - at(start)


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_ssh: gave up waiting for {what}")
        time.sleep(0.1)


def run_link(
    bits: int,
    args,
    work: Path,
    url: str,
    token: str,
    sender: Sender,
    *,
    clock: bool = True,
    idle: tuple[str, ...] = (),
    load: bool = True,
    settled_at: float = 0.0,
) -> dict:
    """One ssh session at `bits` bit/s: its `idle` phases, then load. Returns figures.

    Idle phases: "fresh" (at once: rows whose age counts seconds tick) and "settled"
    (from `settled_at` and a minute after going live, when every age on screen and the
    status line's "last event" count minutes).
    """
    name = f"{bits}-{'clock' if clock else 'noclock'}-{'-'.join(idle) or 'load'}"
    home = work / name
    (home / "config").mkdir(parents=True)
    # The clock's setting only when it is off: another build (--cadterm) may not have it.
    (home / "config" / "console.toml").write_text(
        "bell = false\n" + ("" if clock else "clock = false\n")
    )
    log = home / "wire.log"
    console = (
        f"env LANG=C.UTF-8 CADTERM_CONFIG_DIR={home}/config CADTERM_DATA_DIR={home}/data "
        f"{args.cadterm} console {url} --token {token} "
        f"--workstation console --journal {home}/journal.db"
    )
    proxy = shlex.join(
        [sys.executable, str(THROTTLE), "--bits", str(bits), "--log", str(log), "--",
         SSHD, "-i", "-f", str(work / "sshd_config")]
    )  # fmt: skip
    argv = [
        "ssh", "-tt", "-F", "/dev/null", "-o", f"ProxyCommand={proxy}",
        "-o", f"UserKnownHostsFile={work / 'known_hosts'}", "-o", "StrictHostKeyChecking=no",
        "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "LogLevel=ERROR",
        "-i", str(work / "user_key"), "root@cadterm-bench", console,
    ]  # fmt: skip
    env = {**os.environ, "TERM": "xterm-256color", "LANG": "C.UTF-8"}
    env.pop("COLUMNS", None), env.pop("LINES", None)
    session = Session(argv, env)
    figures: dict = {"link_bits": bits or "unthrottled", "clock": clock}
    try:
        wait_until(lambda: "| LIVE |" in session.text(), 90, f"the console to go live ({name})")
        # "last event" counts from the console's first picture: a minute on, minutes.
        settled_at = max(settled_at, time.monotonic() + 62)
        time.sleep(args.settle)
        session.find_command_row()
        for phase in idle:
            if phase == "settled":
                time.sleep(max(0.0, settled_at - time.monotonic()))
            start, wall_start = time.monotonic(), time.time()
            time.sleep(args.idle)
            end, wall_end = time.monotonic(), time.time()
            figures[f"idle_{phase}_terminal_bytes_per_s"] = round(
                session.bytes_between(start, end) / (end - start), 1
            )
            figures[f"idle_{phase}_wire_bytes_per_s"] = round(
                wire_bytes(log, wall_start, wall_end) / (end - start), 1
            )
        if not load:
            return figures
        sender.stop.clear()
        loader = threading.Thread(target=sender.steady, args=(args.rate,), daemon=True)
        sent_before = sender.sent
        load_start, wall_load_start = time.monotonic(), time.time()
        loader.start()
        key = 0
        while (elapsed := time.monotonic() - load_start) < args.seconds:
            session.type_key(key % (len(WORD) + 1))
            key += 1
            time.sleep(max(0.0, key * args.key_every - elapsed))
        load_end, wall_load_end = time.monotonic(), time.time()
        sender.stop.set()
        loader.join(10)
        time.sleep(2.0)  # the last keys' echo
        seconds = load_end - load_start
        with session.lock:
            echoes = list(session.echoes)
        latencies = [latency * 1000 for _, latency in echoes]
        third = seconds / 3
        first = [lat * 1000 for sent, lat in echoes if sent < load_start + third]
        last = [lat * 1000 for sent, lat in echoes if sent >= load_end - third]
        figures.update(
            commands_per_s=round((sender.sent - sent_before) / seconds, 1),
            load_terminal_bytes_per_s=round(
                session.bytes_between(load_start, load_end) / seconds, 1
            ),
            load_wire_bytes_per_s=round(
                wire_bytes(log, wall_load_start, wall_load_end) / seconds, 1
            ),
            keys=session.typed,
            keys_not_echoed=session.typed - len(echoes),
            echo_p50_ms=round(pct(latencies, 50), 1) if latencies else None,
            echo_p99_ms=round(pct(latencies, 99), 1) if latencies else None,
            echo_max_ms=round(max(latencies), 1) if latencies else None,
            echo_p50_first_third_ms=round(pct(first, 50), 1) if first else None,
            echo_p50_last_third_ms=round(pct(last, 50), 1) if last else None,
            echo_max_last_third_ms=round(max(last), 1) if last else None,
        )
        return figures
    finally:
        session.close()
        # How often the console found output queueing and paced its boards (its log).
        console_log = home / "data" / "console.log"
        if load and console_log.exists():
            text = console_log.read_text(encoding="utf-8", errors="replace")
            figures["times_paced"] = text.count("boards paced")


def serve(db: Path) -> None:
    """The backend in a process of its own, so the bench's threads do not slow it."""
    backend = EmbeddedBackend(db, workstations=_WORKSTATIONS)
    url, tokens = backend.start()
    print(json.dumps({"url": url, "dispatcher": tokens.dispatcher, "sim": tokens.simulator}))
    sys.stdout.flush()
    sys.stdin.read()  # until the bench closes it
    backend.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="load phase per link")
    parser.add_argument(
        "--idle", type=float, default=10, help="each idle phase (0: load phases only)"
    )
    parser.add_argument("--settle", type=float, default=3, help="after going live")
    parser.add_argument("--rate", type=float, default=20, help="commands a second")
    parser.add_argument("--key-every", type=float, default=0.25, help="seconds between keys")
    parser.add_argument("--links", default="0,64000,32000", help="bit/s, 0: unthrottled")
    parser.add_argument(
        "--cadterm",
        default=str(Path(sys.executable).parent / "cadterm"),
        help="the cadterm program to run over ssh (another build's, to compare); "
        "then there is no clock-hidden phase",
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if os.geteuid() != 0 or not os.path.exists(SSHD) or not shutil.which("ssh"):
        raise SystemExit("bench_ssh needs root, sshd (openssh-server) and ssh")
    emit("machine", **machine(), **machine_speed())
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cadterm-bench-ssh-") as scratch:
        work = Path(scratch)
        for name in ("host_key", "user_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)],
                check=True,
            )
        (work / "authorized_keys").write_text((work / "user_key.pub").read_text())
        (work / "sshd_config").write_text(
            f"HostKey {work / 'host_key'}\nPidFile none\n"
            f"AuthorizedKeysFile {work / 'authorized_keys'}\nStrictModes no\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin prohibit-password\nLogLevel ERROR\n"
        )
        backend = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(work / "cad.db")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert backend.stdin is not None and backend.stdout is not None
        started = json.loads(backend.stdout.readline())
        url = started["url"]
        try:
            # The workload's clock on today's date, so its references are the server's.
            workload = Commands(seed=1, units=120, start=datetime.now(UTC))
            workload.seed_state(incidents=60)
            sender = Sender(url, started["sim"], workload)
            sender.flush()
            # Ages on screen count minutes a minute after the last seeded event.
            settled_at = time.monotonic() + 65
            runs = [
                *([{"bits": 0, "idle": ("fresh", "settled"), "load": False}] if args.idle else []),
                *(
                    [{"bits": 0, "clock": False, "idle": ("settled",), "load": False}]
                    if args.idle and args.cadterm == parser.get_default("cadterm")
                    else []
                ),
                *({"bits": int(bits)} for bits in args.links.split(",") if bits),
            ]
            for run in runs:
                figures = run_link(
                    args=args, work=work, url=url, token=started["dispatcher"],
                    sender=sender, settled_at=settled_at, **run,
                )  # fmt: skip
                emit("ssh_link", **figures, rate=args.rate, size=f"{COLUMNS}x{LINES}")
            emit("ssh_commands", sent=sender.sent, failed=sender.failed)
        finally:
            backend.stdin.close()
            backend.wait(30)


if __name__ == "__main__":
    main()
