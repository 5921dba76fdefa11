"""A cluster of real `cadterm server` processes on one PostgreSQL log, for tests.

`Cluster` starts nodes as separate processes (so `kill -9` is a real crash), each on a
loopback port it bound itself (port 0, then the same port again after a restart).
`Subscriber` is a console-like stream reader that fails over between nodes and records
every event it is given, so a test can check that nothing was lost or doubled.
`Writer` sends commands through the client library, which retries with the same
idempotency key on the next node when one fails.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from waiting import until
from websockets.asyncio.client import connect

from cadterm.client.commands import CommandSender
from cadterm.client.errors import BackendUnavailable
from cadterm.protocol.commands import CreateIncident
from cadterm.protocol.events import EVENT_ADAPTER
from cadterm.protocol.fold import DispatchState, fold
from cadterm.protocol.frames import SUBPROTOCOL
from cadterm.server.auth import new_token
from cadterm.server.config import Limits, write_config
from cadterm.server.embedded import EmbeddedTokens, embedded_config

_LINE = re.compile(rb"cadterm server on http://127\.0\.0\.1:(\d+)")
WORKSTATION = "pytest"


@dataclass
class Node:
    """One `cadterm server` process; `port` is kept across restarts."""

    name: str
    db_url: str
    config_path: Path
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        """Start the process and wait until it prints the port it listens on."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadterm.cli.main",
                "server",
                "--db",
                self.db_url,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--config",
                str(self.config_path),
                "--node",
                self.name,
                "--log-level",
                "warning",
            ],
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            found = _LINE.search(line)
            if found:
                self.port = int(found.group(1))
                return
        self.kill()
        raise RuntimeError(f"node {self.name} did not start: {line!r}; see {self.log_path}")

    def kill(self) -> None:
        """`kill -9`: the process ends at once, in the middle of whatever it does."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: a graceful stop (a final snapshot), bounded in time."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Cluster:
    """Several nodes on one database, with one shared config and tokens."""

    db_url: str
    folder: Path
    size: int = 3
    tokens: EmbeddedTokens = field(default_factory=lambda: EmbeddedTokens(new_token(), new_token()))
    nodes: list[Node] = field(default_factory=list)

    def start(self) -> Cluster:
        config = embedded_config(
            self.tokens, Limits(command_rate=5000.0, command_burst=10000), (WORKSTATION,)
        )
        config_path = self.folder / "server.toml"
        write_config(config_path, config)
        for i in range(1, self.size + 1):
            node = Node(f"node{i}", self.db_url, config_path, self.folder / f"node{i}.log")
            node.start()
            self.nodes.append(node)
        return self

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def close(self) -> None:
        for node in self.nodes:
            node.stop()

    def log_text(self) -> str:
        return "\n".join(node.log_path.read_text(errors="replace") for node in self.nodes)


def table_events(db_url: str) -> list[tuple[int, str]]:
    """Every (seq, JSON) in the cluster's log table, in order."""
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT seq, body FROM cadterm_events ORDER BY seq").fetchall()


def table_head(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT seq FROM cadterm_head").fetchone()[0]


@dataclass
class Subscriber:
    """Reads the live stream like a console: resumes from its last seq on another node.

    Records every event frame's (seq, JSON) exactly as received, and each connection's
    first seq; anything out of order is kept as is, for the test to judge.
    """

    urls: list[str]
    token: str
    received: list[tuple[int, str]] = field(default_factory=list)
    snapshots: int = 0
    reconnects: int = 0
    last_seq: int = 0
    ready: bool = False  # caught up on its first connection

    async def run(self, stop: asyncio.Event) -> None:
        rng = random.Random(len(self.urls))
        turn = 0
        while not stop.is_set():
            url = self.urls[turn % len(self.urls)].replace("http://", "ws://") + "/v1/stream"
            turn += 1
            try:
                await self._follow(url, stop)
            except (TimeoutError, OSError, Exception) as exc:
                if isinstance(exc, AssertionError):
                    raise
                self.reconnects += 1
                await asyncio.sleep(0.05 + rng.random() * 0.1)

    async def _follow(self, url: str, stop: asyncio.Event) -> None:
        async with connect(
            url,
            subprotocols=[SUBPROTOCOL],
            additional_headers={"Authorization": f"Bearer {self.token}"},
            proxy=None,
            open_timeout=3,
            close_timeout=1,
            ping_interval=None,
            max_size=2**20,
        ) as conn:
            frame: dict[str, Any] = {"type": "subscribe"}
            if self.ready:
                # A resume, even from 0: a node killed before this subscriber saw its
                # first event must not be answered with a snapshot that skips them.
                frame["since"] = self.last_seq
            await conn.send(json.dumps(frame))
            while not stop.is_set():
                try:
                    async with asyncio.timeout(0.5):
                        text = await conn.recv()
                except TimeoutError:
                    continue
                message = json.loads(text)
                kind = message.get("type")
                if kind == "event":
                    seq = message["event"]["seq"]
                    body = json.dumps(message["event"], separators=(",", ":"))
                    self.received.append((seq, body))
                    self.last_seq = seq
                elif kind == "caught_up":
                    self.ready = True
                elif kind in ("snapshot", "snapshot_part"):
                    # A resume always has the events (the log keeps them); a snapshot
                    # here would hide a gap, so count it for the test.
                    self.snapshots += 1
                    state = message.get("state") or {}
                    if "seq" in state:
                        self.last_seq = state["seq"]


@dataclass
class Writer:
    """Creates incidents as fast as the cluster takes them, each with its own key."""

    name: str
    urls: list[str]
    token: str
    acknowledged: dict[str, int] = field(default_factory=dict)  # key -> seq
    unanswered: list[str] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, rng: random.Random) -> None:
        urls = self.urls[:]
        rng.shuffle(urls)
        sender = CommandSender(urls, self.token, timeout=5.0, attempts=30, rng=rng)
        try:
            n = 0
            while not stop.is_set():
                n += 1
                key = f"{self.name}-cmd-{n:06d}"
                command = CreateIncident(
                    idempotency_key=key,
                    workstation=WORKSTATION,
                    grade=3,
                    incident_type="THEFT",
                    location={"address": f"{n} Cluster Street"},
                    description=key,
                )
                try:
                    result = await sender.send(command)
                except BackendUnavailable:
                    self.unanswered.append(key)
                    continue
                self.acknowledged[key] = result.seq
        finally:
            await sender.aclose()


