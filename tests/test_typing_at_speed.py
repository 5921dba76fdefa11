"""Typing at speed over a link with delay: Escape then a key, pastes, the cursor after errors."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from test_console import open_console
from test_terminal import Tmux, tmux, wait_for  # noqa: F401
from textual import events

from cadterm.tui.command_line import CommandInput

DEAD = "http://127.0.0.1:9"  # nothing answers: the command line works without a backend


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_escape_and_a_key_in_one_read_clear_the_line_then_type_the_key(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    cadterm = Path(sys.executable).parent / "cadterm"
    tmux.start(f"env CADTERM_DATA_DIR={tmp_path} {cadterm} console {DEAD} --token t")
    tmux.run("set", "-g", "escape-time", "0")  # tmux must not hold the Escape back itself
    wait_for(lambda: "RECONNECTING" in tmux.screen(), 30, "the console to start")
    tmux.type("a 1 AB12", enter=False)
    wait_for(lambda: "a 1 AB12" in tmux.screen(), 10, "the typed line")
    tmux.run("send-keys", "-t", tmux.session, "-H", "1b", "6e")  # ESC n, in one write
    wait_for(lambda: " n\n" in tmux.screen() and "AB12" not in tmux.screen(), 10, "a new line")


async def test_a_paste_brings_no_controls_or_bidi_overrides(tmp_path: Path) -> None:
    async with open_console(DEAD, tmp_path, wait_live=False) as console:
        field = console.app.query_one(CommandInput)
        field.post_message(events.Paste("+ caller\x1b[2J says \u202eevil\u202c\tnow\x85"))
        await console.until(lambda: field.value, what="the paste")
        assert field.value == "+ caller[2J says evil now"


async def test_after_an_error_typing_goes_on_at_the_end(tmp_path: Path) -> None:
    async with open_console(DEAD, tmp_path, wait_live=False) as console:
        await console.line("s NOSUCH bogus")
        await console.until(lambda: console.feedback.has_class("-error"), what="the error")
        assert console.input.value == "s NOSUCH bogus"
        assert console.input.cursor_position == len("s NOSUCH bogus")
