"""What the command line does: from a parsed line to commands, searches and answers.

`CommandController` is the console's controller: the app holds one, hands it each
submitted line, and shows what it reports. It reaches the network only through the
client (in workers), and the screen only through `ConsoleViews`, the few things it asks
of the app. What is pending is the client's to know (`DispatchClient.pending`); the
controller only remembers which refusals the operator has already been told about.

The journal is a file on disk (an fsync per write), so everything that reads or writes
it runs in a worker, in a thread, never on the UI loop: the console keeps drawing and
taking keys while the disk is slow, full or locked. A journal that cannot be written
is said on the command line in plain words, with what the dispatcher can do, and logged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from pydantic import ValidationError
from rich.text import Text

from cadterm.client import DispatchClient
from cadterm.client.errors import CommandConflict, CommandError, JournalError
from cadterm.client.journal import JournalEntry, JournalFault, JournalStatus, Resolution
from cadterm.client.outage import OutageSummary
from cadterm.client.queries import HistoryQueries, QueryError
from cadterm.client.stream import LinkState
from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.recommend import UNRANKED, needs_for, recommend
from cadterm.domain.reconcile import offline_duplicates
from cadterm.domain.timers import TimerPolicy, safety_checks
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.domain import UnitState
from cadterm.protocol.drafts import draft, draft_of

from . import grammar
from .alerts import EMERGENCY, AlarmTracker
from .command_line import CommandLine
from .detail import (
    closed_incident_text,
    picture_unit_history_text,
    recommendation_text,
    safety_text,
    search_text,
    unit_history_text,
)
from .grammar.cover import FORCE, left_unresourced
from .incident_queue import IncidentQueue, short_reference
from .pack import PackSource, write_pack
from .reconciliation import reconciliation_text
from .search_results import SearchResults
from .settings import ConsoleSettings
from .unit_board import UnitBoard

__all__ = ["CommandController", "ConsoleViews", "journal_trouble", "lines_text"]

log = logging.getLogger("cadterm.console")


def happened_today(at: time, now: datetime) -> datetime:
    """The moment a paper log's ``HH:MM`` means: the last such local time, up to now.

    Typed in after midnight, 23:50 is yesterday's.
    """
    local_now = now.astimezone()
    moment = local_now.replace(hour=at.hour, minute=at.minute, second=0, microsecond=0)
    if moment > local_now:
        moment -= timedelta(days=1)
    return moment.astimezone(UTC)


class ConsoleViews(Protocol):
    """What the controller needs of the screen: the boards, the command line, the detail
    pane, the status line and the bell (the app provides them)."""

    @property
    def queue(self) -> IncidentQueue: ...

    @property
    def units(self) -> UnitBoard: ...

    @property
    def command_line(self) -> CommandLine: ...

    @property
    def places(self) -> Gazetteer | None:
        """The force's gazetteer, once loaded (None without one)."""

    @property
    def policy(self) -> TimerPolicy:
        """The timers the console runs by (the safety cadence among them)."""

    @property
    def settings(self) -> ConsoleSettings:
        """The console's settings (contacts for the pack among them)."""

    def show_incident(self, reference: str | None) -> None:
        """Show an incident in the detail pane."""

    def show_text(self, text: Text, mode: str) -> None:
        """Show `text` in the detail pane, as the `mode` view (help, journal, ...)."""

    def showing(self, mode: str) -> bool:
        """Whether the detail pane is open on the `mode` view."""

    def select_when_shown(self, seq: int, reference: str) -> None:
        """Select an incident now, or once the event `seq` that creates it is applied."""

    def refresh_alarms(self) -> None:
        """Redraw the alarm banner."""

    def refresh_status(self) -> None:
        """Redraw the status line."""

    def ring(self, why: str = "alarm") -> None:
        """Ring the bell (when the settings allow)."""

    def run_worker(
        self,
        work: Coroutine[Any, Any, None],
        name: str | None = "",
        group: str = "default",
        description: str = "",
        exit_on_error: bool = True,
    ) -> object:
        """Run `work` in the background; a failure is reported, never fatal."""

    def quit(self) -> None:
        """Quit, as Ctrl+Q does (asking first when commands are still unsent)."""

    def open_call_form(self, location: str = "") -> None:
        """Open the call form (F10), with the location filled in if one is given."""


