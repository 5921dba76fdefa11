"""The dispatcher console: incident queue, unit board, command line, status.

The app never awaits the network on the UI path: the client runs its own tasks, and
commands go out in workers whose outcomes come back to the command line. Live changes
are drained at most once per frame and applied to the boards in one batch.

The app is the screen: the boards, the detail pane, the status line. What a command
line does is decided by the `CommandController` it holds, which asks of the app only
what `ConsoleViews` lists; what is pending is read from the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult, ScreenStackError
from textual.binding import Binding
from textual.containers import Container
from textual.css.query import NoMatches
from textual.filter import Monochrome, NoColor
from textual.worker import Worker, WorkerState

from cadterm.client import DispatchClient
from cadterm.client.errors import BackendUnavailable, CommandError
from cadterm.client.queries import HistoryQueries
from cadterm.domain.duplicates import DuplicatePolicy
from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.gazetteer_csv import GazetteerFileError, read_gazetteer_csv
from cadterm.domain.grading import GradingRules, GradingRulesError, default_rules
from cadterm.domain.map_grid import SectorField
from cadterm.domain.map_markers import incident_key, marker_name, unit_key
from cadterm.domain.timers import TimerPolicy, officer_safety_due
from cadterm.protocol.codes import INCIDENT_TYPES
from cadterm.protocol.domain import IncidentStatus, LinkRelation, Role
from cadterm.protocol.drafts import draft
from cadterm.themes import THEMES

from . import grammar
from .alerts import AlarmTracker
from .board import Board
from .call_draft import CallAnswers
from .call_form import CallForm, CallFormContext
from .command_actions import CommandController, lines_text
from .command_line import CommandInput, CommandLine
from .detail import DetailPane, incident_text
from .duplicate_offers import incident_offers, offer_line
from .grammar.places import placed
from .incident_queue import IncidentQueue
from .map_view import MapView, sector_points
from .output_pace import OutputPace
from .settings import ConsoleSettings
from .status import AlarmBanner, StaleBanner, StatusBar
from .supervisor_board import SupervisorBoard
from .theming import textual_themes
from .triage_queue import TriageQueue
from .unit_board import Grouping, UnitBoard

__all__ = ["CadApp"]

log = logging.getLogger("cadterm.console")

#: Seconds within which a second quit leaves a console that still holds unsent commands.
QUIT_CONFIRM_SECONDS = 5.0

#: The least pause between two drains (seconds): keys and the link get the loop between
#: batches even when a batch takes longer than a frame to apply.
GAP = 0.002
#: Board frames that may follow each other at once after a quiet spell, on a link that
#: keeps up (the frames a second stay within the interval's budget).
BURST = 3


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _grading_rules(path: Path | None) -> tuple[GradingRules, str]:
    """The force's grading rules from `path`, or the shipped ones; and what went wrong."""
    if path is None:
        return default_rules(), ""
    try:
        return GradingRules.from_toml(path.read_text(encoding="utf-8"), path.name), ""
    except (OSError, UnicodeDecodeError, GradingRulesError) as exc:
        log.error("grading rules not loaded: %s", exc)
        first = str(exc).splitlines()[0]
        return default_rules(), f"grading rules not loaded (the shipped ones are used): {first}"


