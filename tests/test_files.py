"""What the server leaves on disk and in its logs: private files, no token, no query.

The event log holds callers' names and numbers and the config holds token hashes, so
both are readable by their owner only whatever the umask; the first-start token never
reaches a log; the access log never records a query string.
"""

from __future__ import annotations

import io
import logging
import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from conftest import Backend, started_server_url
from waiting import wait_for
from websockets.sync.client import connect

from cadterm.protocol.frames import SUBPROTOCOL
from cadterm.server.config import ensure_config, load_config
from cadterm.server.run import FIRST_TOKEN_FILE, _hand_over_first_token
from cadterm.server.store.sqlite import SQLiteEventStore

DEADLINE = 20.0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@contextmanager
def permissive_umask() -> Iterator[None]:
    # The usual 022: files would be world-readable unless created private on purpose.
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def eventually(condition: Callable[[], bool], what: str) -> None:
    wait_for(condition, DEADLINE, what)


# --- the event database ------------------------------------------------------------------


def test_a_fresh_database_its_wal_and_shm_are_0600_in_a_0700_folder(tmp_path: Path) -> None:
    db = tmp_path / "data" / "cadterm.db"
    with permissive_umask(), SQLiteEventStore(db) as store:
        assert store.head() == 0
        wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
        assert wal.exists() and shm.exists()
        assert (mode(db), mode(wal), mode(shm)) == (0o600, 0o600, 0o600)
        assert mode(db.parent) == 0o700


def test_an_existing_world_readable_database_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "cadterm.db"
    with permissive_umask():
        SQLiteEventStore(db).close()
        os.chmod(db, 0o644)
        with SQLiteEventStore(db):
            assert mode(db) == 0o600
            assert mode(Path(f"{db}-shm")) == 0o600


# --- the config and the first-start token --------------------------------------------------


def test_first_start_config_is_private_and_registers_a_workstation(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "server.toml"
    with permissive_umask():
        config, token = ensure_config(path)
    assert token is not None
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)
    assert len(config.workstations) == 1
    assert load_config(path) == config


class FakeStdout(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_first_token_goes_to_a_private_file_when_stdout_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "server.toml"
    config, token = ensure_config(path)
    out = FakeStdout(tty=False)
    monkeypatch.setattr(sys, "stdout", out)
    with permissive_umask():
        _hand_over_first_token(path, config, token)
    token_file = path.parent / FIRST_TOKEN_FILE
    assert token_file.read_text() == token + "\n"
    assert mode(token_file) == 0o600
    assert token not in out.getvalue()
    assert str(token_file) in out.getvalue()


def test_first_token_is_printed_on_a_terminal_and_no_file_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "conf" / "server.toml"
    config, token = ensure_config(path)
    out = FakeStdout(tty=True)
    monkeypatch.setattr(sys, "stdout", out)
    _hand_over_first_token(path, config, token)
    assert token in out.getvalue()
    assert not (path.parent / FIRST_TOKEN_FILE).exists()


# --- the access log ----------------------------------------------------------------------


def test_the_access_log_has_no_query_string(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cadterm.access")
    secret = uuid.uuid4().hex
    reply = httpx.get(
        f"{backend.url}/v1/incidents",
        params={"status": "open", "token": secret},
        headers=backend.headers(),
        timeout=5,
    )
    assert reply.status_code == 200
    httpx.get(f"{backend.url}/v1/health?probe={secret}", timeout=5)
    httpx.get(f"{backend.url}/v1/state%0Aforged-line?x={secret}", timeout=5)

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "cadterm.access"]

    eventually(lambda: len(lines()) >= 3, "three access log lines")
    text = "\n".join(lines())
    assert secret not in text and "?" not in text
    assert any(" GET /v1/incidents 200 " in line for line in lines())
    assert any(" GET /v1/health 200 " in line for line in lines())
    # A newline in the path is shown encoded, never as a line of its own.
    assert any("/v1/state%0Aforged-line" in line for line in lines())
    assert all("\n" not in line for line in lines())


# --- all of it, on `cadterm server` itself --------------------------------------------------


@pytest.mark.slow
def test_first_start_of_cadterm_server_with_output_to_a_file(tmp_path: Path) -> None:
    config_dir, data_dir = tmp_path / "conf", tmp_path / "data"
    out_path = tmp_path / "server.out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADTERM_")}
    env |= {"CADTERM_CONFIG_DIR": str(config_dir), "CADTERM_DATA_DIR": str(data_dir)}
    with out_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadterm.cli.main", "server", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=lambda: os.umask(0o022),
        )
    try:
        url = started_server_url(proc, out_path.read_text)

        def healthy() -> bool:
            assert proc.poll() is None, out_path.read_text()
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(healthy, "cadterm server up")
        token_file = config_dir / FIRST_TOKEN_FILE
        token = token_file.read_text().strip()
        output = out_path.read_text()
        assert token not in output and str(token_file) in output
        assert mode(token_file) == 0o600
        assert (mode(config_dir), mode(config_dir / "server.toml")) == (0o700, 0o600)

        headers = {"Authorization": f"Bearer {token}"}
        [desk] = load_config(config_dir / "server.toml").workstations
        command = {
            "type": "book_on",
            "idempotency_key": uuid.uuid4().hex,
            "workstation": desk.id,
            "callsign": "AB12",
            "unit_type": "van",
        }
        reply = httpx.post(f"{url}/v1/commands?debug=SECRETQUERY", json=command, headers=headers)
        assert reply.status_code == 200, reply.text

        db = data_dir / "cadterm.db"
        files = [db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        assert [mode(f) for f in files] == [0o600] * 3
        assert mode(data_dir) == 0o700
        stream = f"{url.replace('http', 'ws', 1)}/v1/stream?debug=SECRETQUERY"
        with connect(stream, subprotocols=[SUBPROTOCOL], additional_headers=headers) as ws:
            ws.send('{"type": "subscribe"}')
            assert '"snapshot"' in ws.recv(timeout=10)
        eventually(lambda: "POST /v1/commands 200" in out_path.read_text(), "access log line")
        eventually(lambda: "WS /v1/stream 101" in out_path.read_text(), "stream log line")
        assert "SECRETQUERY" not in out_path.read_text()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
