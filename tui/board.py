"""A live board on Textual's Line API: only visible lines are rendered, from a keyed cache.

`Board` holds the display order of row keys and a cache of rendered rows. A change to
some rows drops just those cache entries and repaints just the screen lines showing
them; a change of order keeps the cursor on the same row and the viewport on the same
rows, so a dispatcher reading row 30 is not thrown about by a new incident at the top.
Subclasses say how a row looks (`render_row`) and what the heading is
(`render_header`); colours come from component classes whose styles use the theme's
tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["Board"]


class Board(ScrollView, can_focus=True):
    """A keyed, virtual list with a pinned heading line and a row cursor."""

    BINDINGS = [
        Binding("up", "cursor_up", "Up", show=False, id="board.up"),
        Binding("down", "cursor_down", "Down", show=False, id="board.down"),
        Binding("pageup", "page_up", "Page up", show=False, id="board.page_up"),
        Binding("pagedown", "page_down", "Page down", show=False, id="board.page_down"),
        Binding("home", "first", "First", show=False, id="board.first"),
        Binding("end", "last", "Last", show=False, id="board.last"),
        Binding("enter", "choose", "Open", show=False, id="board.choose"),
    ]

    COMPONENT_CLASSES = {"board--header", "board--cursor", "board--empty"}

    DEFAULT_CSS = """
    Board {
        height: 1fr;
        scrollbar-size-vertical: 1;
        overflow-x: hidden;
    }
    Board > .board--header { color: $header-fg; text-style: bold underline; }
    Board > .board--cursor { background: $cursor-bg; color: $cursor-fg; }
    Board:focus > .board--cursor { text-style: bold; }
    /* Without colour the cursor's shades are gone: reverse video marks the row. */
    Board:nocolor > .board--cursor { text-style: reverse; }
    Board:nocolor:focus > .board--cursor { text-style: bold reverse; }
    Board > .board--empty { color: $muted; }
    """

    class Highlighted(Message):
        """The cursor moved to another row (or the board emptied: `key` is None)."""

        def __init__(self, board: Board, key: str | None) -> None:
            super().__init__()
            self.board = board
            self.key = key

        @property
        def control(self) -> Board:
            return self.board

    class Chosen(Message):
        """The operator pressed Enter on a row."""

        def __init__(self, board: Board, key: str) -> None:
            super().__init__()
            self.board = board
            self.key = key

        @property
        def control(self) -> Board:
            return self.board

    #: What the board says with no rows, and what it calls a row a filter may hide.
    empty_words = "nothing to show"
    row_words = "row"
    filter_text = ""
    _hidden: set[str] | frozenset[str] = frozenset()  # keys the filter hides (per board)

    @property
    def hidden_count(self) -> int:
        """Rows the active filter hides."""
        return len(self._hidden)

    @property
    def empty_text(self) -> str:
        """What an empty board says: under a filter, that it is filtered and how much."""
        if self.filter_text:
            return f"no {self.row_words} matches /{self.filter_text} ({self.hidden_count} hidden)"
        return self.empty_words

    def __init__(self, *, name: str | None = None, id: str | None = None) -> None:
        super().__init__(name=name, id=id)
        self._order: list[str] = []
        self._shown_window: list[str] = []  # keys painted on screen last time
        self._cache: dict[str, Strip] = {}
        self._header: Strip | None = None
        self._cache_width = -1
        self.cursor_key: str | None = None
        self.painted_rows = 0  # rows rendered (not served from cache), for benchmarks

    # --- what subclasses provide -------------------------------------------------------

    def render_header(self, width: int) -> Text:
        """The heading line."""
        return Text("")

    def render_row(self, key: str, width: int) -> Text:
        """One row, fitted to `width` cells (longer text is cropped)."""
        return Text(key)

    # --- the data ---------------------------------------------------------------------

    @property
    def keys(self) -> Sequence[str]:
        """Row keys in display order."""
        return self._order

    def _window(self) -> list[str]:
        """Keys of the rows on screen now."""
        top = int(self.scroll_offset.y)
        return self._order[top : top + max(0, self.size.height - 1)]

    def set_order(self, keys: list[str]) -> None:
        """Show `keys` in this order, keeping the cursor row and the viewport steady.

        The board keeps `keys` itself rather than a copy: a subclass may keep changing
        the same list in place and call this after each change. Nothing here walks the
        whole list in Python; a live queue holds thousands of rows and reorders often.
        """
        previous_window = self._shown_window
        anchor = previous_window[0] if previous_window and int(self.scroll_offset.y) else None
        self._order = keys
        self.virtual_size = Size(self.size.width, len(keys) + 1)
        if anchor is not None and anchor in keys:  # else the top row left: stay put
            self.scroll_to(y=keys.index(anchor), animate=False, immediate=True)
        previous = self.cursor_key
        if self.cursor_key is None or self.cursor_key not in keys:
            self.cursor_key = keys[min(self._cursor_fallback(), len(keys) - 1)] if keys else None
        if self.cursor_key != previous:
            self.post_message(self.Highlighted(self, self.cursor_key))
        if self._window() != previous_window:
            self.refresh()

    def _cursor_fallback(self) -> int:
        return 0

    def invalidate(self, keys: Iterable[str]) -> None:
        """Re-render these rows; repaint only those on screen whose text or colours moved.

        A change to an incident often leaves its row looking the same (a note, a new
        version): comparing the freshly rendered row with what is painted keeps those
        off the wire, which matters on a thin SSH link.
        """
        on_screen = {key: row for row, key in enumerate(self._window(), start=1)}
        top = int(self.scroll_offset.y)
        width = self.size.width
        for key in keys:
            painted = self._cache.pop(key, None)
            row = on_screen.get(key)
            if row is None:
                continue
            if painted is not None and width > 0:
                fresh = self._strip(self.render_row(key, width), width, self.rich_style)
                self.painted_rows += 1
                self._cache[key] = fresh
                if fresh == painted:
                    continue
            self.refresh_line(top + row)

    def invalidate_all(self) -> None:
        """Re-render every row (after a theme or layout change)."""
        self._cache.clear()
        self._header = None
        self.refresh()

    # --- the cursor -------------------------------------------------------------------

    @property
    def cursor_index(self) -> int | None:
        """Display index of the cursor row."""
        if self.cursor_key is None:
            return None
        try:
            return self._order.index(self.cursor_key)
        except ValueError:
            return None

    def move_cursor_to(self, key: str) -> bool:
        """Put the cursor on `key` (if shown) and scroll it into view."""
        try:
            index = self._order.index(key)
        except ValueError:
            return False
        self._move(index)
        return True

    def _move(self, index: int) -> None:
        if not self._order:
            return
        index = max(0, min(index, len(self._order) - 1))
        old = self.cursor_index
        key = self._order[index]
        if key == self.cursor_key:
            return
        self.cursor_key = key
        if old is not None:
            self.refresh_line(old + 1)
        self.refresh_line(index + 1)
        self._scroll_cursor_into_view(index)
        self.post_message(self.Highlighted(self, key))

    def _scroll_cursor_into_view(self, index: int) -> None:
        top = int(self.scroll_offset.y)
        rows = max(1, self.size.height - 1)
        if index < top:
            self.scroll_to(y=index, animate=False)
        elif index >= top + rows:
            self.scroll_to(y=index - rows + 1, animate=False)

    def action_cursor_up(self) -> None:
        """Move the cursor up one row."""
        self._move((self.cursor_index or 0) - 1)

    def action_cursor_down(self) -> None:
        """Move the cursor down one row."""
        index = self.cursor_index
        self._move(0 if index is None else index + 1)

    def action_page_up(self) -> None:
        """Move the cursor up one screen."""
        self._move((self.cursor_index or 0) - max(1, self.size.height - 2))

    def action_page_down(self) -> None:
        """Move the cursor down one screen."""
        self._move((self.cursor_index or 0) + max(1, self.size.height - 2))

    def action_first(self) -> None:
        """Move the cursor to the first row."""
        self._move(0)

    def action_last(self) -> None:
        """Move the cursor to the last row."""
        self._move(len(self._order) - 1)

    def action_choose(self) -> None:
        """Open the row under the cursor."""
        if self.cursor_key is not None:
            self.post_message(self.Chosen(self, self.cursor_key))

    def on_click(self, event) -> None:
        """Mouse works but is never needed: a click moves the cursor."""
        y = event.y
        if y >= 1:
            self._move(int(self.scroll_offset.y) + y - 1)

    # --- rendering --------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._header = None

    def on_resize(self) -> None:
        self.virtual_size = Size(self.size.width, len(self._order) + 1)
        self._cache.clear()
        self._header = None

    def _strip(self, text: Text, width: int, base: Style) -> Strip:
        text.truncate(width, overflow="crop", pad=True)
        segments = [
            Segment(segment.text, base + segment.style if segment.style else base)
            for segment in text.render(self.app.console)
            if segment.text and segment.text != "\n"
        ]
        return Strip(segments, width).crop_extend(0, width, base)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if width != self._cache_width:
            self._cache.clear()
            self._header = None
            self._cache_width = width
        if y == 0:
            if self._header is None:
                header = self.render_header(width)
                header.stylize(self.get_component_rich_style("board--header"))
                self._header = self._strip(header, width, base)
            return self._header
        index = int(self.scroll_offset.y) + y - 1
        if index >= len(self._order):
            if index == 0:
                empty = Text(self.empty_text, style=self.get_component_rich_style("board--empty"))
                return self._strip(empty, width, base)
            return Strip.blank(width, base)
        key = self._order[index]
        if y == 1:
            self._shown_window = self._window()
        strip = self._cache.get(key)
        if strip is None:
            if len(self._cache) > 4 * max(self.size.height, 25):
                self._cache.clear()  # rows that scrolled away; cheap to render again
            strip = self._strip(self.render_row(key, width), width, base)
            self._cache[key] = strip
            self.painted_rows += 1
        if key == self.cursor_key:
            # Over the row's own colours (grade, state), not under them, so the
            # selected row stands out in every theme.
            cursor = self.get_component_rich_style("board--cursor")
            return Strip(
                [
                    Segment(text, (style or base) + cursor, control)
                    for text, style, control in strip
                ],
                strip.cell_length,
            )
        return strip
