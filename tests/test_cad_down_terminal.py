"""CAD down on a real terminal: a console started with no backend shows its last picture,
and what the dispatcher does meanwhile shows on it at once, marked provisional.

`cadterm console` runs in tmux at 80x24 against a real backend, is quit, the backend is
stopped, and the console is started again: it must show the incidents it last knew,
with a banner saying they are the picture of a time, how old, and why nothing is live.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import TOKENS, Backend
from console_helpers import post_command
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


def test_actions_taken_while_cad_is_down_show_at_once_marked_provisional(
    tmux: Tmux,  # noqa: F811
    backend: Backend,
    backend_factory,
    tmp_path: Path,
) -> None:
    reference = create(backend, "14 Gasworks Lane", grade=1)
    post_command(
        backend, type="book_on", callsign="B21", unit_type="patrol_car", home_sector="North"
    )
    start_console(tmux, backend, tmp_path)
    wait_for(lambda: "Gasworks Lane" in tmux.screen() and "B21" in tmux.screen(), what="board")

    backend_factory.stop(backend)
    wait_for(lambda: "NOT LIVE" in tmux.screen(), 20, "the console to see CAD is down")
    short = reference[:4]
    tmux.type(f"a {short} B21")
    wait_for(lambda: "1 done here, marked ~" in tmux.screen(), 10, "the provisional banner")
    screen = tmux.screen()
    # The queue row and the unit row both show the assignment, marked without colour.
    assert re.search(rf"^{short}-\S+~.*B21", screen, re.M), screen
    assert re.search(r"^B21\s*~", screen, re.M), screen
    # An incident opened offline is on the board at once, under a reference, selected,
    # so the note typed next goes to it and not to whatever was selected before.
    tmux.type("n 3 THEFT 9 Boar Lane")
    wait_for(lambda: "Boar Lane" in tmux.screen(), 10, "the offline incident on the queue")
    tmux.type("+ caller rang back")
    wait_for(lambda: "3 done here" in tmux.screen(), 10, "three provisional actions")
    tmux.run("send-keys", "-t", "console", "F4")
    wait_for(lambda: "PROVISIONAL" in tmux.screen(), 10, "the detail marked provisional")
    detail = tmux.screen()
    assert "At: 9 Boar Lane" in detail, detail
    assert re.search(r"note on \d{4}-\d\d[A-Z]{3}\d\d: journalled", detail), detail

    # The paper fallback from the picture on screen, offline actions included.
    tmux.run("send-keys", "-t", "console", "F12")
    wait_for(lambda: "CAD-down pack written" in tmux.screen(), 10, "the pack written")
    pages = sorted((tmp_path / "data").rglob("cad-down-pack-*.html"))
    assert len(pages) == 1, pages
    page = pages[0].read_text()
    assert "9 Boar Lane" in page and "Gasworks Lane" in page
    assert "3 action(s) taken here since, not yet recorded" in page
    tmux.run("send-keys", "-t", "console", "C-q")
