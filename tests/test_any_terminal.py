"""Any terminal: the console sends only what the terminal says it can take.

The decisions (locale, terminfo, settings) are tested as functions; the bytes are
tested on a real pty, with the real console, under `TERM=vt100` and `LANG=C`.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pty_session import PtySession
from rich.cells import cell_len

from cadterm.cli.terminal import terminal_traits, wants_unicode
from cadterm.tui.terminal_output import to_ascii, without_extended_modes

CADTERM = [sys.executable, "-m", "cadterm.cli.main"]
VT100 = {"vt100": (0, False), "xterm-256color": (256, True), "xterm": (8, True)}


def traits(**environ: str):
    return terminal_traits(environ, VT100.get, coerced=False)


# --- what the terminal is ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "coerced", "utf8"),
    [
        ({"LANG": "en_GB.UTF-8"}, False, True),
        ({"LANG": "C"}, False, False),
        ({"LANG": "POSIX"}, False, False),
        ({}, False, False),
        ({"LANG": "en_GB.UTF-8", "LC_ALL": "C"}, False, False),
        ({"LANG": "C", "LC_CTYPE": "en_GB.utf8"}, False, True),
        # Python turned LANG=C into LC_CTYPE=C.UTF-8 itself: the terminal is still C.
        ({"LANG": "C", "LC_CTYPE": "C.UTF-8"}, True, False),
        ({"LANG": "C", "LC_CTYPE": "C.UTF-8"}, False, True),
    ],
)
def test_the_locale_the_user_set_decides_utf8(environ, coerced, utf8) -> None:
    assert wants_unicode(environ, coerced) is utf8


def test_terminfo_decides_colours_mouse_and_extended_modes() -> None:
    vt100 = traits(TERM="vt100", LANG="C")
    assert (vt100.unicode, vt100.colours, vt100.mouse, vt100.extended) == (False, 0, False, False)
    assert vt100.colour_system is None
    xterm = traits(TERM="xterm-256color", LANG="en_GB.UTF-8")
    assert (xterm.unicode, xterm.colours, xterm.mouse, xterm.extended) == (True, 256, True, True)
    assert traits(TERM="xterm").colour_system == "standard"
    assert traits(TERM="xterm-256color", COLORTERM="truecolor").colour_system == "truecolor"
    assert traits(TERM="xterm-256color", NO_COLOR="1").colours == 0
    unknown = traits(TERM="no-such-terminal")
    assert (unknown.colours, unknown.mouse) == (0, False)  # nothing it did not say it has
    assert traits(TERM="vt100", SSH_CONNECTION="10.0.0.9 5 10.0.0.1 22").over_ssh


def test_settings_force_each_trait() -> None:
    forced = terminal_traits(
        {"TERM": "vt100", "LANG": "C"},
        VT100.get,
        coerced=False,
        unicode=True,
        colour="16",
        mouse=True,
    )
    assert (forced.unicode, forced.colours, forced.mouse) == (True, 16, True)
    assert terminal_traits({"TERM": "xterm"}, VT100.get, colour="none").colours == 0


# --- what is written ---------------------------------------------------------------------


@given(st.text())
def test_ascii_output_keeps_every_cell_where_it_was(text: str) -> None:
    text = "".join(c for c in text if c.isprintable() or c == " ")
    ascii_text = to_ascii(text)
    assert ascii_text.isascii()
    assert cell_len(ascii_text) == cell_len(text)


def test_ascii_replacements_read_sensibly() -> None:
    assert to_ascii("│ ─ ┼ ▁▂█ ▔▏") == "| - + _ # -|"
    assert to_ascii("Zoë \uff38 中 …") == "Zoe X  ?? ~"  # a fullwidth X keeps two cells
    assert to_ascii("e\u0301") == "e"  # a combining accent adds no cell
    assert to_ascii("␛[2J") == "^[2J"
    assert to_ascii("\x1b[1mplain\x1b[0m") == "\x1b[1mplain\x1b[0m"


def test_extended_modes_are_dropped_and_the_rest_kept() -> None:
    data = "\x1b[?1049h\x1b[?1004h\x1b[>1u\x1b[?2026$p\x1b[?2004h\x1b[?2048$pX\x1b[?25l"
    assert without_extended_modes(data) == "\x1b[?1049hX\x1b[?25l"


# --- on a real terminal ------------------------------------------------------------------

_MODES = re.compile(rb"\x1b\[\?(?:1000|1002|1003|1006|1015|1004|2004|2048)h|\x1b\[>\d*u")
_SGR = re.compile(rb"\x1b\[([0-9;]*)m")
# Foreground and background colours; 39 and 49 are the terminal's own default colours.
_COLOUR_CODES = {*range(30, 39), *range(40, 49), *range(90, 98), *range(100, 108)}


def colours_set(out: bytes) -> list[bytes]:
    """Every SGR sequence in `out` that sets a colour other than the terminal's own."""
    return [
        match.group()
        for match in _SGR.finditer(out)
        if _COLOUR_CODES & {int(p) for p in match.group(1).split(b";") if p}
    ]


