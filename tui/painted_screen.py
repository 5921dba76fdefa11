"""What the terminal shows, cell by cell, so a frame sends only the cells that changed.

Textual repaints in whole widget lines: when one age on a board row moves from ``17s``
to ``18s``, or the clock from ``16:23:40`` to ``16:23:41``, the whole row goes out
again, 80 cells and their colour codes, about 200 bytes. Once a second, for every row
whose age counts seconds, that is most of what an idle console sends over SSH.

`PaintedScreen` keeps two pictures: the cells the app wants shown (each frame is folded
into it) and the cells sent so far. What goes out is the difference, as moves and text
for only the cells whose character or style differ, the way curses does. It can go out
at once (`repaint`) or a piece at a time (`take`, then `changes` with a budget), the
rows of the newest frame first: over a slow link the command line's echo then goes
ahead of a board redraw still waiting to be sent, and a cell that changed twice in the
meantime is sent once, as it is now.

It understands exactly what Textual's full-screen frames are made of: absolute cursor
moves, SGR styles (each segment styled from a reset), newlines, text and mode switches.
Anything else in a frame (a clear, a relative move, a scroll, wide characters, a link)
makes it send what it owes, then that frame as it came, and forget what it knew; so
does a new terminal size. It can make output smaller, never wrong.
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
Row = list  # one row's cells: characters (str | None) or styles (Style | None)


class _Unknown(Exception):
    """A frame holds something this model does not follow."""


class PaintedScreen:
    """The cells wanted on a terminal and the cells sent to it; sends the difference."""

    def __init__(self) -> None:
        self.size: tuple[int, int] | None = None
        self._want_chars: list[Row] = []
        self._want_styles: list[Row] = []
        self._want_caret: tuple[int, int] | None = None  # where the app put the cursor
        self._sent_chars: list[Row] = []
        self._sent_styles: list[Row] = []
        self._caret: tuple[int, int] | None = None  # where the terminal's cursor is
        self._newest: list[int] = []  # rows the newest frame touched, in its order
        # Rows whose wanted cells may differ from those sent: every other row is known
        # to be as sent, so a frame's changes are found without a pass over the screen.
        self._touched: set[int] = set()

    def forget(self) -> None:
        """Know nothing of what is shown or wanted: the next frame goes out whole."""
        self._caret = self._want_caret = None
        self._newest = []
        self._touched = set()
        if self.size is not None:
            width, height = self.size
            self._want_chars = [[None] * width for _ in range(height)]
            self._want_styles = [[None] * width for _ in range(height)]
            self._sent_chars = [[None] * width for _ in range(height)]
            self._sent_styles = [[None] * width for _ in range(height)]

    @property
    def owed(self) -> bool:
        """Whether some wanted cell (or the cursor) has not been sent yet."""
        return self._differ() or (self._want_caret is not None and self._want_caret != self._caret)

    def _differ(self) -> bool:
        """Whether a wanted row differs from what was sent (the touched rows only)."""
        for row in list(self._touched):
            if (
                self._want_chars[row] != self._sent_chars[row]
                or self._want_styles[row] != self._sent_styles[row]
            ):
                return True
            self._touched.discard(row)
        return False

    def repaint(self, frame: str, size: tuple[int, int]) -> str:
        """`frame` rewritten to send only cells that differ from what is shown.

        `size` is the terminal's (columns, rows) now. The result leaves the cursor and
        the style where `frame` would have left them.
        """
        return self.take(frame, size) + self.changes()

    def take(self, frame: str, size: tuple[int, int]) -> str:
        """Fold `frame` into the wanted picture; returns what must be written now.

        That is the frame's mode switches, or (for a frame this model does not follow,
        or a new size) everything owed and then the frame itself, as it came.
        """
        if size != self.size:
            self.size = size
            self.forget()
            self._learn(frame)
            return frame
        try:
            return self._fold(frame)
        except _Unknown:
            owed = self.changes()
            self.forget()
            return owed + frame

    def _learn(self, frame: str) -> None:
        # A frame written whole: it is both wanted and sent (if this model follows it).
        try:
            self._fold(frame)
        except _Unknown:
            self.forget()
            return
        self._sent_chars = [list(row) for row in self._want_chars]
        self._sent_styles = [list(row) for row in self._want_styles]
        self._touched = set()
        self._caret = self._want_caret

    def _fold(self, frame: str) -> str:
        assert self.size is not None
        width, height = self.size
        # Work on copies of the touched rows: a frame this model cannot follow must
        # leave the model as it was before the frame.
        new_chars: dict[int, Row] = {}
        new_styles: dict[int, Row] = {}
        now: list[str] = []  # what goes out at once: mode switches, queries, titles
        # Where the frame's cursor is: where the last frame left it, until it moves.
        y, x = self._want_caret if self._want_caret is not None else (-1, -1)
        style: Style = ()
        for match in _TOKEN.finditer(frame):
            text = match.group("text")
            if text is not None:
                # Printable ASCII (no controls reach here) is one cell a character.
                if not text.isascii() and any(get_character_cell_size(c) != 1 for c in text):
                    raise _Unknown  # wide or zero-width: cells are not characters
                if not 0 <= y < height or not 0 <= x <= width - len(text):
                    raise _Unknown
                if y not in new_chars:
                    new_chars[y] = list(self._want_chars[y])
                    new_styles[y] = list(self._want_styles[y])
                new_chars[y][x : x + len(text)] = list(text)
                new_styles[y][x : x + len(text)] = [style] * len(text)
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
                    now.append(match.group())  # a mode switch: it changes no cell
                elif final in "nc" or (final == "p" and "$" in match.group()):
                    now.append(match.group())  # a query: answered, never drawn
                else:
                    raise _Unknown
            elif match.group("osc"):
                if not match.group().startswith(("\x1b]0;", "\x1b]2;")):
                    raise _Unknown  # only a window title changes no cell
                now.append(match.group())
            elif match.group("control"):
                char = match.group()
                if char == "\n" and y >= 0:
                    y, x = y + 1, 0  # the tty's ONLCR makes it a carriage return too
                elif char == "\r" and y >= 0:
                    x = 0
                elif char == "\x07":
                    now.append(char)
                else:
                    raise _Unknown
            else:
                raise _Unknown  # ESC 7, ESC 8, keypad modes and the like
        for row, row_chars in new_chars.items():
            self._want_chars[row], self._want_styles[row] = row_chars, new_styles[row]
        self._touched.update(new_chars)
        if new_chars:
            self._newest = list(new_chars)
        if y >= 0:
            self._want_caret = (y, x)
        return "".join(now)

    def changes(self, budget: int | None = None, *, newest_only: bool = False) -> str:
        """Moves and text that bring the terminal to the wanted picture.

        The newest frame's rows go first, then the rest from the top. With a `budget`
        (bytes) it stops after the row that reaches it (so it always sends something
        when something is owed); `newest_only` sends only the newest frame's rows.
        What is left is sent by later calls. Ends with the style reset and, when
        nothing is left, the cursor where the app put it.
        """
        if self.size is None:
            return ""
        width, height = self.size
        out: list[str] = []
        size = 0
        at = self._caret
        sent: Style = ()  # every write ends with a reset

        def put(row: int, start: int, chars: Row, styles: Row) -> None:
            nonlocal at, sent, size
            before = len(out)
            if at != (row, start):
                out.append(f"\x1b[{row + 1};{start + 1}H")
            for char, cell_style in zip(chars, styles, strict=True):
                if cell_style != sent:
                    out.append(("\x1b[0m" if sent else "") + "".join(cell_style))
                    sent = cell_style
                out.append(char)
            end = start + len(chars)
            # At the right margin the terminal waits to wrap: where it is is unclear.
            at = (row, end) if end < width else None
            size += sum(len(piece) for piece in out[before:])

        newest = [row for row in self._newest if 0 <= row < height]
        touched = self._touched
        rows = newest if newest_only else newest + sorted(touched.difference(newest))
        for row in rows:
            if budget is not None and size >= budget:
                break
            if row not in touched:
                continue  # as sent already
            touched.discard(row)  # sent below: as wanted once this row is done
            want_chars, want_styles = self._want_chars[row], self._want_styles[row]
            sent_chars, sent_styles = self._sent_chars[row], self._sent_styles[row]
            if want_chars == sent_chars and want_styles == sent_styles:
                continue  # the common case, found without a loop in Python
            changed = [
                i
                for i in range(width)
                if want_chars[i] is not None
                and (want_chars[i] != sent_chars[i] or want_styles[i] != sent_styles[i])
            ]
            spans: list[list[int]] = []
            for i in changed:
                gap_known = spans and all(
                    want_chars[j] is not None for j in range(spans[-1][1] + 1, i)
                )
                if spans and gap_known and i - spans[-1][1] - 1 <= _GAP:
                    spans[-1][1] = i
                else:
                    spans.append([i, i])
            for first, last in spans:
                put(row, first, want_chars[first : last + 1], want_styles[first : last + 1])
                sent_chars[first : last + 1] = want_chars[first : last + 1]
                sent_styles[first : last + 1] = want_styles[first : last + 1]
            # Cells the app never drew stay unknown on both sides: nothing to send.
            for i in range(width):
                if want_chars[i] is None:
                    sent_chars[i], sent_styles[i] = None, None
        if sent:
            out.append("\x1b[0m")
        left = self._differ()
        if not left and self._want_caret is not None and at != self._want_caret:
            y, x = self._want_caret
            out.append(f"\x1b[{y + 1};{x + 1}H")
            at = self._want_caret
        self._caret = at
        return "".join(out)
