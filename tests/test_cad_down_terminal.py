"""CAD down on a real terminal: a console started with no backend shows its last picture.

`cadterm console` runs in tmux at 80x24 against a real backend, is quit, the backend is
stopped, and the console is started again: it must show the incidents it last knew,
with a banner saying they are the picture of a time, how old, and why nothing is live.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TOKENS, Backend
from test_tmux_screens import CADTERM, Tmux, create, pytestmark, start_console, tmux, wait_for  # noqa: F401

from cadterm.protocol.domain import Role


def test_a_console_started_while_cad_is_down_shows_its_last_picture(
    tmux: Tmux,  # noqa: F811
    backend: Backend,
    backend_factory,
    tmp_path: Path,
) -> None:
    reference = create(backend, "14 Gasworks Lane", grade=1)
    start_console(tmux, backend, tmp_path)
    wait_for(lambda: "Gasworks Lane" in tmux.screen(), what="the incident on the queue")
    tmux.run("send-keys", "-t", "console", "C-q")
    wait_for(lambda: not tmux.run("list-sessions"), what="the console to quit")

    backend_factory.stop(backend)
    env = {
        "CADTERM_DATA_DIR": str(tmp_path / "data"),
        "CADTERM_CONFIG_DIR": str(tmp_path / "conf"),
        "TERM": "xterm-256color",
    }
    token = TOKENS[Role.DISPATCHER]
    tmux.start(f"{CADTERM} console {backend.url} --token {token} --workstation ws-test", env)
    wait_for(lambda: "picture of" in tmux.screen(), 20, "the banner saying whose picture it is")
    screen = tmux.screen()
    assert "NOT LIVE" in screen
    assert re.search(r"picture of \d\d:\d\d \(\d+s old\)", screen), screen
    # The incidents it last knew are on the board, with their references.
    assert "Gasworks Lane" in screen and reference[:4] in screen
    tmux.run("send-keys", "-t", "console", "C-q")
