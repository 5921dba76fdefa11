"""What the terminal shows, cell by cell, so a frame sends only the cells that changed.

Textual repaints in whole widget lines: when one age on a board row moves from ``17s``
to ``18s``, or the clock from ``16:23:40`` to ``16:23:41``, the whole row goes out
again, 80 cells and their colour codes, about 200 bytes. Once a second, for every row
whose age counts seconds, that is most of what an idle console sends over SSH.

`PaintedScreen` keeps the character and style of every cell it has sent, and rewrites
each frame into moves and text for only the cells whose character or style differs,
the way curses does. It understands exactly what Textual's full-screen frames are made
of: absolute cursor moves, SGR styles (each segment styled from a reset), newlines,
text and mode switches. Anything else in a frame (a clear, a relative move, a scroll,
wide characters, a link) makes it forget what it knew and send that frame as it came,
so it can make output smaller but never wrong; so does a new terminal size.
"""

from __future__ import annotations

import re

from rich.cells import get_character_cell_size

__all__ = ["PaintedScreen"]

_TOKEN = re.compile(
    r"(?P<csi>\x1b\[(?P<params>[0-9;:?<>=]*)[ -/]*(?P<final>[@-~]))"
    r"|(?P<osc>\x1b\][^\x07\x1b]*(?:\x07|\x1b\\))"
    r"|(?P<esc>\x1b.?)"
    r"|(?P<control>[\x00-\x1f\x7f])"
    r"|(?P<text>[^\x00-\x1f\x7f]+)",
    re.S,
)
# Private modes that switch screens: what was painted is no longer what is shown.
_SCREEN_MODES = {"?47", "?1047", "?1048", "?1049"}
#: Unchanged cells between two changed ones that are sent again rather than skipped
#: with a cursor move (a move costs about as many bytes).
_GAP = 6

Style = tuple[str, ...]  # the SGR sequences in force since the last reset


class _Unknown(Exception):
    """A frame holds something this model does not follow."""