def console_output(tmp_path: Path, **environ: str) -> bytes:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CADTERM_", "TEXTUAL", "LC_"))}
    env.pop("NO_COLOR", None)
    env |= {"CADTERM_DATA_DIR": str(tmp_path / "data"), **environ}
    session = PtySession(
        [*CADTERM, "console", "http://127.0.0.1:9", "--token", "t", "--workstation", "ws-1"],
        env,
    )
    try:
        session.wait_for(b"ws-1", 60)
        session.wait_for(b"RECONNECTING", 60)  # a later frame: the screen has settled
        return bytes(session.output)
    finally:
        session.close()


@pytest.mark.slow
def test_a_vt100_in_a_c_locale_gets_ascii_and_no_colour_or_modes(tmp_path: Path) -> None:
    out = console_output(tmp_path, TERM="vt100", LANG="C")
    assert out.isascii(), sorted({chr(b) for b in out if b > 0x7F})
    assert not _MODES.search(out), _MODES.search(out)
    assert colours_set(out) == []
    log = (tmp_path / "data" / "console.log").read_text(encoding="utf-8")
    assert "terminal vt100: ASCII, no colours, mouse off, extended modes off" in log


@pytest.mark.slow
def test_an_xterm_gets_what_it_can_show(tmp_path: Path) -> None:
    # The same probes find the features where the terminal has them: they can fail.
    out = console_output(tmp_path, TERM="xterm-256color", LANG="en_GB.UTF-8")
    assert not out.isascii()
    assert _MODES.search(out) and colours_set(out)


@pytest.mark.slow
@pytest.mark.parametrize("stray", [b"\xe9", b"\x9b", b"\xff\xfe", b"caf\xe9 "])
def test_a_byte_that_is_not_utf8_never_stops_the_console(tmp_path: Path, stray: bytes) -> None:
    """An `é` from a Latin-1 terminal, a stray C1 byte in a paste: read as U+FFFD, and
    the console carries on taking keys."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CADTERM_", "TEXTUAL", "LC_"))}
    env |= {"CADTERM_DATA_DIR": str(tmp_path / "data"), "TERM": "xterm-256color"}
    env |= {"LANG": "en_GB.UTF-8"}
    session = PtySession(
        [*CADTERM, "console", "http://127.0.0.1:9", "--token", "t", "--workstation", "ws-1"],
        env,
    )
    try:
        session.wait_for(b"RECONNECTING", 60)
        session.send(stray)
        session.send(b"still here")
        session.wait_for(b"still here", 30)  # wait_for fails if the console has ended
        session.wait_for("\N{REPLACEMENT CHARACTER}".encode(), 30)
        assert session.process.poll() is None
    finally:
        session.close()