async def health(url: str) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(timeout=2, trust_env=False) as http:
            reply = await http.get(f"{url}/v1/health")
    except httpx.HTTPError:
        return None
    return reply.json()


async def wait_caught_up(subscribers: list[Subscriber], head: int, timeout: float = 30) -> None:
    """Until every subscriber has received up to `head`."""
    await until(lambda: all(s.last_seq >= head for s in subscribers), timeout=timeout)


def environment_without_proxies() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}


def truth_figures(
    table: list[tuple[int, str]], subscribers: list[Subscriber], writers: list[Writer]
) -> dict[str, Any]:
    """What a soak checks, counted rather than asserted, so every failure is a figure.

    The log must be gap-free; every subscriber must hold the table's sequence exactly
    (nothing lost, doubled, out of order or different); every acknowledged command must
    be in the table once, at the seq it was acknowledged with.
    """
    seqs = [seq for seq, _ in table]
    expected = {seq: json.loads(body) for seq, body in table}
    per_subscriber = []
    for subscriber in subscribers:
        got = [(seq, json.loads(body)) for seq, body in subscriber.received]
        times = Counter(seq for seq, _ in got)
        per_subscriber.append(
            {
                "received": len(got),
                "identical": got == [(seq, expected[seq]) for seq in seqs],
                "lost": sum(1 for seq in seqs if seq not in times),
                "doubled": sum(n - 1 for n in times.values() if n > 1),
                "out_of_order": sum(1 for a, b in itertools.pairwise(got) if b[0] <= a[0]),
                "not_in_table": sum(1 for seq in times if seq not in expected),
                "different": sum(1 for seq, e in got if seq in expected and e != expected[seq]),
                "snapshots": subscriber.snapshots,
                "reconnects": subscriber.reconnects,
            }
        )
    created: Counter[str] = Counter()
    seq_of: dict[str, int] = {}
    for seq, body in expected.items():
        if body["type"] == "incident_created":
            created[body["description"]] += 1
            seq_of[body["description"]] = seq
    acknowledged = {key: seq for w in writers for key, seq in w.acknowledged.items()}
    return {
        "events": len(table),
        "gap_free": seqs == list(range(1, len(seqs) + 1)),
        "acknowledged": len(acknowledged),
        "unanswered": sum(len(w.unanswered) for w in writers),
        "lost": sum(1 for key in acknowledged if created[key] == 0),
        "applied_twice": sum(1 for n in created.values() if n > 1),
        "acknowledged_at_another_seq": sum(
            1 for key, seq in acknowledged.items() if created[key] and seq_of[key] != seq
        ),
        "subscribers": per_subscriber,
    }


async def picture_figures(
    urls: list[str], token: str, table: list[tuple[int, str]], attempts: int = 100
) -> list[dict[str, Any]]:
    """For each node: its seq, and whether its picture equals the fold of the table."""
    folded = fold([EVENT_ADAPTER.validate_json(body) for _, body in table]).model_dump()
    headers = {"Authorization": f"Bearer {token}"}
    answers = []
    async with httpx.AsyncClient(timeout=10, trust_env=False, headers=headers) as http:
        for url in urls:
            state = None
            # A node folds others' events when woken: ask until it has the head.
            for _ in range(attempts):
                try:
                    reply = await http.get(f"{url}/v1/state")
                    state = DispatchState.model_validate_json(reply.content)
                except (httpx.HTTPError, ValueError):
                    state = None
                if state is not None and state.seq == len(table):
                    break
                await asyncio.sleep(0.05)
            answers.append(
                {
                    "url": url,
                    "seq": None if state is None else state.seq,
                    "equal_to_fold": state is not None and state.model_dump() == folded,
                }
            )
    return answers