class PaintedScreen:
    """The cells sent to a `width` x `height` terminal; `repaint` sends what changed."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self._caret: tuple[int, int] | None = None  # where the last frame left the cursor
        self._chars: list[list[str | None]] = []
        self._styles: list[list[Style | None]] = []

    def forget(self) -> None:
        """Know nothing of what is shown: the next frame goes out whole."""
        self._caret = None
        if self.size is not None:
            width, height = self.size
            self._chars = [[None] * width for _ in range(height)]
            self._styles = [[None] * width for _ in range(height)]

    def repaint(self, frame: str, size: tuple[int, int]) -> str:
        """`frame` rewritten to send only cells that differ from what is shown.

        `size` is the terminal's (columns, rows) now. The result leaves the cursor and
        the style where `frame` would have left them.
        """
        if size != self.size:
            self.size = size
            self.forget()
            self._learn(frame)
            return frame
        try:
            return self._diff(frame)
        except _Unknown:
            self.forget()
            return frame

    def _learn(self, frame: str) -> None:
        # A frame sent whole: remember its cells (if it is one this model follows).
        try:
            self._diff(frame)
        except _Unknown:
            self.forget()

    def _diff(self, frame: str) -> str:
        assert self.size is not None
        width, height = self.size
        chars, styles = self._chars, self._styles
        # Work on copies of the touched rows: a frame this model cannot follow must
        # leave the model as it was before the frame (then forgotten by the caller).
        new_chars: dict[int, list[str | None]] = {}
        new_styles: dict[int, list[Style | None]] = {}
        out: list[str] = []
        # Where the frame's cursor is: where the last frame left it, until it moves.
        y, x = self._caret if self._caret is not None else (-1, -1)
        style: Style = ()  # the frame's style
        at = self._caret  # where the terminal's cursor is, if known
        sent: Style = ()  # the style last sent: every frame ends with a reset

        def put(row: int, start: int, text: str, cell_styles: list[Style]) -> None:
            nonlocal at, sent
            if at != (row, start):
                out.append(f"\x1b[{row + 1};{start + 1}H")
            for offset, char in enumerate(text):
                cell_style = cell_styles[offset]
                if cell_style != sent:
                    out.append(("\x1b[0m" if sent else "") + "".join(cell_style))
                    sent = cell_style
                out.append(char)
            end = start + len(text)
            # At the right margin the terminal waits to wrap: where it is is unclear.
            at = (row, end) if end < width else None

        for match in _TOKEN.finditer(frame):
            text = match.group("text")
            if text is not None:
                if any(get_character_cell_size(c) != 1 for c in text):
                    raise _Unknown  # wide or zero-width: cells are not characters
                if not 0 <= y < height or not 0 <= x <= width - len(text):
                    raise _Unknown
                if y not in new_chars:
                    new_chars[y], new_styles[y] = list(chars[y]), list(styles[y])
                row_chars, row_styles = new_chars[y], new_styles[y]
                end = x + len(text)
                if row_chars[x:end] == list(text) and row_styles[x:end] == [style] * len(text):
                    changed = []  # the common case, found without a loop in Python
                else:
                    changed = [
                        i
                        for i, char in enumerate(text)
                        if row_chars[x + i] != char or row_styles[x + i] != style
                    ]
                if changed:
                    spans = [[changed[0], changed[0]]]
                    for i in changed[1:]:
                        if i - spans[-1][1] - 1 <= _GAP:
                            spans[-1][1] = i
                        else:
                            spans.append([i, i])
                    for first, last in spans:
                        put(y, x + first, text[first : last + 1], [style] * (last - first + 1))
                    row_chars[x : x + len(text)] = list(text)
                    row_styles[x : x + len(text)] = [style] * len(text)
                x += len(text)
            elif match.group("csi"):
                params, final = match.group("params"), match.group("final")
                if final in "Hf":
                    parts = params.split(";") if params else []
                    if len(parts) > 2 or not all(p.isdigit() for p in parts if p):
                        raise _Unknown
                    y = int(parts[0]) - 1 if parts and parts[0] else 0
                    x = int(parts[1]) - 1 if len(parts) > 1 and parts[1] else 0
                elif final == "m":
                    if params in ("", "0"):
                        style = ()
                    elif params.startswith("0;"):
                        style = (f"\x1b[{params[2:]}m",)
                    else:
                        style = (*style, match.group())
                elif final in "hl" and params.startswith("?"):
                    if params in _SCREEN_MODES:
                        raise _Unknown
                    out.append(match.group())  # a mode switch: it changes no cell
                elif final in "nc" or (final == "p" and "$" in match.group()):
                    out.append(match.group())  # a query: answered, never drawn
                else:
                    raise _Unknown
            elif match.group("osc"):
                if not match.group().startswith(("\x1b]0;", "\x1b]2;")):
                    raise _Unknown  # only a window title changes no cell
                out.append(match.group())
            elif match.group("control"):
                char = match.group()
                if char == "\n" and y >= 0:
                    y, x = y + 1, 0  # the tty's ONLCR makes it a carriage return too
                elif char == "\r" and y >= 0:
                    x = 0
                elif char == "\x07":
                    out.append(char)
                else:
                    raise _Unknown
            else:
                raise _Unknown  # ESC 7, ESC 8, keypad modes and the like
        # Leave the cursor where the frame left it (the command line's caret) and the
        # style reset, as every Textual frame does.
        if sent:
            out.append("\x1b[0m")
        if y < 0:
            return "".join(out)  # the frame never placed the cursor: nor does this
        if at != (y, x):
            out.append(f"\x1b[{y + 1};{x + 1}H")
        self._caret = (y, x)
        for row, row_chars in new_chars.items():
            chars[row], styles[row] = row_chars, new_styles[row]
        return "".join(out)
