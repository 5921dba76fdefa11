"""The map view: sectors, incidents by grade and units by state, drawn in terminal cells.

The geometry and the raster are pure (`cadterm.domain.map_grid`,
`cadterm.domain.map_markers`); this widget holds the window onto the ground, turns
marker tags into the theme's styles, and repaints only the screen lines whose text or
style changed: each frame's rows are compared with the rows painted last, so two
thousand units moving redraw the lines they moved on, not the map.

The sector background is drawn again only when the window moves (pan, zoom, resize) or
the sectors are learnt afresh (a gazetteer loaded, the picture replaced).

While the map is not displayed (the boards are shown instead), a change costs only a
note of its key: markers, layout and rows follow when the map is shown again, so units
moving on a hidden map cost the console nothing it would have to draw.

Keys while the map has the focus: arrows or ``h j k l`` pan, ``+``/``-`` zoom, ``c``
centres on the selection, ``f`` fits everything, ``n``/``p`` (or Tab/Shift+Tab) step
through the markers on screen, Enter opens the selected incident. Selecting a marker
posts `MapView.Selected`; the app moves the boards' cursor to match, and calls
`select` when a board's cursor moves, so the selection follows both ways.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Region
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.map_grid import (
    Canvas,
    MapWindow,
    SectorField,
    fit_window,
    scale_words,
    sector_canvas,
)
from cadterm.domain.map_markers import (
    MapMarkers,
    MarkerLayout,
    Placement,
    Row,
    compose_rows,
    incident_key,
    legend,
    marker_name,
    unit_key,
)
from cadterm.protocol.domain import Position
from cadterm.protocol.fold import DispatchState

__all__ = ["MapView", "sector_points"]

_TAGS = (
    "boundary",
    "label",
    "grade-1",
    "grade-2",
    "grade-3",
    "grade-4",
    "grade-5",
    "unit-available",
    "unit-committed",
    "unit-unavailable",
    "unit-emergency",
    "selected",
    "selected-mark",
)


def sector_points(
    places: Gazetteer | None, state: DispatchState | None
) -> Iterable[tuple[Position, str]]:
    """Points known to lie in each sector: the gazetteer's entries, else incident locations.

    The picture carries no sector boundaries; a force's gazetteer places every street
    and landmark in its sector, which outlines the sectors well. Without one, the
    incidents' own locations are all there is.
    """
    if places is not None and len(places):
        for entry in places.entries:
            if entry.sector:
                yield entry.position, entry.sector
                if entry.end is not None:
                    yield entry.end, entry.sector
        return
    for incident in state.incidents.values() if state is not None else ():
        location = incident.location
        if location.position is not None and location.sector:
            yield location.position, location.sector


def _cells(row: Row) -> list[tuple[str, str]]:
    return [(character, tag) for text, tag in row for character in text]


def _changed_span(old: Row, new: Row, width: int) -> tuple[int, int]:
    """The first and one past the last cell that differ between two versions of a row."""
    before, after = _cells(old), _cells(new)
    if len(before) != len(after):
        return 0, width
    differ = [i for i, (a, b) in enumerate(zip(before, after, strict=True)) if a != b]
    if not differ:
        return 0, 0
    return differ[0], differ[-1] + 1


class MapView(Widget, can_focus=True):
    """The picture on a map of the ground, with a selected marker that follows the boards."""

    BINDINGS = [
        Binding("left,h", "pan(-1, 0)", "Pan west", show=False, id="map.west"),
        Binding("right,l", "pan(1, 0)", "Pan east", show=False, id="map.east"),
        Binding("up,k", "pan(0, -1)", "Pan north", show=False, id="map.north"),
        Binding("down,j", "pan(0, 1)", "Pan south", show=False, id="map.south"),
        Binding("plus,equals_sign", "zoom(1)", "Zoom in", show=False, id="map.zoom_in"),
        Binding("minus,underscore", "zoom(-1)", "Zoom out", show=False, id="map.zoom_out"),
        Binding("c", "centre", "Centre on selection", show=False, id="map.centre"),
        Binding("f", "fit", "Fit everything", show=False, id="map.fit"),
        Binding("n,tab", "step(1)", "Next marker", show=False, id="map.next"),
        Binding("p,shift+tab", "step(-1)", "Previous marker", show=False, id="map.previous"),
        Binding("enter", "choose", "Open", show=False, id="map.choose"),
    ]

    COMPONENT_CLASSES = {f"map--{tag}" for tag in _TAGS} | {"map--header", "map--legend"}

    DEFAULT_CSS = """
    MapView { height: 1fr; width: 1fr; }
    MapView > .map--header { color: $header-fg; text-style: bold; }
    MapView > .map--legend { color: $muted; }
    MapView > .map--boundary { color: $muted; }
    MapView > .map--label { color: $header-fg; text-style: italic; }
    MapView > .map--grade-1 { color: $grade-1; text-style: bold; }
    MapView > .map--grade-2 { color: $grade-2; text-style: bold; }
    MapView > .map--grade-3 { color: $grade-3; }
    MapView > .map--grade-4 { color: $grade-4; }
    MapView > .map--grade-5 { color: $grade-5; }
    MapView > .map--unit-available { color: $unit-available; }
    MapView > .map--unit-committed { color: $unit-committed; }
    MapView > .map--unit-unavailable { color: $unit-unavailable; }
    MapView > .map--unit-emergency { color: $alarm-fg; background: $alarm-bg; text-style: bold; }
    MapView > .map--selected { text-style: bold reverse; }
    MapView > .map--selected-mark { text-style: bold; }
    """

    #: Incidents and units changed by actions taken while CAD was down (counted in the
    #: header; set by the app with every change).
    provisional = 0

    class Selected(Message):
        """The operator moved the map's selection to another marker."""

        def __init__(self, map_view: MapView, key: str) -> None:
            super().__init__()
            self.map_view = map_view
            self.key = key

        @property
        def kind(self) -> str:
            """``incident`` or ``unit``."""
            return marker_name(self.key)[0]

        @property
        def name(self) -> str:
            """The incident's reference or the unit's callsign."""
            return marker_name(self.key)[1]

        @property
        def control(self) -> MapView:
            return self.map_view

    class Chosen(Message):
        """The operator pressed Enter on the selected marker."""

        def __init__(self, map_view: MapView, key: str) -> None:
            super().__init__()
            self.map_view = map_view
            self.key = key

        @property
        def control(self) -> MapView:
            return self.map_view

    def __init__(
        self, state: DispatchState, *, unicode: bool = True, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.state = state
        self.unicode = unicode
        self.markers = MapMarkers()
        self.field = SectorField(())
        self.window: MapWindow | None = None
        self.selected: str | None = None
        self.placement = Placement()
        self._layout: MarkerLayout | None = None  # the markers' cells on `window`
        self._places: Gazetteer | None = None
        self._canvas: Canvas | None = None
        self._rows: list[Row] = []
        self._strips: dict[int, Strip] = {}
        self._styles: dict[str, Style] = {}
        self._stale = True  # rows to compose before the next paint
        self._painted_header = ""
        self.painted_lines = 0  # screen lines repainted so far, for tests and benchmarks
        self.repaints = 0  # times the rows were composed, for tests and benchmarks
        self.followed = 0  # changes folded into the markers, for tests and benchmarks
        # Changed while the map was not displayed: folded in when it is shown again.
        self._owed_incidents: set[str] = set()
        self._owed_units: set[str] = set()

    # --- the picture --------------------------------------------------------------------

    def reload(self, state: DispatchState) -> None:
        """Follow a new picture: every marker, and (without a gazetteer) the sectors."""
        self.state = state
        self._owed_incidents.clear()
        self._owed_units.clear()
        self.markers.reload(state)
        self._layout = None
        if not self._places:  # a gazetteer's sectors do not change with the picture
            self.field = SectorField(sector_points(None, state))
            self._canvas = None
        self._changed()

    def set_places(self, places: Gazetteer | None, field: SectorField | None = None) -> None:
        """Outline the sectors from a force's gazetteer (just loaded).

        `field` is the gazetteer's `SectorField` if it was built already: for a force's
        tens of thousands of entries that takes a moment, better spent off the UI loop.
        """
        self._places = places
        self.field = field if field is not None else SectorField(sector_points(places, self.state))
        self._canvas = None
        self._changed()

    def apply_changes(self, incidents: Iterable[str], units: Iterable[str]) -> None:
        """Follow changed incidents and units; repaint the lines that now look different.

        Most fixes move a unit within its cell: where every changed marker still falls
        in the same cell with the same look, the map is as it was, and nothing is done.
        While the map is not displayed, the changes are only noted (`shown`).
        """
        if not self.shown:
            self._owed_incidents.update(incidents)
            self._owed_units.update(units)
            return
        self._catch_up()
        incidents, units = list(incidents), list(units)
        keys = [incident_key(r) for r in incidents] + [unit_key(c) for c in units]
        before = {key: self.markers.by_key.get(key) for key in keys}
        changed = self.markers.update(self.state, incidents, units)
        self.followed += len(keys)
        if not changed:
            return
        layout = self._layout
        if layout is None or layout.window != self.window or self._stale:
            self._layout = None
            self._changed()
        elif layout.follow(before, changed):
            self._changed()

    @property
    def shown(self) -> bool:
        """Whether the map is displayed: it and every container above it."""
        node: Widget | None = self
        while node is not None:
            if not node.display:
                return False
            parent = node.parent
            node = parent if isinstance(parent, Widget) else None
        return True

    def _catch_up(self) -> None:
        """Fold in what changed while the map was not displayed (markers only: the
        layout and rows are worked out afresh at the next paint)."""
        if not (self._owed_incidents or self._owed_units):
            return
        incidents, self._owed_incidents = self._owed_incidents, set()
        units, self._owed_units = self._owed_units, set()
        self.followed += len(incidents) + len(units)
        if self.markers.update(self.state, incidents, units):
            self._layout = None
            self._stale = True

    def _changed(self) -> None:
        self._stale = True
        if self.display and self.size.height > 0:
            self.repaint()

    # --- the window and the selection -----------------------------------------------------

    def _map_size(self) -> tuple[int, int]:
        return self.size.width, max(0, self.size.height - 2)  # a heading and a legend

    def _ensure_window(self) -> MapWindow | None:
        columns, rows = self._map_size()
        if self.window is None:
            positions = [p for p, _ in sector_points(self._places, self.state)]
            positions += [m.position for m in self.markers]
            self.window = fit_window(positions, columns, rows)
        elif (self.window.columns, self.window.rows) != (columns, rows):
            self.window = self.window.sized(columns, rows)
            self._canvas = None
        return self.window

    def _move_window(self, window: MapWindow) -> None:
        self.window = window
        self._canvas = None
        self._changed()

    def select(self, key: str | None) -> None:
        """Show `key` (``incident:REF`` or ``unit:CALLSIGN``) as the selection.

        A selection off the map brings the map to it. Nothing is posted: this is how a
        board's cursor reaches the map.
        """
        if key == self.selected:
            return
        self.selected = key
        self._catch_up()  # the marker where it is now, not where it was when hidden
        marker = self.markers.by_key.get(key) if key else None
        window = self.window
        if marker is not None and window is not None and window.cell(marker.position) is None:
            self.window = window.centred(marker.position)
            self._canvas = None
        self._changed()

    def action_pan(self, east: int, south: int) -> None:
        """Move the map a quarter of its width or height."""
        window = self._ensure_window()
        if window is not None:
            step_x, step_y = max(1, window.columns // 4), max(1, window.rows // 4)
            self._move_window(window.panned(east * step_x, south * step_y))

    def action_zoom(self, steps: int) -> None:
        """Zoom in (`steps` > 0) or out about the map's centre."""
        window = self._ensure_window()
        if window is not None and window.zoomed(steps) != window:
            self._move_window(window.zoomed(steps))

    def action_centre(self) -> None:
        """Centre the map on the selected marker."""
        marker = self.markers.by_key.get(self.selected) if self.selected else None
        window = self._ensure_window()
        if marker is not None and window is not None:
            self._move_window(window.centred(marker.position))

    def action_fit(self) -> None:
        """Show every sector, incident and unit at the closest zoom that holds them."""
        self.window = None
        self._canvas = None
        self._changed()

    def action_step(self, step: int) -> None:
        """Select the next (or previous) marker on screen, in reading order."""
        keys = self.placement.keys_in_reading_order()
        if not keys:
            return
        if self.selected in keys:
            key = keys[(keys.index(self.selected) + step) % len(keys)]
        else:
            key = keys[0] if step > 0 else keys[-1]
        self.select(key)
        self.post_message(self.Selected(self, key))

    def action_choose(self) -> None:
        """Open the selected marker (an incident's detail)."""
        if self.selected is not None:
            self.post_message(self.Chosen(self, self.selected))

    # --- painting -------------------------------------------------------------------------

    def repaint(self) -> None:
        """Compose the map afresh and refresh only the screen lines that changed."""
        self._catch_up()
        self.repaints += 1
        window = self._ensure_window()
        width, height = self.size.width, self.size.height
        if window is None:
            rows: list[Row] = []
            self.placement = Placement()
        else:
            if self._canvas is None:
                self._canvas = sector_canvas(window, self.field, unicode=self.unicode)
            if self._layout is None or self._layout.window != window:
                self._layout = MarkerLayout(window, self.markers)
            self.placement = self._layout.place(self.selected)
            rows = compose_rows(self._canvas, self.placement, window.columns, window.rows)
        self._stale = False
        previous = self._rows
        self._rows = rows
        for y in range(max(len(rows), len(previous))):
            if y >= len(rows) or y >= len(previous) or rows[y] != previous[y]:
                self._strips.pop(y + 1, None)
                # Only the cells that differ: Textual sends the refreshed region alone,
                # so a unit stepping one cell costs a few bytes, not the whole line.
                start, end = (
                    _changed_span(previous[y], rows[y], width)
                    if y < len(rows) and y < len(previous)
                    else (0, width)
                )
                self.refresh(Region(start, y + 1, end - start, 1))
                self.painted_lines += 1
        self._refresh_header()
        if height > 1 and (height - 1) not in self._strips:
            self.refresh(Region(0, height - 1, width, 1))

    def _header_text(self) -> str:
        window = self.window
        if window is None:
            return "MAP  no positions to show yet"
        placement = self.placement
        words = [f"MAP  {scale_words(window)}"]
        if placement.crowded:
            words.append(f"{placement.crowded} crowded")
        if placement.off_map:
            words.append(f"{placement.off_map} off map")
        if self.provisional:
            # A marker is one character: which ones are provisional, the boards mark.
            words.append(f"{self.provisional} provisional (~ on the boards)")
        selected = marker_name(self.selected)[1] if self.selected else "none"
        words.append(f"selected {selected}")
        # Where the keys go, said in words: the map's keys are letters the command line
        # would otherwise take.
        words.append("Esc: command line" if self.has_focus else "F6: map keys")
        return "  ".join(words)

    def on_focus(self) -> None:
        self._refresh_header()

    def on_blur(self) -> None:
        self._refresh_header()

    def _refresh_header(self) -> None:
        header = self._header_text()
        if header != self._painted_header:
            self._painted_header = header
            self._strips.pop(0, None)
            self.refresh(Region(0, 0, self.size.width, 1))

    def _style(self, tag: str) -> Style:
        style = self._styles.get(tag)
        if style is None:
            style = self.get_component_rich_style(f"map--{tag}") if tag else Style()
            self._styles[tag] = style
        return style

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._styles.clear()
        self._strips.clear()

    def on_resize(self) -> None:
        self._strips.clear()
        self._stale = True
        self.refresh()

    def on_show(self) -> None:
        self._strips.clear()
        self._stale = True

    def _line(self, text: str, tag: str, width: int) -> Strip:
        base = self.rich_style
        return Strip([Segment(text[:width], base + self._style(tag))]).crop_extend(0, width, base)

    def render_line(self, y: int) -> Strip:
        if self._stale:
            self.repaint()
        width, height = self.size.width, self.size.height
        strip = self._strips.get(y)
        if strip is not None:
            return strip
        if y == 0:
            strip = self._line(self._header_text(), "header", width)
        elif y == height - 1:
            strip = self._line(legend(width), "legend", width)
        elif y - 1 < len(self._rows):
            base = self.rich_style
            segments = [Segment(text, base + self._style(tag)) for text, tag in self._rows[y - 1]]
            strip = Strip(segments).crop_extend(0, width, base)
        else:
            strip = Strip.blank(width, self.rich_style)
        self._strips[y] = strip
        return strip
