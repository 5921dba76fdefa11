"""End to end in a real terminal: the console runs inside tmux against a real backend.

The backend is a subprocess on a loopback port with its own SQLite file; the console is
`cadterm console` started in a detached tmux session at 80x24, typed at with
`send-keys` and read with `capture-pane`, as an operator over SSH would see it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import waiting
from conftest import TOKENS, make_config, started_server_url

from cadterm.protocol.domain import Role
from cadterm.server.config import write_config

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

TOKEN = TOKENS[Role.DISPATCHER]


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, what: str = "") -> object:
    """Poll `predicate` until it is truthy (`waiting.wait_for`, at the screen's pace)."""
    return waiting.wait_for(predicate, timeout, what, step=0.1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    config = tmp_path / "server.toml"
    write_config(config, make_config())
    out_path = tmp_path / "server.out"
    with out_path.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cadterm.cli.main",
                "server",
                "--db",
                str(tmp_path / "cad.db"),
                "--config",
                str(config),
                "--port",
                "0",
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = started_server_url(process, out_path.read_text)

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/v1/health", timeout=0.5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, 15, "the backend to start")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


class Tmux:
    """A detached tmux session on its own socket, so it cannot touch anyone else's."""

    def __init__(self, socket: Path) -> None:
        self.socket = str(socket)
        self.session = "cadterm-e2e"

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-S", self.socket, *args], capture_output=True, text=True, timeout=10
        )
        return result.stdout

    def start(self, command: str, width: int = 80, height: int = 24) -> None:
        """Open a `width` x `height` window and run `command` in it.

        COLUMNS and LINES are dropped from the command's environment: something in the
        test process exports 80x24, and Textual (through shutil) believes them over the
        terminal's real size.
        """
        subprocess.run(
            [
                "tmux",
                "-S",
                self.socket,
                "new-session",
                "-d",
                "-s",
                self.session,
                "-x",
                str(width),
                "-y",
                str(height),
                f"env -u COLUMNS -u LINES {command}",
            ],
            check=True,
            timeout=10,
        )

    def type(self, text: str, enter: bool = True) -> None:
        self.run("send-keys", "-t", self.session, "-l", text)
        if enter:
            self.run("send-keys", "-t", self.session, "Enter")

    def key(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def alive(self) -> bool:
        return (
            subprocess.run(
                ["tmux", "-S", self.socket, "has-session", "-t", self.session],
                capture_output=True,
                timeout=10,
            ).returncode
            == 0
        )

    def kill(self) -> None:
        subprocess.run(["tmux", "-S", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    # A short socket path: unix socket paths are limited to ~100 bytes.
    socket = Path("/tmp") / f"cadterm-{uuid.uuid4().hex[:8]}.sock"
    session = Tmux(socket)
    try:
        yield session
    finally:
        session.kill()
        socket.unlink(missing_ok=True)


def _post(url: str, **command: object) -> dict:
    command.setdefault("idempotency_key", uuid.uuid4().hex)
    command.setdefault("workstation", "ws-test")
    response = httpx.post(
        f"{url}/v1/commands", json=command, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def _state(url: str) -> dict:
    response = httpx.get(f"{url}/v1/state", headers={"Authorization": f"Bearer {TOKEN}"})
    return response.json()


def test_whole_dispatch_flow_in_a_real_terminal(server: str, tmux: Tmux, tmp_path: Path) -> None:
    for callsign, lat in (("NC11", 53.801), ("NC12", 53.84)):
        _post(
            server,
            type="book_on",
            callsign=callsign,
            unit_type="patrol_car",
            home_sector="North",
            position={"lat": lat, "lon": -1.55},
        )
    env = (
        f"CADTERM_DATA_DIR={tmp_path / 'data'} CADTERM_CONFIG_DIR={tmp_path / 'conf'} "
        f"TERM=xterm-256color"
    )
    cadterm = Path(sys.executable).parent / "cadterm"
    tmux.start(f"env {env} {cadterm} console {server} --token {TOKEN} --workstation ws-test")
    wait_for(lambda: "| LIVE |" in tmux.screen(), 20, "the console to go live")
    assert "NC11" in tmux.screen()

    tmux.type("n 1 rtc 12 High Street pos=53.800,-1.550")
    wait_for(lambda: "NEW GRADE 1" in tmux.screen(), 10, "the grade 1 alarm")
    screen = tmux.screen()
    assert "12 High Street" in screen and "RTC" in screen

    tmux.type("rec")
    wait_for(lambda: "Recommended for" in tmux.screen(), 10, "recommendations")
    assert "1. NC11" in tmux.screen()  # the nearer unit comes first

    tmux.type("a ", enter=False)
    tmux.key("Tab")
    tmux.key("Enter")
    wait_for(lambda: "done: assign NC11" in tmux.screen(), 10, "the assignment")

    tmux.type("s NC11 at scene")
    wait_for(lambda: "done: NC11 state 6" in tmux.screen(), 10, "the state change")
    wait_for(lambda: "SCENE" in tmux.screen(), 10, "the board to show at scene")

    tmux.type("cl resolved all parties spoken to")
    wait_for(lambda: "done: close" in tmux.screen(), 10, "the close")
    wait_for(lambda: "12 High Street" not in tmux.screen(), 10, "the incident to leave")

    state = _state(server)
    (incident,) = state["incidents"].values()
    assert incident["status"] == "closed"
    assert incident["closing_code"] == "RESOLVED"
    kinds = [entry["kind"] for entry in incident["chronology"]]
    assert kinds == [
        "incident_created",
        "unit_assigned",
        "unit_state_changed",
        "incident_closed",
    ]
    assert state["units"]["NC11"]["state"] == 2  # cleared by the close

    tmux.key("C-q")
    wait_for(lambda: not tmux.alive(), 10, "the console to quit")


def test_hostile_text_stays_literal_on_a_real_terminal(
    server: str, tmux: Tmux, tmp_path: Path
) -> None:
    created = _post(
        server,
        type="create_incident",
        grade=2,
        incident_type="CONCERN",
        location={"address": "1 Safe Street"},
    )
    reference = created["event"]["reference"]
    _post(
        server,
        type="add_note",
        reference=reference,
        # Escape sequences are refused at the door now (tests/test_strict_values.py); the
        # console's handling of ones stored earlier is in tests/test_legacy_values.py.
        text="[@click=app.quit]x[/] [bold]b [ end",
    )
    env = f"CADTERM_DATA_DIR={tmp_path / 'data'} CADTERM_CONFIG_DIR={tmp_path / 'conf'}"
    cadterm = Path(sys.executable).parent / "cadterm"
    tmux.start(
        f"env {env} {cadterm} console {server} --token {TOKEN} --workstation ws-test",
        width=160,
        height=40,
    )
    wait_for(lambda: "| LIVE |" in tmux.screen(), 20, "the console to go live")
    tmux.key("F4")
    wait_for(lambda: "Chronology" in tmux.screen(), 10, "the detail pane")
    screen = tmux.screen()
    # The pane may wrap the note, so look for each hostile piece on its own.
    for piece in ("[@click=app.quit]x[/]", "[bold]b"):
        assert piece in screen, piece
    assert "1 Safe Street" in screen  # the screen was not cleared
    assert tmux.alive()
