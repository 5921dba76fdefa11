"""A live board on Textual's Line API: only visible lines are rendered, from a keyed cache.

`Board` holds the display order of row keys and a cache of rendered rows. A change to
some rows drops just those cache entries and repaints just the screen lines showing
them; a change of order keeps the cursor on the same row and the viewport on the same
rows, so a dispatcher reading row 30 is not thrown about by a new incident at the top.

The selected row never leaves the screen unnoticed: a change of order that would push
it out scrolls just enough to keep it in view, and scrolling the board away from it
(the wheel, the scrollbar) brings the cursor along to the nearest row on screen, so a
command that acts on the selection never acts on a row the dispatcher cannot see.

Some rows are pinned (`pinned_indices`: grade 1 incidents, units in emergency): however
the board is scrolled, those that would be off screen are drawn first, under the
heading, and the rest of the rows scroll below them.

Subclasses say how a row looks (`render_row`) and what the heading is
(`render_header`); colours come from component classes whose styles use the theme's
tokens.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Region, Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

__all__ = ["PROVISIONAL_MARK", "Board"]

#: Marks a provisional row, next to its key: not colour, so it shows on any terminal.
PROVISIONAL_MARK = "~"


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
    #: Keys changed by actions taken while CAD was down and not yet on a server: their
    #: rows carry `PROVISIONAL_MARK` (set by the app with every change).
    provisional: frozenset[str] = frozenset()

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
        self._shown_anchor: str | None = None  # the first scrolled row painted last time
        self._placing = False  # True while the board itself moves the view
        self._pins: Sequence[int] | None = None  # pinned_indices, till the order changes
        self._layout_memo: tuple | None = None  # (pins, top, rows, what `_layout` said)
        self._cache: dict[str, Strip] = {}
        self._header: Strip | None = None
        self._cache_width = -1
        # Rich styles of the board and its component classes: Textual drops its own
        # copy on every refresh, and a live board refreshes lines many times a second.
        self._styles: dict[str, tuple[object, Style]] = {}
        self._base: Style | None = None
        self.cursor_key: str | None = None
        self.painted_rows = 0  # rows rendered (not served from cache), for benchmarks

    # --- what subclasses provide -------------------------------------------------------

    def render_header(self, width: int) -> Text:
        """The heading line."""
        return Text("")

    def render_row(self, key: str, width: int) -> Text:
        """One row, fitted to `width` cells (longer text is cropped)."""
        return Text(key)

    def component_style(self, name: str) -> Style:
        """The Rich style of the component class `name`, worked out once per CSS change.

        Textual replaces a component's styles object whenever it applies CSS to the
        board (a theme, the focus moving), so that object says when to look again.
        """
        styles = self._component_styles.get(name)
        kept = self._styles.get(name)
        if kept is None or kept[0] is not styles:
            kept = (styles, self.get_component_rich_style(name))
            self._styles[name] = kept
        return kept[1]

    @property
    def base_style(self) -> Style:
        """The board's own Rich style (its colours over its ancestors' backgrounds)."""
        if self._base is None:
            self._base = self.rich_style
        return self._base

    # --- the data ---------------------------------------------------------------------

    @property
    def keys(self) -> Sequence[str]:
        """Row keys in display order."""
        return self._order

    def _window(self) -> list[str]:
        """Keys of the rows on screen now, top to bottom (pinned rows first)."""
        shown, top, body = self._layout()
        return [self._order[i] for i in shown] + self._order[top : top + body]

    def _refresh_keys(self, *keys: str | None) -> None:
        """Repaint the screen lines showing these rows, wherever they are drawn."""
        self._refresh_rows([row for row, key in enumerate(self._window(), start=1) if key in keys])

    def _refresh_rows(self, rows: Iterable[int]) -> None:
        """Repaint these screen lines (1 is the first under the heading), in one refresh:
        each refresh drops Textual's cached styles and sizes for the board."""
        width = max(self.virtual_size.width, self.size.width)
        regions = [Region(0, row, width, 1) for row in rows]
        if regions:
            self.refresh(*regions)

    def set_order(self, keys: list[str]) -> None:
        """Show `keys` in this order, keeping the cursor row and the viewport steady.

        The board keeps `keys` itself rather than a copy: a subclass may keep changing
        the same list in place and call this after each change. Nothing here walks the
        whole list in Python; a live queue holds thousands of rows and reorders often.
        """
        previous_window = self._shown_window
        anchor = self._shown_anchor if int(self.scroll_offset.y) else None
        self._order = keys
        self._pins = None
        self._size_to_rows()
        self._placing = True  # the board moves the view here, not the dispatcher
        try:
            if anchor is not None and anchor in keys:  # else the top row left: stay put
                self.scroll_to(y=keys.index(anchor), animate=False, immediate=True)
            previous = self.cursor_key
            if self.cursor_key is None or self.cursor_key not in keys:
                fallback = min(self._cursor_fallback(), len(keys) - 1)
                self.cursor_key = keys[fallback] if keys else None
            if self.cursor_key != previous:
                self.post_message(self.Highlighted(self, self.cursor_key))
            # A row added above the selection must not push it off the screen.
            index = self.cursor_index
            if index is not None:
                self._scroll_cursor_into_view(index, immediate=True)
        finally:
            self._placing = False
        if self._window() != previous_window:
            self.refresh()

    def _size_to_rows(self) -> None:
        rows = max(0, self.size.height - 1)
        bottom = max(0, len(self._order) - rows)  # the scroll that shows the last row
        if len(self._order) > rows >= 2:
            # Pinned rows drawn under the heading can push the last row off the bottom:
            # room to scroll a little further, just as far as it takes (bounded).
            for _ in range(rows):
                if self._on_screen(len(self._order) - 1, bottom):
                    break
                bottom += 1
        self.virtual_size = Size(self.size.width, max(len(self._order), bottom + rows) + 1)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._placing or self.size.height < 2:
            return
        # Scrolled away from the selection (wheel, scrollbar): the cursor comes along to
        # the nearest row on screen, so the selection is always a row the eye can see.
        index = self.cursor_index
        if index is None or self._on_screen(index, int(new_value)):
            return
        _, top, body = self._layout(int(new_value))
        if body <= 0:
            return
        nearest = top if index < top else min(top + body - 1, len(self._order) - 1)
        self._placing = True
        try:
            self._move(nearest)
        finally:
            self._placing = False

    def _cursor_fallback(self) -> int:
        return 0

    def pinned_indices(self) -> Sequence[int]:
        """Display indices, ascending, of the rows that must stay on screen however the
        board is scrolled (none here; a subclass names its urgent rows)."""
        return []

    # --- what is on screen ------------------------------------------------------------

    def _layout(self, top: int | None = None) -> tuple[list[int], int, int]:
        """What the screen shows when scrolled to `top` (default: where it is now).

        Returns the display indices of the pinned rows drawn under the heading (those
        that would otherwise be off screen), the first index of the scrolled rows, and
        how many scrolled rows fit below the pinned ones.
        """
        top = int(self.scroll_offset.y) if top is None else top
        rows = max(0, self.size.height - 1)
        pins = self._pinned() if rows >= 2 else []
        if not pins:
            return [], top, rows
        # Asked for on every line drawn: kept while the pins, the scroll and size hold.
        memo = self._layout_memo
        if memo is not None and memo[0] is pins and memo[1] == top and memo[2] == rows:
            return memo[3]
        laid = self._lay_out(pins, top, rows)
        self._layout_memo = (pins, top, rows, laid)
        return laid

    @staticmethod
    def _lay_out(pins: Sequence[int], top: int, rows: int) -> tuple[list[int], int, int]:
        cap = max(1, rows // 2)  # pinned rows never take the whole board
        above = bisect.bisect_left(pins, top)  # pins are in display order: no full pass
        shown: list[int] = []
        for _ in range(cap + 1):  # settles: each pass can only pin more
            body = rows - len(shown)
            outside = list(pins[: min(above, cap)])
            if len(outside) < cap:
                below = bisect.bisect_left(pins, top + body)
                outside += pins[below : below + cap - len(outside)]
            if outside == shown:
                break
            shown = outside
        return shown, top, rows - len(shown)

    def _pinned(self) -> Sequence[int]:
        # Asked for on every line drawn: worked out once per change of order or pins.
        if self._pins is None:
            self._pins = self.pinned_indices()
        return self._pins

    def repin(self) -> None:
        """The rows to pin may have changed without a change of order: look again."""
        before, self._pins = self._pins, None
        if self._pinned() != before:
            self._size_to_rows()
            self.refresh()

    def _on_screen(self, index: int, top: int | None = None) -> bool:
        shown, first, body = self._layout(top)
        return index in shown or first <= index < first + body

    def invalidate(self, keys: Iterable[str]) -> None:
        """Re-render these rows; repaint only those on screen whose text or colours moved.

        A change to an incident often leaves its row looking the same (a note, a new
        version): comparing the freshly rendered row with what is painted keeps those
        off the wire, which matters on a thin SSH link.
        """
        on_screen = {key: row for row, key in enumerate(self._window(), start=1)}
        width = self.size.width
        rows = []
        for key in keys:
            painted = self._cache.pop(key, None)
            row = on_screen.get(key)
            if row is None:
                continue  # off screen: dropping its rendered row is all there is to do
            if painted is not None and width > 0:
                fresh = self._strip(self.render_row(key, width), width, self.base_style)
                self.painted_rows += 1
                self._cache[key] = fresh
                if fresh == painted:
                    continue
            rows.append(row)
        self._refresh_rows(rows)

    def invalidate_all(self) -> None:
        """Re-render every row (after a theme or layout change)."""
        self._cache.clear()
        self._header = None
        self._styles.clear()
        self._base = None
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
        key = self._order[index]
        if key == self.cursor_key:
            return
        old, self.cursor_key = self.cursor_key, key
        self._refresh_keys(old, key)
        self._scroll_cursor_into_view(index)
        self.post_message(self.Highlighted(self, key))

    def _scroll_cursor_into_view(self, index: int, *, immediate: bool = False) -> None:
        if self.size.height < 2 or self._on_screen(index):
            return
        top = int(self.scroll_offset.y)
        if index < top:
            target = index
        else:
            # Lowest scroll that shows it: below the pinned rows, which may grow as
            # the board scrolls on (bounded: a screenful of steps at most).
            rows = max(1, self.size.height - 1)
            target = max(0, index - rows + 1)
            for _ in range(rows):
                if self._on_screen(index, target):
                    break
                target += 1
        self.scroll_to(y=target, animate=False, immediate=immediate)

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
        window = self._window()
        if 1 <= y <= len(window):
            self._move(self._order.index(window[y - 1]))

    # --- rendering --------------------------------------------------------------------

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._cache.clear()
        self._header = None
        self._styles.clear()
        self._base = None

    def on_resize(self) -> None:
        self._size_to_rows()
        self._cache.clear()
        self._header = None
        index = self.cursor_index
        if index is not None:  # a smaller window must not hide the selection
            self._scroll_cursor_into_view(index)

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
        base = self.base_style
        if width != self._cache_width:
            self._cache.clear()
            self._header = None
            self._cache_width = width
        if y == 0:
            if self._header is None:
                header = self.render_header(width)
                header.stylize(self.component_style("board--header"))
                self._header = self._strip(header, width, base)
            return self._header
        shown, top, _ = self._layout()
        index = shown[y - 1] if y - 1 < len(shown) else top + y - 1 - len(shown)
        if index >= len(self._order):
            if index == 0:
                empty = Text(self.empty_text, style=self.component_style("board--empty"))
                return self._strip(empty, width, base)
            return Strip.blank(width, base)
        key = self._order[index]
        if y == 1:
            self._shown_window = self._window()
            self._shown_anchor = self._order[top] if top < len(self._order) else None
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
            cursor = self.component_style("board--cursor")
            return Strip(
                [
                    Segment(text, (style or base) + cursor, control)
                    for text, style, control in strip
                ],
                strip.cell_length,
            )
        return strip
