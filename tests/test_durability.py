"""Durability of `cadterm server` as a real process: SIGKILL, SIGTERM and first start.

Each test runs the server with `python -m cadterm.cli.main server` on a loopback port and
a SQLite file in a temporary folder, drives it over HTTP, and kills or stops it. Every
process started here is killed in a `finally`, whatever happens.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENS, make_config, started_server_url
from waiting import wait_for

from cadterm.protocol.domain import Role
from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState, fold
from cadterm.server.config import Limits, load_config, write_config

pytestmark = pytest.mark.slow

START_TIMEOUT = 30.0  # seconds for a server process to answer /v1/health
STOP_TIMEOUT = 20.0  # seconds for a server process to exit after a signal
HEADERS = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}


# --- running the server ------------------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    stdout: Path
    stderr: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def errors(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")[-4000:]

    def client(self, headers: dict[str, str] | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers=HEADERS if headers is None else headers,
            timeout=10.0,
            trust_env=False,
        )

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        return self.proc.wait(timeout=timeout)


@contextmanager
def server_process(folder: Path, db: Path, config: Path, name: str) -> Iterator[ServerProcess]:
    """Start `cadterm server --port 0` and wait until it is healthy; kill it on the way out.

    The server binds the port itself and prints it, so the port it answers on is its own.
    """
    server = _start(folder, db, config, name)
    try:
        _wait_healthy(server)
        yield server
    finally:
        _kill(server)


def _start(folder: Path, db: Path, config: Path, name: str) -> ServerProcess:
    stdout, stderr = folder / f"{name}.out", folder / f"{name}.err"
    # Files, not pipes: nobody reads a pipe while the test runs, and a full one would
    # block the server on its next log line.
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadterm.cli.main",
                "server",
                "--db",
                str(db),
                "--config",
                str(config),
                "--port",
                "0",
                "--log-level",
                "info",
            ],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=folder,
        )
    try:
        url = started_server_url(proc, lambda: stdout.read_text() + stderr.read_text())
    except BaseException:
        _kill(ServerProcess(proc, 0, stdout, stderr))
        raise
    return ServerProcess(proc, int(url.rsplit(":", 1)[1]), stdout, stderr)


def _kill(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.kill()
    server.proc.wait(timeout=STOP_TIMEOUT)


def _wait_healthy(server: ServerProcess) -> None:
    """Wait until the server answers /v1/health; fail at once if it exits."""
    with server.client() as client:

        def healthy() -> bool:
            assert server.proc.poll() is None, (
                f"server exited with {server.proc.returncode}:\n{server.errors()}"
            )
            try:
                return client.get("/v1/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, START_TIMEOUT, lambda: f"a healthy server:\n{server.errors()}")


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "server.toml"
    write_config(
        path,
        make_config(snapshot_every=25, limits=Limits(command_rate=100_000, command_burst=100_000)),
    )
    return path


# --- commands ----------------------------------------------------------------------------


def key() -> str:
    return uuid.uuid4().hex


def book_on(callsign: str) -> dict[str, Any]:
    return {
        "type": "book_on",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "callsign": callsign,
        "unit_type": "van",
    }


def create_incident(n: int) -> dict[str, Any]:
    return {
        "type": "create_incident",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "grade": 2,
        "incident_type": "ASB",
        "location": {"address": f"{n} Station Road"},
    }


def add_note(reference: str, n: int) -> dict[str, Any]:
    return {
        "type": "add_note",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "reference": reference,
        "text": f"update {n}: " + "x" * 200,
    }


def post(client: httpx.Client, command: dict[str, Any]) -> dict[str, Any]:
    reply = client.post("/v1/commands", json=command)
    assert reply.status_code == 200, reply.text
    return reply.json()


def all_events(client: httpx.Client) -> list[Event]:
    events: list[Event] = []
    for _ in range(1000):
        after = events[-1].seq if events else 0
        reply = client.get("/v1/events", params={"after": after, "limit": 5000})
        assert reply.status_code == 200
        batch = [EVENT_ADAPTER.validate_python(e) for e in reply.json()]
        if not batch:
            return events
        events += batch
    raise AssertionError("too many events")


def state_of(client: httpx.Client) -> dict[str, Any]:
    reply = client.get("/v1/state")
    assert reply.status_code == 200
    return DispatchState.model_validate(reply.json()).model_dump(mode="json")


# --- SIGKILL while commands flow -----------------------------------------------------------


def test_sigkill_loses_no_acknowledged_command(tmp_path: Path, config_file: Path) -> None:
    db = tmp_path / "cad.db"
    acked: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (command, reply)
    in_flight: dict[str, Any] | None = None
    killed = threading.Event()

    with server_process(tmp_path, db, config_file, "first") as server:

        def kill_mid_stream() -> None:
            # Kill once commands are flowing, at whatever point the next one is at.
            deadline = time.monotonic() + 30
            while len(acked) < 60 and time.monotonic() < deadline:
                time.sleep(0.001)
            os.kill(server.proc.pid, signal.SIGKILL)
            killed.set()

        killer = threading.Thread(target=kill_mid_stream, daemon=True)
        with server.client() as client:
            first = book_on("KILL1")
            acked.append((first, post(client, first)))
            opened = create_incident(0)
            reply = post(client, opened)
            acked.append((opened, reply))
            reference = reply["event"]["reference"]
            killer.start()
            try:
                for n in range(1, 20_000):
                    command = create_incident(n) if n % 5 == 0 else add_note(reference, n)
                    in_flight = command
                    try:
                        response = client.post("/v1/commands", json=command)
                    except httpx.TransportError:
                        break
                    assert response.status_code == 200, response.text
                    acked.append((command, response.json()))
                    in_flight = None
                else:
                    raise AssertionError("the server was never killed")
            finally:
                killer.join(timeout=STOP_TIMEOUT)
        assert killed.is_set()
        assert server.wait() == -signal.SIGKILL
    assert len(acked) >= 60

    with server_process(tmp_path, db, config_file, "second") as server, server.client() as client:
        events = all_events(client)
        seqs = [e.seq for e in events]
        assert seqs == list(range(1, len(events) + 1)), "seqs must be gap-free from 1"
        last_acked = acked[-1][1]["seq"]
        # Everything acknowledged is there; at most the one command in flight is extra.
        assert len(events) in (last_acked, last_acked + 1)
        by_seq = {e.seq: e for e in events}
        for command, reply in acked:
            event = by_seq[reply["seq"]]
            assert event.model_dump(mode="json") == reply["event"]
            assert reply["idempotency_key"] == command["idempotency_key"]
        assert [r["seq"] for _, r in acked] == list(range(1, last_acked + 1))

        # The picture rebuilt from snapshot + log is the fold of the log.
        assert state_of(client) == fold(events).model_dump(mode="json")

        # Retrying an acknowledged command replays its first answer and changes nothing.
        for command, reply in [*acked[:: max(1, len(acked) // 40)], acked[-1]]:
            again = post(client, command)
            assert again["replayed"] is True
            assert again["seq"] == reply["seq"]
            assert again["event"] == reply["event"]
        assert len(all_events(client)) == len(events)

        # The command in flight when the server died takes effect exactly once.
        if in_flight is not None:
            again = post(client, in_flight)
            if len(events) == last_acked + 1:
                assert again["replayed"] is True
                assert again["seq"] == last_acked + 1
            else:
                assert again["replayed"] is False
                assert again["seq"] == last_acked + 1
            assert post(client, in_flight)["replayed"] is True
            assert len(all_events(client)) == last_acked + 1


# --- SIGTERM -------------------------------------------------------------------------------


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_stop_signal_exits_cleanly_and_restart_rebuilds_state(
    tmp_path: Path, config_file: Path, stop_signal: signal.Signals
) -> None:
    db = tmp_path / "cad.db"
    with server_process(tmp_path, db, config_file, "first") as server:
        with server.client() as client:
            post(client, book_on("TERM1"))
            reference = post(client, create_incident(1))["event"]["reference"]
            for n in range(30):  # past a snapshot (every 25), and some after it
                post(client, add_note(reference, n))
            before = state_of(client)
            events_before = all_events(client)
        server.proc.send_signal(stop_signal)
        assert server.wait() == 0, server.errors()
    assert before["seq"] == 32

    with server_process(tmp_path, db, config_file, "second") as server:
        with server.client() as client:
            assert state_of(client) == before
            assert all_events(client) == events_before
            health = client.get("/v1/health").json()
            assert health["seq"] == 32
            # And it carries on from where it was.
            assert post(client, add_note(reference, 99))["seq"] == 33
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0, server.errors()


def test_sigterm_with_an_open_stream_still_exits_cleanly(tmp_path: Path, config_file: Path) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    db = tmp_path / "cad.db"
    with server_process(tmp_path, db, config_file, "first") as server:
        with server.client() as client:
            post(client, book_on("TERM2"))
        url = f"ws://127.0.0.1:{server.port}/v1/stream"
        with connect(
            url,
            subprotocols=["cadterm.v1"],
            additional_headers=HEADERS,
            proxy=None,
            open_timeout=10,
            close_timeout=5,
        ) as conn:
            conn.send('{"type": "subscribe", "since": 0}')
            assert '"event"' in conn.recv(timeout=10)
            assert '"caught_up"' in conn.recv(timeout=10)
            server.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as info:
                for _ in range(100):
                    conn.recv(timeout=STOP_TIMEOUT)
        assert info.value.rcvd is not None, "the server should close the stream, not drop it"
        assert info.value.rcvd.code in (1001, 1012)
        assert server.wait() == 0, server.errors()


# --- first start ---------------------------------------------------------------------------


def test_first_start_hands_over_a_token_once(tmp_path: Path) -> None:
    # The server's output goes to a pipe here, not a terminal: the token goes to a
    # private file beside the config and only that file's path is printed.
    config = tmp_path / "fresh" / "server.toml"
    db = tmp_path / "cad.db"
    assert not config.exists()
    with server_process(tmp_path, db, config, "first") as server:
        output = server.output()
        token_file = config.parent / "first-token"
        assert str(token_file) in output, output
        token = token_file.read_text(encoding="utf-8").strip()
        assert re.fullmatch(r"\S{40,}", token)
        assert token not in output
        assert token not in config.read_text(encoding="utf-8")
        [desk] = load_config(config).workstations
        with server.client({"Authorization": f"Bearer {token}"}) as client:
            who = client.get("/v1/whoami")
            assert who.status_code == 200, who.text
            assert who.json()["id"] == "dispatcher1"
            assert who.json()["role"] == "dispatcher"
            post(client, book_on("FIRST1") | {"workstation": desk.id})
        with server.client({"Authorization": "Bearer wrong"}) as client:
            assert client.get("/v1/whoami").status_code == 401
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0, server.errors()

    with server_process(tmp_path, db, config, "second") as server:
        output = server.output()
        assert token not in output
        assert "Token" not in output
        with server.client({"Authorization": f"Bearer {token}"}) as client:
            assert client.get("/v1/whoami").json()["id"] == "dispatcher1"
            assert client.get("/v1/health").json()["seq"] == 1
        server.proc.send_signal(signal.SIGTERM)
        assert server.wait() == 0, server.errors()


def test_a_start_that_folds_a_long_tail_snapshots_it_at_the_first_upkeep(
    tmp_path: Path, backend_factory
) -> None:
    # A log with no snapshot (an older server that crashed, or a restore): the events
    # folded at start count towards the next snapshot, so a crash soon after does not
    # fold them all again.
    from test_store_contract import append_all, history

    from cadterm.server.store import SQLiteEventStore

    db = tmp_path / "tail.db"
    with SQLiteEventStore(db) as store:
        append_all(store, history(40))
        assert store.load_snapshot() is None
    config = make_config(snapshot_every=10, limits=Limits(upkeep_seconds=0.1))
    backend = backend_factory(config=config, db_path=db)

    def snapshot_seq() -> int:
        with SQLiteEventStore(db) as store:
            snapshot = store.load_snapshot()
        return 0 if snapshot is None else snapshot.seq

    assert wait_for(lambda: snapshot_seq() == 40, timeout=20, what="a snapshot at the head")
    assert backend.embedded.running
