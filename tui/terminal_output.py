"""What reaches the terminal: only what this terminal can show and understands.

Textual's Linux driver assumes a modern xterm: it switches on focus reports, bracketed
paste, the kitty keyboard protocol, in-band resize and synchronised-update queries, and
it writes UTF-8. A VT100, a serial console or a `LANG=C` session over SSH shows those as
garbage. The console's driver is the stock one with two filters on what it writes:

- without extended modes, the escape sequences that switch them on or query them are
  dropped (mouse reporting is switched off separately, when the app is run);
- without Unicode, every non-ASCII character becomes ASCII of the same width in cells
  (box drawing as ``+-|``, an ellipsis as ``~``, accented letters as their base letter,
  anything else as ``?``), so columns stay where they were laid out.

And it sends less: each frame is cut down to the cells that changed (`painted_screen`),
and it paces itself to the link (`output_pace`): after a frame it asks the terminal for
the cursor position, and the answer's round trip tells the app how often to redraw the
boards. Output goes out a window at a time (a tenth of a second of what the link was
seen to carry), the next when the terminal has answered for the last, except the
newest frame's rows (a key's echo), which go at once: what is typed never waits behind
more than a window of a board redraw.
"""

from __future__ import annotations

import os
import re
import unicodedata
from functools import lru_cache

from rich.cells import get_character_cell_size
from textual import events
from textual.driver import Driver
from textual.message import Message

from .output_pace import OutputPace
from .painted_screen import PaintedScreen
from .terminal_input import read_undecodable_input_as_replacement

__all__ = ["CURSOR_REQUEST", "console_driver", "to_ascii", "without_extended_modes"]

# Focus events (1004), bracketed paste (2004), in-band resize (2048), pixel mouse (1016),
# the synchronised-update and in-band-resize queries, and the kitty keyboard protocol.
_EXTENDED = re.compile(
    r"\x1b\[\?(?:1004|2004|2048|1016)[hl]|\x1b\[\?(?:2026|2048)\$p|\x1b\[[>=]\d*u|\x1b\[<u"
)
#: Device status report 6: "where is the cursor?", answered by ESC [ row ; column R.
CURSOR_REQUEST = "\x1b[6n"
# A synchronised update's start and end, each written on its own: held back, so a frame
# that turns out to change nothing sends neither.
_SYNC_START, _SYNC_END = "\x1b[?2026h", "\x1b[?2026l"
#: Writes shorter than this are mode switches (a synchronised update's start, say), not
#: frames: a request sent after one would not follow the frame's bytes.
_FRAME_BYTES = 16

_NON_ASCII = re.compile(r"[^\x00-\x7f]")

# The block elements Textual draws thin rules with ("hkey", "vkey" borders) keep their
# line; the partial blocks of scrollbars and bars become blank.
_BLOCKS = {"\u2594": "-", "\u2580": "-", "\u2581": "_", "\u258f": "|", "\u2595": "|", "\u2588": "#"}

_SPECIAL = {
    "\u2026": "~",  # ellipsis: a cut text
    "\u00b7": ".",
    "\u2022": "*",
    "\u25b2": "^",
    "\u25bc": "v",
    "\u2190": "<",
    "\u2192": ">",
    "\u2191": "^",
    "\u2193": "v",
    "\u00a0": " ",
}


def without_extended_modes(data: str) -> str:
    """`data` without the escape sequences that switch on or query extended modes."""
    return _EXTENDED.sub("", data)


def to_ascii(data: str) -> str:
    """`data` with every non-ASCII character replaced by ASCII of the same cell width."""
    return _NON_ASCII.sub(_replace, data)


def _replace(match: re.Match[str]) -> str:
    return _ascii_for(match.group())


@lru_cache(maxsize=4096)
def _ascii_for(character: str) -> str:
    width = get_character_cell_size(character)
    if width == 0:
        return ""  # combining accents and zero-width characters
    code = ord(character)
    if 0x2500 <= code <= 0x257F:  # box drawing
        name = unicodedata.name(character, "")
        if "HORIZONTAL" in name and "VERTICAL" not in name:
            single = "-"
        elif "VERTICAL" in name and "HORIZONTAL" not in name:
            single = "|"
        else:
            single = "+"
    elif 0x2580 <= code <= 0x259F:  # block elements: thin rules, scrollbars, bars
        single = _BLOCKS.get(character, " ")
    elif 0x2400 <= code <= 0x2421:  # control pictures: how cleaned text shows controls
        single = "^"
    elif character in _SPECIAL:
        single = _SPECIAL[character]
    else:
        base = unicodedata.normalize("NFKD", character)[:1]
        single = base if base.isascii() and base.isprintable() else "?"
    return single + ("?" * (width - 1) if single == "?" else " " * (width - 1))


def _terminal_size(driver: Driver) -> tuple[int, int] | None:
    # Asked of the terminal at each frame (one ioctl): a resize may have reflowed what
    # it shows before the app has heard of it.
    try:
        size = os.get_terminal_size(driver._file.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None
    return size.columns, size.lines


def console_driver(
    base: type[Driver], *, unicode: bool, extended: bool, pace: OutputPace | None = None
) -> type[Driver]:
    """`base` (the app's own driver class) writing only what the terminal can take.

    Every frame is cut down to the cells that changed. With `pace`, frames are followed
    by cursor position requests whose answers `pace` times (the answers are still
    passed on to the app, which ignores them).
    """

    read_undecodable_input_as_replacement()

    class ConsoleDriver(base):  # type: ignore[valid-type, misc]
        __doc__ = console_driver.__doc__
        _painted: PaintedScreen | None = None
        _held = ""  # a synchronised update's start, not yet sent

        def write(self, data: str) -> None:
            held, self._held = self._held, ""
            if data == _SYNC_START:
                self._held = data
                return
            if data == _SYNC_END and held:
                return  # nothing was written since it started
            if not extended:
                data = without_extended_modes(data)
            if not unicode:
                data = to_ascii(data)
            if self._painted is None:
                self._painted = PaintedScreen()
            size = _terminal_size(self)
            if size is None:
                self._painted.forget()
                super().write(held + data)
                return
            first = self._painted.take(data, size)
            if not first and not self._painted.owed:
                self._held = held  # nothing on screen changed: still nothing written
                return
            self._send(held + first)

        def _send(self, first: str = "") -> None:
            """Write `first` and what the screen owes, a window's worth at a time (see
            `OutputPace.window`), the next when the terminal has answered for the last;
            the newest frame's first row (a key's echo) goes at once even while an answer is
            awaited."""
            painted = self._painted
            if painted is None:
                return
            window = pace.window if pace is not None else None
            if window is None:
                data = first + painted.changes()
            elif pace is not None and pace.awaiting:
                # One row of the newest frame: a key's echo, not a board's redraw.
                data = first + painted.changes(1, newest_only=True)
            else:
                data = first + painted.changes(window)
            if not data:
                return
            if pace is not None:
                pace.wrote(len(data))
                if len(data) >= _FRAME_BYTES or painted.owed:
                    # While some is still owed, each piece asks at once: its answer
                    # lets the next go. Otherwise a request now and then times the link.
                    more = painted.owed or pace.behind
                    if pace.request_now() if more else pace.request_due():
                        data += CURSOR_REQUEST
            super().write(data)

        def process_message(self, message: Message) -> None:
            if pace is not None and isinstance(message, events.CursorPosition):
                pace.answered()
                if self._painted is not None and self._painted.owed:
                    # On the input thread: the next piece goes from the app's loop.
                    self._loop.call_soon_threadsafe(self._send)
            super().process_message(message)

    return ConsoleDriver