class CadApp(App[None]):
    """The console. Give it a `DispatchClient`; it starts it if it is not running."""

    TITLE = "cadterm"
    ENABLE_COMMAND_PALETTE = False

    CSS = """
    Screen { layout: vertical; }
    #boards { height: 1fr; layout: horizontal; }
    #boards > IncidentQueue { width: 3fr; }
    #boards > UnitBoard { width: 47; border-left: vkey $panel; }
    Screen.-narrow #boards { layout: vertical; }
    Screen.-narrow #boards > IncidentQueue { width: 1fr; height: 3fr; }
    Screen.-narrow #boards > UnitBoard { width: 1fr; height: 2fr; border-left: none;
        border-top: hkey $panel; }
    Screen.-narrow #boards > DetailPane { width: 1fr; height: 3fr; border-left: none;
        border-top: hkey $panel; }
    #boards > DetailPane { width: 60; }
    #boards > MapView { display: none; }
    Screen.-map #boards > MapView { display: block; }
    Screen.-map #boards > UnitBoard, Screen.-map #boards > IncidentQueue { display: none; }
    Screen.-map.-wide #boards > IncidentQueue { display: block; width: 1fr; }
    Screen.-detail #boards > UnitBoard { display: none; }
    Screen.-wide.-detail #boards > UnitBoard { display: block; }
    #supervisor { display: none; height: 1fr; }
    Screen.-supervisor #supervisor { display: block; }
    Screen.-supervisor #boards { display: none; }
    #triage { display: none; height: 1fr; }
    Screen.-triage #triage { display: block; }
    Screen.-triage #boards, Screen.-triage #supervisor { display: none; }
    """

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", id="app.quit"),
        Binding("f1", "help", "Help", id="app.help"),
        Binding("f2", "focus_queue", "Incidents", id="app.focus_queue"),
        Binding("f3", "focus_units", "Units", id="app.focus_units"),
        Binding("f4", "toggle_detail", "Detail", id="app.detail"),
        Binding("f5", "toggle_grouping", "Group units", id="app.group"),
        Binding("f6", "toggle_map", "Map", id="app.map"),
        Binding("f7", "journal", "Journal", id="app.journal"),
        Binding("f8", "acknowledge", "Acknowledge", id="app.acknowledge"),
        Binding("ctrl+r", "reconnect", "Reconnect", id="app.reconnect"),
        Binding("f9", "next_theme", "Theme", id="app.theme"),
        Binding("f10", "call_form", "Call", id="app.call"),
        Binding("ctrl+l", "link_duplicate", "Link duplicate", show=False, id="app.duplicate"),
        Binding("f11", "supervisor_board", "Supervisor", id="app.supervisor"),
        Binding("ctrl+o", "triage", "Triage", id="app.triage"),
        Binding("f12", "write_pack", "CAD-down pack", show=False, id="app.pack"),
        Binding("ctrl+n", "find_step(1)", "Next match", show=False, id="app.find_next"),
        Binding("ctrl+p", "find_step(-1)", "Previous match", show=False, id="app.find_previous"),
        Binding("pageup", "queue_up", "Previous incident", show=False, id="app.queue_up"),
        Binding("pagedown", "queue_down", "Next incident", show=False, id="app.queue_down"),
        Binding("escape", "focus_command", "Command line", show=False, id="app.command"),
        # The side pane scrolls from the keyboard while the command line keeps the focus.
        Binding("shift+up", "detail_scroll(-1)", show=False, id="app.detail_up"),
        Binding("shift+down", "detail_scroll(1)", show=False, id="app.detail_down"),
        Binding("shift+pageup", "detail_page(-1)", show=False, id="app.detail_page_up"),
        Binding("shift+pagedown", "detail_page(1)", show=False, id="app.detail_page_down"),
    ]

    def __init__(
        self,
        client: DispatchClient,
        settings: ConsoleSettings,
        *,
        operator: str = "",
        clock: Callable[[], datetime] = _utc_now,
        connect: bool = True,
    ) -> None:
        super().__init__()
        if self.no_color:
            # NO_COLOR means no colour: Textual's default for it (Monochrome) still sends
            # shades of grey; NoColor sends the terminal's own colours, bold and reverse.
            self._filters = [NoColor() if isinstance(f, Monochrome) else f for f in self._filters]
        self.client = client
        self.settings = settings
        self.connect = connect  # False shows the client's picture as it is (snapshot tests)
        self.operator = operator or settings.workstation
        self.role: Role | None = None  # the token's role, once a backend has said it
        self.clock = clock
        self._safety_cap = timedelta(minutes=settings.officer_safety_minutes)
        self.policy = TimerPolicy(
            warn_fraction=settings.warn_fraction, officer_safety_after=self._safety_cap
        ).safety_within(self._safety_cap)
        self.alarms = AlarmTracker()
        # Closed incidents and units' shifts are asked of the same backends as the stream.
        history = HistoryQueries(settings.url, settings.token) if settings.url else None
        self.controller = CommandController(client, self, self.alarms, clock, history)
        self._select_after: dict[int, str] = {}  # select an incident we opened once applied
        self._last_event_at: datetime | None = None
        self._safety_due = 0
        self._rang_at: datetime | None = None
        self.places: Gazetteer | None = None  # the force's gazetteer, once loaded
        self._quit_asked_at: datetime | None = None
        self.ticks = 0  # once-a-second passes so far (tests wait on it, never on time)
        self._detail_mode = "incident"
        self.output_pace = OutputPace()  # the terminal's driver times it (run_on_terminal)
        # The call in hand on the call form: kept when the form is closed with Escape.
        self.call_answers = CallAnswers()
        self.grading, self._grading_trouble = _grading_rules(settings.grading)
        self.duplicate_policy = DuplicatePolicy(
            metres=settings.duplicate_metres, window=timedelta(minutes=settings.duplicate_minutes)
        )
        self._known_incidents: set[str] = set()  # to tell a new incident from a changed one
        self._offered: tuple[str, str, str] | None = None  # new, offered, the line saying so
        self._alarms_shown: tuple = ()  # `_alarm_facts` when the banner was last drawn
        self.frames_painted = 0  # frames the drain painted itself (tests and benchmarks)
        for theme in textual_themes():
            self.register_theme(theme)
        self.theme = settings.theme

    def get_theme_variable_defaults(self) -> dict[str, str]:
        """Every semantic token, from the default theme, for themes that lack some."""
        return dict(THEMES[next(iter(THEMES))]["variables"])

    # --- layout ------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        state = self.client.state
        yield StaleBanner(id="stale")
        yield AlarmBanner(id="alarms")
        with Container(id="boards"):
            yield IncidentQueue(state, self.clock, self.policy, id="queue")
            yield UnitBoard(
                state, self.clock, self.policy, self.settings.group_units_by, id="units"
            )
            yield MapView(state, unicode=self.settings.unicode is not False, id="map")
            yield DetailPane(id="detail")
        yield SupervisorBoard(
            lambda: self.client.state,
            self.clock,
            self.policy,
            self.settings.sector_minimum,
            unicode=self.settings.unicode is not False,
            hours=self.settings.demand_hours,
            id="supervisor",
        )
        yield TriageQueue(lambda: self.client.state, self.clock, id="triage")
        yield CommandLine(self.controller.parse_context, id="command")
        yield StatusBar(clock=self.settings.clock, id="status")

    @property
    def queue(self) -> IncidentQueue:
        return self.query_one(IncidentQueue)

    @property
    def units(self) -> UnitBoard:
        return self.query_one(UnitBoard)

    @property
    def command_line(self) -> CommandLine:
        return self.query_one(CommandLine)

    @property
    def detail(self) -> DetailPane:
        return self.query_one(DetailPane)

    @property
    def map(self) -> MapView:
        return self.query_one(MapView)

    @work(thread=True, group="places", exit_on_error=False)
    def _load_places(self, path: Path) -> None:
        """Read the gazetteer off the UI loop: a force's file takes seconds to index."""
        try:
            with path.open(encoding="utf-8-sig", newline="") as lines:
                places = read_gazetteer_csv(lines, source=path.name)
        except (OSError, UnicodeDecodeError, GazetteerFileError) as exc:
            log.error("gazetteer not loaded: %s", exc)
            message = f"gazetteer not loaded (locations stay as typed): {exc}".splitlines()[0]
            self.call_from_thread(self.command_line.feedback, message, error=True)
            return
        self.places = places
        # The map's sector areas, built here too: for a force's file that takes a moment.
        sectors = SectorField(sector_points(places, None)) if len(places) else None
        self.call_from_thread(self.map.set_places, places, sectors)
        log.info("gazetteer %s loaded", path)

    def on_mount(self) -> None:
        if self.settings.keymap:
            self.set_keymap(self.settings.keymap)
        if self.connect:
            self.client.start()
        self._reload()
        if self.settings.gazetteer is not None:
            self._load_places(self.settings.gazetteer)
        if self._grading_trouble:
            self.command_line.feedback(self._grading_trouble, error=True)
        command_input = self.query_one(CommandInput)
        # Each blink redraws the input row: over a thin link that is most of the bytes
        # an idle console sends, so the app shell turns it off for SSH sessions.
        command_input.cursor_blink = self.settings.cursor_blink is not False
        command_input.focus()
        self.set_interval(1.0, self._tick)
        # The banner and the status line say at once when the link changes, not at the
        # next once-a-second tick: "not live" must never outlive the outage, or hide one.
        self.client.add_status_listener(lambda _status: self.call_later(self.refresh_status))
        self._follow_changes()
        if self.connect:
            self._learn_operator()
            self._learn_safety_cadence()
        self._tick()

    async def on_unmount(self) -> None:
        await self.controller.close()

    @work(group="safety", exit_on_error=False)
    async def _learn_safety_cadence(self) -> None:
        """Time safety checks by the server's cadence, once a backend answers."""
        policy = await self.controller.learn_safety_cadence(self.policy, self._safety_cap)
        if policy is not None:
            self.policy = self.queue.policy = self.units.policy = policy

    @work(group="whoami", exit_on_error=False)
    async def _learn_operator(self) -> None:
        """Show who is logged in (the token's operator), once a backend answers."""
        for _ in range(30):
            try:
                operator = await self.client.sender.whoami()
            except CommandError as error:
                self.command_line.feedback(f"login refused: {error.detail}", error=True)
                return
            except BackendUnavailable:
                await asyncio.sleep(2.0)
                continue
            self.operator = f"{operator.id} ({operator.role.value})"
            self.client.operator = operator
            self.role = operator.role
            self.refresh_status()
            return

    def on_resize(self, event: events.Resize) -> None:
        # The event's size, not `self.size`: that is still the old one while the event
        # is handled, so the layout would follow the size before last.
        self.screen.set_class(event.size.width < 120, "-narrow")
        self.screen.set_class(event.size.width >= 160, "-wide")

    # --- live changes ------------------------------------------------------------------

    def _reload(self) -> None:
        """Point every board at the client's current picture."""
        state = self.client.state
        self._mark_provisional()
        self._known_incidents = set(state.incidents)
        self.queue.reload(state)
        self.units.reload(state)
        self.map.reload(state)
        self.alarms.prime(state)
        self.client.take_changes()
        self.refresh_alarms()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        """The one place a failed worker is dealt with: say so, keep the console up.

        The console is the fallback when everything else has failed, so a fault in one
        piece of background work (a full disk under the journal, a bug in a formatter)
        is reported on screen and in the log, never allowed to close it.
        """
        if event.state != WorkerState.ERROR:
            return
        error = event.worker.error
        if isinstance(error, NoMatches):
            return  # the screen went away under it: the console is quitting
        log.error("%s failed", event.worker.name, exc_info=error)
        detail = f"{type(error).__name__}: {error}" if error is not None else "no detail"
        try:
            self.command_line.feedback(
                f"internal error in {event.worker.name} (the console carries on): {detail}",
                error=True,
            )
        except NoMatches:
            return  # quitting: there is nothing left to say it on, or to restart for
        self.ring()
        if event.worker.group == "live":
            # Without this worker the boards would stop following the picture.
            self._follow_changes()

    @work(group="live", exclusive=True, exit_on_error=False)
    async def _follow_changes(self) -> None:
        """Drain the client's change feed: each batch applied and painted at once, at
        most `1 / OutputPace.interval` board frames a second.

        While the link keeps up, that budget is spent as changes come: after a quiet
        spell up to `BURST` frames may follow each other at once, so a change that comes
        just after another is not held a whole frame; over a run of changes the frames
        are a board frame apart. While the link is behind, each frame waits the whole
        interval after the last (fewer, fuller frames; key echo is never held).
        """
        framed = -OutputPace.SLOWEST  # when the last batch that changed the screen began
        due = framed  # when the frame budget is next spent (GCRA's theoretical time)
        async for changes in self.client.watch():
            pace = self.output_pace  # read each time: a terminal's driver may replace it
            started = time.monotonic()
            self.apply_changes(
                changes.incidents, changes.units, replaced=changes.replaced, reports=changes.reports
            )
            if self.paint_now():
                framed = started
                due = max(due, started) + pace.FASTEST
            # A batch that changed nothing on screen does not hold back the next one.
            since = framed if pace.behind else due - BURST * pace.FASTEST
            await pace.pause(GAP, since=since)

    def paint_now(self) -> bool:
        """Put what was just refreshed on the terminal now; False: nothing on screen changed.

        Textual paints a refreshed widget in three hops: the widget tells its screen on
        its next idle, the screen resumes its update timer, the timer fires on its next
        tick (every 1/60 s). A change could wait two frames for its paint. The drain is
        already paced to the link, so it hands the refreshed widgets to the screen and
        lets the screen update at once, as the timer would. Whatever needs a new layout
        or scroll is left to Textual's own cycle, which paints it within a frame.
        """
        try:
            screen = self.screen
        except ScreenStackError:
            return False  # quitting: nothing left to paint on
        refreshed = []
        later = self._batch_count or not screen.is_current or screen._compositor is None
        later = later or screen._layout_required or screen._scroll_required
        for widget in screen._compositor.visible_widgets if not later else ():
            if widget._layout_required or widget._scroll_required:
                later = True
                break
            if widget._repaint_required:
                refreshed.append(widget)
        if later:
            return True  # Textual's own cycle paints it
        if not refreshed and not screen._dirty_widgets:
            return False
        for widget in refreshed:
            widget._repaint_required = False  # its idle would tell the screen again
        screen._dirty_widgets.update(refreshed)
        with screen._context():
            screen._on_timer_update()
        self.frames_painted += 1
        return True

    def apply_changes(
        self,
        incidents: set[str],
        units: set[str],
        *,
        replaced: bool = False,
        reports: set[str] | frozenset[str] = frozenset(),
    ) -> None:
        """Apply one batch of changed incidents, units and online reports to the boards.

        `replaced`: a snapshot replaced the whole picture, so every board is reloaded.
        """
        self._last_event_at = self.clock()
        if (reports or replaced) and self.screen.has_class("-triage"):
            self.query_one(TriageQueue).refresh_queue()
        if replaced:
            self._reload()
        else:
            self._mark_provisional()
            with self.batch_update():
                self.queue.apply_changes(incidents)
                self.units.apply_changes(units)
                self.map.apply_changes(incidents, units)
            if self.alarms.update(self.client.state, incidents, units):
                self.ring()
            self._refresh_alarms_if_changed()
            self._offer_duplicates(incidents - self._known_incidents)
        for seq in [s for s in self._select_after if s <= self.client.seq]:
            reference = self._select_after.pop(seq)
            if self.queue.move_cursor_to(reference) and self.detail.shown:
                self.show_incident(reference)
        selected = self.queue.cursor_key
        if self.showing("incident") and selected in incidents:
            self.show_incident(selected)
        self.refresh_status(applied=True)

    def _mark_provisional(self) -> None:
        """Tell the boards which rows show actions taken while CAD was down."""
        provisional = self.client.provisional
        incidents = provisional.incidents if provisional is not None else frozenset()
        units = provisional.units if provisional is not None else frozenset()
        self.queue.provisional = incidents
        self.units.provisional = units
        self.map.provisional = len(incidents) + len(units)

    def on_command_line_submitted(self, message: CommandLine.Submitted) -> None:
        self.controller.submit(message.line)

    def select_when_shown(self, seq: int, reference: str) -> None:
        """Select an incident this operator opened, now or as soon as its row exists."""
        if not self.queue.move_cursor_to(reference):
            self._select_after[seq] = reference
        elif self.detail.shown:
            self.show_incident(reference)

    def ring(self, why: str = "alarm") -> None:
        """Ring the bell for an alarm (or, if the settings ask, for a refusal)."""
        if not self.settings.bell:
            return
        if why == "refusal" and not self.settings.bell_on_refusal:
            return
        self.bell()
        self._rang_at = self.clock()

    def refresh_alarms(self) -> None:
        """Redraw the alarm banner from the tracker."""
        self._alarms_shown = self._alarm_facts()
        self.query_one(AlarmBanner).show(self.alarms.lines(self.client.state))

    def _alarm_facts(self) -> tuple:
        """What the banner's lines are made of: the raised alarms, and where each unit
        in emergency is committed (its line names the incident)."""
        alarms, units = self.alarms, self.client.state.units
        return (
            tuple(alarms.breaches),
            tuple(alarms.new_grade_ones),
            tuple(
                (callsign, unit.incident if (unit := units.get(callsign)) else None)
                for callsign in sorted(alarms.emergency_callsigns)
            ),
        )

    def _refresh_alarms_if_changed(self) -> None:
        # Hundreds of breached grade 1s make a long list to build per batch; most
        # batches change none of it.
        if self._alarm_facts() != self._alarms_shown:
            self.refresh_alarms()

    def _tick(self) -> None:
        """Once a second: ageing, safety timers, the clock and the link's freshness."""
        try:
            self._tick_once()
        except NoMatches:
            # The screen is being taken down (quitting): the timer can still fire once
            # after the boards are gone. Nothing to age; never a crash on the way out.
            return

    def _tick_once(self) -> None:
        self.ticks += 1
        self.controller.report_rejections()
        now = self.clock()
        # Once a second is often enough for a timer counted in minutes, and keeps a
        # pass over every unit off the per-frame path.
        self._safety_due = len(officer_safety_due(self.client.state, now, self.policy))
        if self.showing("incident") and self.queue.cursor_key:
            self.show_incident(self.queue.cursor_key)  # its age and timers move on
        if self.showing("safety"):
            self.controller.show_safety(quiet=True)  # the countdowns move on
        if self.screen.has_class("-supervisor"):
            self.query_one(SupervisorBoard).tick()
        if self.screen.has_class("-triage"):
            self.query_one(TriageQueue).refresh_queue()  # the reports' ages move on
        if self.alarms.check_breaches(self.client.state, now, self.policy, self.queue.grade_ones()):
            self.ring()
            self.refresh_alarms()
        elif self._emergency_bell_due(now):
            self.ring()  # an emergency rings again until someone acknowledges it
        self.queue.tick()
        self.units.tick()
        self.refresh_status()

    def _emergency_bell_due(self, now: datetime) -> bool:
        every = self.settings.emergency_bell_every
        if not every or not self.alarms.emergency_ringing:
            return False
        return self._rang_at is None or (now - self._rang_at).total_seconds() >= every

    def refresh_status(self, *, applied: bool = False) -> None:
        """Redraw the status line and the stale banner.

        `applied`: called as a batch of changes has just been applied to the boards.
        The line tells of the picture the boards show: while a batch waits for the
        drain (the snapshot or replay that made the link live, events whose commands
        are no longer pending), it is left as it is, and `apply_changes` redraws it
        with the boards. So it never says LIVE over the last known picture.
        """
        if not applied and self.client.changes_waiting:
            return
        now = self.clock()
        status = self.client.status
        try:
            bar, banner = self.query_one(StatusBar), self.query_one(StaleBanner)
        except NoMatches:
            return  # the screen is going away (a status change while quitting)
        bar.show(
            operator=self.operator,
            status=status,
            last_event=self._last_event_at,
            pending=self.client.pending.count,
            rejected=self.client.pending.rejected,
            safety=self._safety_due,
            now=now,
            filtered=(
                (self.queue.filter_text, self.queue.hidden_count, self.units.hidden_count)
                if self.queue.filter_text
                else None
            ),
            reports=len(self.client.state.reports),
        )
        saved = self.client.saved_picture
        provisional = self.client.provisional
        banner.show(
            status,
            now,
            saved.heard_at if saved is not None else None,
            len(provisional.actions) if provisional is not None else 0,
        )

    # --- selection and the detail pane ---------------------------------------------------

    def on_board_highlighted(self, message: Board.Highlighted) -> None:
        if message.board is self.queue and self.showing("incident"):
            self.show_incident(message.key)
        self._follow_on_map(message.board, message.key)

    def on_board_chosen(self, message: Board.Chosen) -> None:
        if message.board is self.queue:
            self.show_incident(message.key)
        elif message.board is self.units and message.key in self.client.state.units:
            self.controller.show_unit_history(message.key)

    def show_incident(self, reference: str | None) -> None:
        """Show an incident in the detail pane (nothing if it is not in the picture)."""
        incident = self.client.state.incidents.get(reference) if reference else None
        if incident is None:
            return
        state = self.client.state
        text = incident_text(
            incident,
            state,
            self.clock(),
            self.policy,
            self.duplicate_policy,
            confirmed_seq=self.client.seq,
        )
        self.show_text(text, "incident")

    def show_text(self, text: Text, mode: str) -> None:
        """Open the detail pane on `text`, the `mode` view (incident, help, journal, ...)."""
        self._detail_mode = mode
        self.detail.show_text(text)
        self.screen.add_class("-detail")

    def showing(self, mode: str) -> bool:
        """Whether the detail pane is open on the `mode` view."""
        return self.detail.shown and self._detail_mode == mode

    def action_toggle_detail(self) -> None:
        """Show or hide the selected incident's detail."""
        if self.detail.shown:
            self.detail.hide()
            self.screen.remove_class("-detail")
        else:
            self.show_incident(self.queue.cursor_key)

    def action_focus_queue(self) -> None:
        """Move focus to the incident queue."""
        self.queue.focus()

    def action_focus_units(self) -> None:
        """Move focus to the unit board."""
        self.units.focus()

    def action_focus_command(self) -> None:
        """Back to the command line."""
        self.query_one(CommandInput).focus()

    def action_queue_up(self) -> None:
        """Select the previous incident without leaving the command line."""
        self.queue.action_cursor_up()

    def action_queue_down(self) -> None:
        """Select the next incident without leaving the command line."""
        self.queue.action_cursor_down()

    # --- the map -------------------------------------------------------------------------

    def action_toggle_map(self) -> None:
        """Show the map in the boards' place and move to it; hide it when it has the focus."""
        if not self.screen.has_class("-map"):
            self.screen.add_class("-map")
            self.map.focus()
        elif self.map.has_focus:
            self.screen.remove_class("-map")
            self.action_focus_command()
        else:
            self.map.focus()

    def _follow_on_map(self, board: Board, key: str | None) -> None:
        """A board's cursor moved: the map selects the same incident or unit."""
        if board is self.queue and key is not None:
            self.map.select(incident_key(key))
        elif board is self.units and key is not None and key in self.client.state.units:
            self.map.select(unit_key(key))

    def on_map_view_selected(self, message: MapView.Selected) -> None:
        board = self.queue if message.kind == "incident" else self.units
        board.move_cursor_to(message.name)

    def on_map_view_chosen(self, message: MapView.Chosen) -> None:
        kind, name = marker_name(message.key)
        if kind == "incident":
            self.show_incident(name)

    def action_toggle_grouping(self) -> None:
        """Group units by sector or by state."""
        grouping = Grouping.STATE if self.units.grouping == Grouping.SECTOR else Grouping.SECTOR
        self.units.set_grouping(grouping)
        self.command_line.feedback(f"units grouped by {grouping.value}")

    def action_next_theme(self) -> None:
        """Cycle through the built-in themes."""
        names = [theme.name for theme in textual_themes()]
        index = names.index(self.theme) if self.theme in names else -1
        self.theme = names[(index + 1) % len(names)]
        self.queue.invalidate_all()
        self.units.invalidate_all()
        self.command_line.feedback(f"theme {self.theme}")

    def action_help(self) -> None:
        """List every verb with an example."""
        self.show_text(lines_text(grammar.help_text(None)), "help")

    def action_find_step(self, by: int) -> None:
        """Show the next (1) or previous (-1) match of the last search."""
        self.controller.step_search(by)

    def action_write_pack(self) -> None:
        """Write the CAD-down pack to print, from the picture on screen."""
        self.controller.write_pack()

    def action_journal(self) -> None:
        """List journalled commands that are pending or were rejected."""
        self.controller.show_journal()

    def action_detail_scroll(self, lines: int) -> None:
        """Scroll the side pane (help, journal, an incident) by `lines`."""
        self.detail.scroll_relative(y=lines, animate=False)

    def action_detail_page(self, pages: int) -> None:
        """Scroll the side pane by a screenful."""
        self.detail.scroll_relative(y=pages * max(1, self.detail.size.height - 1), animate=False)

    def quit(self) -> None:
        """Quit as Ctrl+Q does (the `q` verb)."""
        self.call_next(self.action_quit)

    async def action_quit(self) -> None:
        """Quit; with commands not yet sent, only when asked twice (they are kept)."""
        unsent = self.client.pending.unsent
        now = self.clock()
        asked = self._quit_asked_at
        if unsent and (asked is None or (now - asked).total_seconds() > QUIT_CONFIRM_SECONDS):
            self._quit_asked_at = now
            self.command_line.feedback(
                f"{unsent} command{'s' if unsent != 1 else ''} not yet sent: kept in the "
                f"journal, sent when a backend answers after the next start. "
                f"Quit again within {QUIT_CONFIRM_SECONDS:g} s to quit",
                error=True,
            )
            self.ring("refusal")
            return
        self.exit()

    def action_reconnect(self) -> None:
        """Try the link again after it stopped (a stop is never retried by itself)."""
        if self.client.reconnect():
            self.command_line.feedback("reconnecting")
        else:
            state = self.client.status.state.value
            self.command_line.feedback(f"the link is {state}: nothing to do")

    # --- calls and duplicates ------------------------------------------------------------

    def action_call_form(self) -> None:
        """Open the call form on the call in hand (F10)."""
        self.open_call_form()

    def open_call_form(self, location: str = "") -> None:
        """Open the call form, with `location` filled in if given."""
        if isinstance(self.screen, CallForm):
            return
        if location:
            self.call_answers.values["location"] = location
        context = CallFormContext(
            rules=self.grading,
            incident_types=INCIDENT_TYPES,
            places=lambda: self.places,
            state=lambda: self.client.state,
            clock=self.clock,
            send=self.controller.run,
            duplicates=self.duplicate_policy,
        )
        self.push_screen(CallForm(self.call_answers, context))

    def _offer_duplicates(self, new: set[str]) -> None:
        """Say on the command line when a new incident may repeat an open one."""
        state = self.client.state
        self._known_incidents |= new
        if new and isinstance(self.screen, CallForm):
            self.screen.refresh_duplicates()  # the call in hand may repeat one just in
        for reference in sorted(new):
            incident = state.incidents.get(reference)
            offers = incident_offers(incident, state, self.duplicate_policy) if incident else []
            if offers:
                line = f"{offer_line(reference, offers[0])}. Ctrl+L links it as a duplicate"
                self.command_line.feedback(line)
                self._offered = (reference, offers[0].reference, line)

    def action_link_duplicate(self) -> None:
        """Link as a duplicate: the pair the command line offers, else the selected
        incident and the first open incident it may repeat."""
        offered, self._offered = self._offered, None
        said = str(self.query_one("#command-feedback").render())
        state = self.client.state
        if offered is not None and offered[2] == said:
            reference, other = offered[0], offered[1]
        else:
            selected = self.queue.cursor_key
            incident = state.incidents.get(selected) if selected else None
            offers = incident_offers(incident, state, self.duplicate_policy) if incident else []
            if not offers:
                self.command_line.feedback("no possible duplicate to link", error=True)
                return
            assert incident is not None
            reference, other = incident.reference, offers[0].reference
        for ref in (reference, other):
            found = state.incidents.get(ref)
            if found is None or found.status == IncidentStatus.CLOSED:
                self.command_line.feedback(f"{ref} is no longer open: not linked", error=True)
                return
        command = draft(
            "link_incidents",
            reference=reference,
            other=other,
            relation=LinkRelation.DUPLICATE_OF.value,
        )
        self.controller.run(
            grammar.Dispatch((command,), f"link {reference} as a duplicate of {other}")
        )

    # --- the supervisor board and the triage queue -----------------------------------

    def action_supervisor_board(self) -> None:
        """Open the supervisor board (supervisors, or anyone while the role is unknown)."""
        if self.role is not None and self.role != Role.SUPERVISOR:
            self.command_line.feedback(
                f"the supervisor board is for supervisors; this login is {self.role.value}",
                error=True,
            )
            return
        board = self.query_one(SupervisorBoard)
        if self.screen.has_class("-supervisor"):
            self._close_board()
            return
        self.screen.remove_class("-triage")
        board.policy = self.policy
        self.screen.add_class("-supervisor")
        board.refresh_board()
        board.focus_list()

    def _close_board(self) -> None:
        self.screen.remove_class("-supervisor")
        self.action_focus_command()

    def on_supervisor_board_chosen(self, message: SupervisorBoard.Chosen) -> None:
        self._close_board()
        self.queue.move_cursor_to(message.reference)
        self.show_incident(message.reference)

    def on_supervisor_board_closed(self, message: SupervisorBoard.Closed) -> None:
        self._close_board()

    def action_triage(self) -> None:
        """Show or hide the triage queue of online reports."""
        if self.screen.has_class("-triage"):
            self._close_triage()
            return
        self.screen.remove_class("-supervisor")
        self.screen.add_class("-triage")
        queue = self.query_one(TriageQueue)
        queue.refresh_queue()
        queue.focus_list()

    def _close_triage(self) -> None:
        self.screen.remove_class("-triage")
        self.action_focus_command()

    def on_triage_queue_decided(self, message: TriageQueue.Decided) -> None:
        # Its location is matched against the gazetteer, as a typed `n` line's is.
        action = grammar.Dispatch((message.command,), message.summary)
        self.controller.run(placed(action, self.places))

    def on_triage_queue_closed(self, message: TriageQueue.Closed) -> None:
        self._close_triage()

    def action_acknowledge(self) -> None:
        """Acknowledge every alarm on screen."""
        self.controller.run(grammar.Acknowledge(None))
