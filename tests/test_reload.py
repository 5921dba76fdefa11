"""A running server takes config changes without a restart.

`cadterm operator add/remove` and `cadterm workstation add` against the config file of
a running server (a thread, or `cadterm server` as a subprocess for SIGHUP), real
SQLite files in tmp_path, loopback ports. Nothing waits a fixed time: each check polls
its condition until a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from conftest import TOKENS, BackendThread, make_config, started_server_url
from waiting import wait_for

from cadterm.cli.main import main
from cadterm.protocol.domain import Role
from cadterm.server.config import load_config, write_config
from cadterm.server.live_config import LiveConfig

DEADLINE = 15.0


def eventually(condition: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll `condition` until it holds; fail saying `what` did not happen in time."""
    wait_for(condition, deadline, what)


def whoami(url: str, token: str) -> int:
    reply = httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    return reply.status_code


def add_operator(config_path: Path, capsys: pytest.CaptureFixture[str], op_id: str) -> str:
    args = ["operator", "add", op_id, "--name", "Night Shift", "--role", "dispatcher"]
    code = main([*args, "--config", str(config_path)])
    assert code == 0
    [line] = [x for x in capsys.readouterr().out.splitlines() if x.startswith("token: ")]
    return line.removeprefix("token: ")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "server.toml"
    write_config(path, make_config())
    return path


@pytest.fixture
def running(tmp_path: Path, config_path: Path) -> Iterator[str]:
    """A backend thread reading `config_path`; yields its URL."""
    runner = BackendThread(tmp_path / "cad.db", load_config(config_path), config_path=config_path)
    with runner as backend:
        yield backend.url


def test_operator_added_to_a_running_server_can_log_in_and_removed_cannot(
    running: str, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = add_operator(config_path, capsys, "op7")
    eventually(lambda: whoami(running, token) == 200, "the new operator's token accepted")
    reply = httpx.get(f"{running}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    assert reply.json()["id"] == "op7"

    assert main(["operator", "remove", "op7", "--config", str(config_path)]) == 0
    eventually(lambda: whoami(running, token) == 401, "the removed operator's token refused")
    assert whoami(running, TOKENS[Role.DISPATCHER]) == 200  # everyone else unaffected


def test_workstation_added_to_a_running_server_is_accepted(running: str, config_path: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}

    def book_on() -> httpx.Response:
        body = {
            "type": "book_on",
            "idempotency_key": uuid.uuid4().hex,
            "workstation": "CR3-WS01",
            "callsign": f"U{uuid.uuid4().hex[:5]}",
            "unit_type": "van",
        }
        return httpx.post(f"{running}/v1/commands", json=body, headers=headers, timeout=5)

    assert book_on().json()["code"] == "unknown_workstation"
    assert main(["workstation", "add", "CR3-WS01", "--config", str(config_path)]) == 0
    eventually(lambda: book_on().status_code == 200, "the new workstation accepted")


def test_a_role_change_applies_to_the_next_command(running: str, config_path: Path) -> None:
    headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}

    def book_on_status() -> int:
        body = {
            "type": "book_on",
            "idempotency_key": uuid.uuid4().hex,
            "workstation": "ws-test",
            "callsign": f"R{uuid.uuid4().hex[:5]}",
            "unit_type": "van",
        }
        return httpx.post(f"{running}/v1/commands", json=body, headers=headers).status_code

    assert book_on_status() == 200
    assert main(["operator", "role", "disp1", "read_only", "--config", str(config_path)]) == 0
    eventually(lambda: book_on_status() == 403, "the dispatcher, now read-only, refused")


def test_an_invalid_file_is_logged_and_the_previous_config_kept(
    running: str, config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="cadterm.server")
    good = config_path.read_text(encoding="utf-8")
    config_path.write_text(good.replace("[limits]", "[limits"), encoding="utf-8")

    def refused_reload_logged() -> bool:
        whoami(running, "not-a-token")  # a token check is what looks at the file
        return any("config not reloaded" in r.getMessage() for r in caplog.records)

    eventually(refused_reload_logged, "the refused reload logged")
    message = next(r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage())
    assert str(config_path) in message and "keeping the previous one" in message
    assert whoami(running, TOKENS[Role.DISPATCHER]) == 200
    assert whoami(running, TOKENS[Role.SUPERVISOR]) == 200


def test_live_config_keeps_the_old_roster_until_the_file_is_valid(
    config_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    live = LiveConfig(load_config(config_path), config_path, interval=0)
    roster = live.roster
    assert live.check() is False  # unchanged file: nothing read
    config_path.write_text("operators = 12\n", encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="cadterm.server"):
        assert live.check() is False
    assert live.roster is roster and "operators" in caplog.text
    assert live.check() is False  # the same bad file is not read again and again
    write_config(config_path, make_config(workstations=[]))
    assert live.check() is True
    assert live.roster is not roster and live.roster.workstations == {}
    assert live.reloads == 1


def test_live_config_looks_at_the_file_at_most_once_an_interval(config_path: Path) -> None:
    live = LiveConfig(load_config(config_path), config_path, interval=3600)
    write_config(config_path, make_config(workstations=[]))
    assert live.check() is False  # changed, but looked at less than an interval ago
    assert live.reload("asked to") is True  # a SIGHUP does not wait


# --- SIGHUP, on `cadterm server` itself -------------------------------------------------


@pytest.mark.slow
def test_sighup_reloads_the_config_of_cadterm_server(
    tmp_path: Path, config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADTERM_")}
    server = ["server", "--port", "0", "--db", str(tmp_path / "cad.db")]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cadterm.cli.main", *server, "--config", str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = started_server_url(proc, log_path.read_text)

        def healthy() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{url}/v1/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        eventually(healthy, "cadterm server up")
        # No authenticated request between the edit and the signal: only SIGHUP reloads.
        token = add_operator(config_path, capsys, "op8")
        proc.send_signal(signal.SIGHUP)
        eventually(lambda: "(SIGHUP)" in log_path.read_text(), "the SIGHUP reload logged")
        assert whoami(url, token) == 200
        assert proc.poll() is None  # SIGHUP did not end the server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0, log_path.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