class CommandController:
    """The console's handling of command lines, journal fixes and refusals."""

    def __init__(
        self,
        client: DispatchClient,
        views: ConsoleViews,
        alarms: AlarmTracker,
        clock: Callable[[], datetime],
        history: HistoryQueries | None = None,
    ) -> None:
        self.client = client
        self.views = views
        self.alarms = alarms
        self.clock = clock
        # The server's history (closed incidents, a unit's shift); None without a URL.
        self.history = history
        self.search: SearchResults | None = None  # the last `f`, stepped by Ctrl+N/P
        self._searchable: dict[str, tuple[int, str]] = {}  # each incident's words, by version
        # Rejected journal entries the operator has been told about (on the command line
        # when the refusal came back at once, or by `report_rejections` when it came later).
        self._rejections_reported: set[str] = set()

    def parse_context(self) -> grammar.ParseContext:
        """What the grammar needs to resolve and complete names, from the live picture."""
        state = self.client.state
        selected = self.views.queue.cursor_key
        recommended: tuple[str, ...] = ()
        incident = state.incidents.get(selected) if selected else None
        if incident is not None:
            picks = recommend(
                state, incident, self.clock(), needs=needs_for(incident.incident_type)
            )
            # Tab offers "(recommended)" only for a real ranking, never an arbitrary order.
            recommended = tuple(pick.callsign for pick in picks if pick.basis != UNRANKED)
        return grammar.ParseContext(
            selected=selected,
            references=list(state.incidents),
            callsigns=list(state.units),
            incident_types=INCIDENT_TYPES,
            closing_codes=CLOSING_CODES,
            recommended=recommended,
            places=self.views.places,
        )

    def submit(self, line: str) -> None:
        """Read one line the operator entered and do what it says.

        A line that would leave an urgent incident with no unit is not sent: it stays
        on the command line with the reason, and goes when entered again starting
        with ``!`` (see `cover`).
        """
        if not line.strip():
            if self.views.showing("search"):
                self.open_match()
            return
        forced = line.lstrip().startswith(FORCE)
        text = line.lstrip()[1:] if forced else line
        try:
            action = grammar.parse(text, self.parse_context())
        except grammar.ParseError as error:
            offset = len(line) - len(text)
            self.views.command_line.show_error(
                line, error.message, error.start + offset, error.end + offset
            )
            return
        if isinstance(action, grammar.Dispatch) and not forced:
            warnings = left_unresourced(self.client.state, action.commands)
            if warnings:
                self.views.command_line.show_error(
                    f"{FORCE}{line.lstrip()}",
                    f"{'; '.join(warnings)}. Enter to send anyway, Escape to think again",
                    0,
                    0,
                )
                return
        self.run(action)

    def run(self, action: grammar.Action) -> None:
        """Carry out one action of the grammar."""
        feedback = self.views.command_line.feedback
        if isinstance(action, grammar.Dispatch):
            feedback(f"sending: {action.summary}")
            self.dispatch(action)
        elif isinstance(action, grammar.Recommend):
            self._recommend(action)
        elif isinstance(action, grammar.Filter):
            self.views.queue.set_filter(action.text)
            self.views.units.set_filter(action.text)
            self.views.refresh_status()
            feedback(f"filter: {action.text}" if action.text else "filter cleared")
        elif isinstance(action, grammar.Find):
            self._find(action.text)
        elif isinstance(action, grammar.ShowUnitHistory):
            self.show_unit_history(action.callsign)
        elif isinstance(action, grammar.ShowSafety):
            self.show_safety()
        elif isinstance(action, grammar.Select):
            if self.views.queue.move_cursor_to(action.reference):
                self.views.show_incident(action.reference)
            else:
                feedback(f"{action.reference} is not in the queue (closed or filtered)", error=True)
        elif isinstance(action, grammar.Acknowledge):
            self._acknowledge(action.target)
        elif isinstance(action, grammar.Help):
            self.views.show_text(lines_text(grammar.help_text(action.verb)), "help")
        elif isinstance(action, grammar.JournalAction):
            if action.action == "list":
                self.show_journal()
            else:
                self._journal_entry_fix(action)
        elif isinstance(action, grammar.WritePack):
            self.write_pack()
        elif isinstance(action, grammar.Quit):
            self.views.quit()
        elif isinstance(action, grammar.CallFormAction):
            self.views.open_call_form(action.location)

    def _recommend(self, action: grammar.Recommend) -> None:
        incident = self.client.state.incidents.get(action.reference)
        if incident is None:
            self.views.command_line.feedback(f"no incident {action.reference}", error=True)
            return
        needs = action.capabilities or needs_for(incident.incident_type)
        picks = recommend(self.client.state, incident, self.clock(), needs=needs)
        self.views.show_text(recommendation_text(action.reference, picks), "recommend")
        if not picks:
            best = "no unit fits"
        elif picks[0].basis == UNRANKED:
            best = f"{len(picks)} could go; no location or sector to rank them by"
        else:
            best = f"best: {picks[0].callsign} ({picks[0].reason})"
        self.views.command_line.feedback(f"recommend {short_reference(action.reference)}: {best}")

    # --- search ------------------------------------------------------------------------

    def _find(self, text: str) -> None:
        """Search the picture now and the server's history in a worker; list the matches.

        With no text, move to the next match of the last search.
        """
        feedback = self.views.command_line.feedback
        if not text.strip():
            if self.search is None:
                feedback("find what? f WORDS (a reference, address, caller, phone, note)")
            else:
                self.step_search(1)
            return
        results = SearchResults.of_picture(text, self.client.state, self._searchable)
        self.search = results
        if self.history is None:
            results.history = "no backend URL configured"
        else:
            self.views.run_worker(
                self._search_history(results), name="search", group="search", exit_on_error=False
            )
        # A callsign typed whole also selects the unit, as `f` always has.
        wanted = " ".join(text.split()).upper()
        unit = wanted if wanted in self.client.state.units else None
        if unit is not None and not self.views.units.move_cursor_to(unit):
            unit = None  # filtered off the board
        self._show_search(unit=unit)

    async def _search_history(self, results: SearchResults) -> None:
        """Add the history's matches to `results`, and show them if it is still current."""
        assert self.history is not None
        try:
            page = await self.history.search_history(results.text, limit=50)
        except QueryError as error:
            results.history = str(error)
        else:
            results.add_archived(page.incidents, more=page.next_after is not None)
        if results is self.search and self.views.showing("search"):
            self._show_search(quiet=True)

    def _show_search(self, quiet: bool = False, unit: str | None = None) -> None:
        results = self.search
        if results is None:
            return
        self.views.show_text(search_text(results), "search")
        match = results.current
        if match is not None and not match.closed:
            self.views.queue.move_cursor_to(match.reference)
        if quiet:
            return
        feedback = self.views.command_line.feedback
        selected = f"; unit {unit} selected" if unit else ""
        if match is None:
            waiting = " yet (asking the server)" if results.history == "searching" else ""
            feedback(
                f"no incident matches {results.text!r}{waiting}{selected}",
                error=not (waiting or unit),
            )
        else:
            feedback(
                f"find {results.text!r}: {results.position} {short_reference(match.reference)}"
                f" (Ctrl+N next, Ctrl+P previous, Enter opens){selected}"
            )

    def step_search(self, by: int) -> None:
        """Show the next (1) or previous (-1) match of the last search."""
        if self.search is None or not self.search.matches:
            self.views.command_line.feedback("no matches to step through: f WORDS", error=True)
            return
        self.search.step(by)
        self._show_search()

    def open_match(self) -> None:
        """Open the current match: a live incident as usual, a closed one read only."""
        match = self.search.current if self.search is not None else None
        if match is None:
            return
        state = self.client.state
        live = state.incidents.get(match.reference)
        if (
            live is not None
            and not match.closed
            and self.views.queue.move_cursor_to(match.reference)
        ):
            self.views.show_incident(match.reference)
            return
        incident = live if live is not None else match.incident
        self.views.show_text(
            closed_incident_text(incident, state, self.clock(), self.views.policy), "closed"
        )
        self.views.command_line.feedback(
            f"{short_reference(match.reference)}: closed, read only ({self.search.position})"
        )

    # --- a unit's shift and the safety checks ------------------------------------------

    def show_unit_history(self, callsign: str) -> None:
        """Ask the server for the unit's shift and show it in the side pane."""
        feedback = self.views.command_line.feedback
        if self.history is None:
            why = "no backend URL configured"
            self.views.show_text(
                picture_unit_history_text(callsign, self.client.state, why), "unit history"
            )
            feedback(f"unit history {callsign}: {why}; the picture's account shown", error=True)
            return
        feedback(f"unit history {callsign}: asking the server")
        self.views.run_worker(
            self._unit_history(callsign), name="unit history", group="search", exit_on_error=False
        )

    async def _unit_history(self, callsign: str) -> None:
        assert self.history is not None
        try:
            history = await self.history.unit_history(callsign)
        except QueryError as error:
            if error.status is None:  # no backend answered: say what the picture knows
                text = picture_unit_history_text(callsign, self.client.state, str(error))
                self.views.show_text(text, "unit history")
            self.views.command_line.feedback(f"unit history {callsign}: {error}", error=True)
            return
        unit = self.client.state.units.get(history.callsign)
        self.views.show_text(unit_history_text(history, unit), "unit history")
        self.views.command_line.feedback(
            f"unit history {callsign}: {len(history.entries)} entries, "
            f"{len(history.incidents)} incidents"
        )

    def show_safety(self, quiet: bool = False) -> None:
        """List running safety checks, overdue first (again each second while shown)."""
        now = self.clock()
        checks = safety_checks(self.client.state, now, self.views.policy)
        self.views.show_text(safety_text(checks, now), "safety")
        if not quiet:
            overdue = sum(1 for check in checks if check.overdue)
            self.views.command_line.feedback(
                f"safety: {len(checks)} at scene, {overdue} overdue", error=bool(overdue)
            )

    async def learn_safety_cadence(self, own: TimerPolicy, cap: timedelta) -> TimerPolicy | None:
        """`own` with the server's safety cadence, none of it longer than `cap`.

        Asks until a backend answers, less often as time goes on (for about half an
        hour); None if none did, if the server refused, or with no URL.
        """
        if self.history is None:
            return None
        for attempt in range(60):
            try:
                cadence = await self.history.safety_cadence()
            except QueryError as error:
                if error.status is not None:
                    return None  # refused (an older server): the console keeps its own
                await asyncio.sleep(min(2.0 * 1.5**attempt, 30.0))
                continue
            every, by_type = cadence.intervals()
            learned = dataclasses.replace(own, officer_safety_after=every, safety_by_type=by_type)
            return learned.safety_within(cap)
        return None

    async def close(self) -> None:
        """Close the history queries' connections."""
        if self.history is not None:
            await self.history.aclose()

    def _acknowledge(self, target: str | None) -> None:
        """Acknowledge the alarm `target` names, or the top one: one alarm at a time."""
        feedback = self.views.command_line.feedback
        state = self.client.state
        alarms = self.alarms.find(state, target)
        if not alarms:
            if target is None:
                feedback("no alarm to acknowledge")
            else:
                feedback(f"{target} has no alarm to acknowledge", error=True)
            return
        callsigns = [alarm.target for alarm in alarms if alarm.kind == EMERGENCY]
        for alarm in alarms:
            if alarm.kind != EMERGENCY:
                self.alarms.acknowledge(alarm)
        self.views.refresh_alarms()
        in_emergency = [
            c for c in callsigns if c in state.units and state.units[c].state == UnitState.EMERGENCY
        ]
        try:
            commands = tuple(draft("acknowledge_emergency", callsign=c) for c in in_emergency)
        except ValidationError as error:  # a callsign stored before today's rules
            feedback(f"cannot acknowledge: {error.errors()[0]['msg']}", error=True)
            return
        if commands:
            self.dispatch(grammar.Dispatch(commands, f"acknowledge {', '.join(in_emergency)}"))
        else:
            left = len(self.alarms.alarms(state))
            feedback(
                f"acknowledged: {alarms[0].line.split(' - ')[0]}"
                + (f" ({left} more)" if left else ""),
                ok=True,
            )

    def dispatch(self, action: grammar.Dispatch) -> None:
        """Issue the commands of one line in a worker; the outcome comes back on the line."""
        self.views.run_worker(
            self._issue(action), name="dispatch", group="commands", exit_on_error=False
        )

    async def _issue(self, action: grammar.Dispatch) -> None:
        """Issue each command of one line, in order, and report the outcome."""
        feedback = self.views.command_line.feedback
        outcomes = []
        summary = action.summary
        taken_at = None
        if action.happened_at is not None:
            taken_at = happened_today(action.happened_at, self.clock())
            summary = f"{summary} (back-entered, happened at {action.happened_at:%H:%M})"
        for command in action.commands:
            if taken_at is not None:
                command = command.model_copy(update={"taken_at": taken_at})
            try:
                issued = await self.client.issue(command)
            except JournalError as error:
                log.error("journal fault on %s: %s", command.type, error)
                if isinstance(error, JournalFault) and error.doing != "add to":
                    what = "what became of it was not recorded (check the board)"
                else:
                    what = "NOT SENT"
                feedback(f"{summary}: {what}: {journal_trouble(error)}", error=True)
                self.views.ring()
                return
            if issued.error is not None:
                self._rejections_reported.add(issued.entry.key)
                feedback(_describe_error(issued.error), error=True)
                self.views.ring("refusal")  # already on the line; quiet unless asked for
                return
            if issued.result is not None:
                event = issued.result.event
                opened = event.type == "incident_created" or (
                    event.type == "report_triaged" and event.reference is not None
                )
                if opened:
                    self.views.select_when_shown(event.seq, event.reference)
                outcomes.append(f"#{issued.result.seq}")
            elif issued.reference is not None:
                # Opened offline: shown at once under the reference it got here, the
                # reserved one (final) or a provisional one (mapped on recovery), and
                # selected, so a note typed next goes to it.
                kept = (
                    "provisional, mapped when CAD is back"
                    if issued.provisional_reference
                    else "kept"
                )
                summary = f"{summary} as {issued.reference} ({kept})"
                self.views.select_when_shown(0, issued.reference)
                outcomes.append("journalled")
            else:
                outcomes.append("journalled")
        if outcomes.count("journalled"):
            feedback(
                f"{summary}: journalled, shown ~ provisional until a backend has it",
                error=True,
            )
        else:
            feedback(f"done: {summary} ({' '.join(outcomes)})", ok=True)
        self.views.refresh_status()

    def report_rejections(self) -> None:
        """Say once, and ring, when a journalled command was refused after it was typed.

        Reads only the client's in-memory tally, and the journal's file only when there
        is a refusal the operator has not been told about.
        """
        rejected = self.client.pending.rejected_keys
        fresh = rejected - self._rejections_reported
        if not fresh:
            return
        self._rejections_reported |= rejected
        self.views.run_worker(
            self._report_rejected(fresh), name="journal", group="journal", exit_on_error=False
        )

    async def _report_rejected(self, fresh: set[str]) -> None:
        try:
            rejected = await asyncio.to_thread(self.client.rejected)
        except JournalError as error:
            self._journal_failed("read", error)
            return
        news = [entry for entry in rejected if entry.key in fresh]
        if not news:
            return  # dealt with in the meantime
        newest = news[-1]
        detail = newest.problem.detail if newest.problem else "refused"
        self.views.command_line.feedback(
            f"journalled {newest.kind} was REJECTED: {detail} (F7 lists them)", error=True
        )
        self.views.ring()

    def write_pack(self) -> None:
        """Write the CAD-down pack from the picture on screen (file writes: a thread)."""
        self.views.run_worker(self._write_pack(), name="pack", group="pack", exit_on_error=False)

    async def _write_pack(self) -> None:
        feedback = self.views.command_line.feedback
        journal = self.client.journal
        if journal is None:
            feedback("no pack: this console keeps no journal, so it has no folder", error=True)
            return
        status, provisional = self.client.status, self.client.provisional
        if status.state == LinkState.LIVE:
            of, origin = self.clock(), f"live from {status.url}"
        else:
            saved = self.client.saved_picture
            heard = saved.heard_at if saved is not None else status.last_frame_at
            of = heard or self.clock()
            done = len(provisional.actions) if provisional is not None else 0
            origin = "this console's picture: no backend answers" + (
                f"; with {done} action(s) taken here since, not yet recorded" if done else ""
            )
        contacts = tuple((c.name, c.phone) for c in self.views.settings.contacts)
        source = PackSource(self.client.state, of, origin, self.client.workstation, contacts)
        try:
            written = await asyncio.to_thread(write_pack, source, journal.path.parent / "packs")
        except OSError as error:
            feedback(f"pack not written: {error.strerror or error}", error=True)
            self.views.ring()
            return
        feedback(f"CAD-down pack written: {written[-1]} (and .txt): print it", ok=True)

    def show_journal(self) -> None:
        """List journalled commands that are pending or were rejected (read in a thread)."""
        self.views.run_worker(
            self._show_journal(), name="journal", group="journal", exit_on_error=False
        )

    def _journal_failed(self, doing: str, error: JournalError) -> None:
        log.error("journal %s failed: %s", doing, error)
        self.views.command_line.feedback(journal_trouble(error), error=True)
        self.views.ring()

    async def _show_journal(self) -> None:
        try:
            entries, summary = await asyncio.to_thread(self._read_journal)
        except JournalError as error:
            self._journal_failed("read", error)
            return
        text = reconciliation_text(
            entries,
            self.client.confirmed,
            summary,
            offline_duplicates(self.client.confirmed),
            self.client.reference_map,
        )
        self.views.show_text(text, "journal")

    def _read_journal(self) -> tuple[list[JournalEntry], OutageSummary]:
        """The entries waiting or refused, and the outage summary (file reads: a thread)."""
        journal = self.client.journal
        if journal is None:
            return [], OutageSummary()
        entries = journal.entries()
        waiting = [
            e for e in entries if e.status in (JournalStatus.PENDING, JournalStatus.REJECTED)
        ]
        return waiting, OutageSummary.of(entries)

    def _journal_entry_fix(self, action: grammar.JournalAction) -> None:
        """Put right a rejected journal entry: apply anyway, adapt, withdraw, set aside."""
        self.views.run_worker(
            self._fix_journal_entry(action), name="journal", group="journal", exit_on_error=False
        )

    async def _fix_journal_entry(self, action: grammar.JournalAction) -> None:
        feedback = self.views.command_line.feedback
        try:
            rejected = await asyncio.to_thread(self.client.rejected)
        except JournalError as error:
            self._journal_failed("read", error)
            return
        if action.number is None or action.number > len(rejected):
            feedback(
                f"no rejected entry {action.number}: {len(rejected)} rejected (F7 lists them)",
                error=True,
            )
            return
        entry = rejected[action.number - 1]
        instead = None
        if action.action == "adapt":
            # Read the replacement first: a mistake in it leaves the entry as it was.
            try:
                instead = grammar.parse(action.text or "", self.parse_context())
            except grammar.ParseError as error:
                feedback(f"j adapt {action.number}: {error}", error=True)
                return
            if not isinstance(instead, grammar.Dispatch):
                feedback(f"j adapt {action.number}: give a command that acts", error=True)
                return
        if action.action == "retry" and entry.command is None:
            why = entry.problem.detail if entry.problem else "unreadable"
            feedback(
                f"rejected {entry.kind} cannot be applied as stored ({why}): "
                f"'j adapt {action.number} COMMAND' to type it again",
                error=True,
            )
            return
        resolution = {
            "retry": Resolution.APPLIED_ANYWAY,
            "adapt": Resolution.ADAPTED,
            "withdraw": Resolution.WITHDRAWN,
        }.get(action.action, Resolution.SET_ASIDE)
        # The entry stays on file, with what was decided and why: the record of what
        # was refused and what the operator did about it is never lost.
        try:
            await asyncio.to_thread(self.client.dismiss, entry.key, resolution, action.text)
        except JournalError as error:
            self._journal_failed("write", error)
            return
        self._rejections_reported.add(entry.key)
        if action.action == "retry":
            # A retry is the operator's fresh decision on the picture as it is now, so
            # it carries a new key (the client's) and no expected version.
            again = draft_of(entry.command).model_copy(update={"expected_version": None})
            self.dispatch(grammar.Dispatch((again,), f"{entry.kind} applied anyway"))
        elif instead is not None:
            self.dispatch(instead)
        elif action.action == "withdraw":
            self._record_withdrawal(entry, action.text or "")
        else:
            feedback(f"rejected {entry.kind} set aside (kept in the journal)", ok=True)
        self.views.refresh_status()
        if self.views.showing("journal"):
            self.show_journal()

    def _record_withdrawal(self, entry: JournalEntry, reason: str) -> None:
        """Say in the chronology that an action taken offline was not done after all."""
        feedback = self.views.command_line.feedback
        try:
            note = self.client.withdrawal_note(entry, reason)
        except ValidationError as error:  # a reason the protocol cannot carry
            feedback(f"withdrawn, but no note: {error.errors()[0]['msg']}", error=True)
            return
        if note is None:
            feedback(f"{entry.kind} withdrawn: {reason} (recorded in the journal)", ok=True)
            return
        summary = f"{entry.kind} withdrawn, noted on {getattr(note, 'reference', '?')}"
        self.dispatch(grammar.Dispatch((note,), summary))


def journal_trouble(error: JournalError) -> str:
    """A journal that cannot be used, in words the dispatcher can act on."""
    if isinstance(error, JournalFault):
        done = "read" if error.doing == "read" else "written"
        return (
            f"the journal cannot be {done}: {error.what}. To do: {error.remedy}; until "
            "then keep a paper record of what you do"
        )
    return f"the journal failed ({error}); keep a paper record and call IT"


def _describe_error(error: CommandError) -> str:
    """A refusal as the operator should read it."""
    text = f"refused: {error.detail}"
    if isinstance(error, CommandConflict) and error.changes:
        text += f" | latest: {error.changes[-1]}"
    return text


def lines_text(lines: list[str]) -> Text:
    """Plain lines as one text, never read as markup."""
    return Text("\n".join(lines))
