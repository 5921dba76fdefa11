"""What the command line does: from a parsed line to commands, searches and answers.

A mixin of `CadApp`, kept apart so the app module holds the screen and the live picture
and this one holds the operator's actions. Everything here reaches the network only
through the client, in workers; outcomes come back to the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work

from cadterm.client import DispatchClient, Issued
from cadterm.client.errors import CommandConflict, CommandError
from cadterm.domain.recommend import UNRANKED, needs_for, recommend
from cadterm.domain.timers import TimerPolicy
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.domain import UnitState

from . import grammar
from .alerts import AlarmTracker
from .command_line import CommandLine
from .detail import recommendation_text
from .incident_queue import IncidentQueue, short_reference

if TYPE_CHECKING:
    from .detail import DetailPane
    from .unit_board import UnitBoard

__all__ = ["CommandActions", "lines_text"]


class CommandActions:
    """The console's handling of command lines (mixed into `CadApp`)."""

    # Provided by the app this is mixed into.
    client: DispatchClient
    clock: Callable[[], datetime]
    policy: TimerPolicy
    alarms: AlarmTracker
    queue: IncidentQueue
    units: UnitBoard
    detail: DetailPane
    command_line: CommandLine
    _awaiting: set[int]
    _rejections_reported: set[str]
    _detail_mode: str

    def parse_context(self) -> grammar.ParseContext:
        """What the grammar needs to resolve and complete names, from the live picture."""
        state = self.client.state
        selected = self.queue.cursor_key
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
        )

    def on_command_line_submitted(self, message: CommandLine.Submitted) -> None:
        line = message.line
        if not line.strip():
            return
        try:
            action = grammar.parse(line, self.parse_context())
        except grammar.ParseError as error:
            self.command_line.show_error(line, error.message, error.start, error.end)
            return
        self._run_action(action, line)

    def _run_action(self, action: object, line: str) -> None:
        if isinstance(action, grammar.Dispatch):
            self.command_line.feedback(f"sending: {action.summary}")
            self._dispatch(action)
        elif isinstance(action, grammar.Recommend):
            self._recommend(action)
        elif isinstance(action, grammar.Filter):
            self.queue.set_filter(action.text)
            self.units.set_filter(action.text)
            self.command_line.feedback(
                f"filter: {action.text}" if action.text else "filter cleared"
            )
        elif isinstance(action, grammar.Find):
            self._find(action.text)
        elif isinstance(action, grammar.Select):
            if self.queue.move_cursor_to(action.reference):
                self._show_incident(action.reference)
            else:
                self.command_line.feedback(
                    f"{action.reference} is not in the queue (closed or filtered)", error=True
                )
        elif isinstance(action, grammar.Acknowledge):
            self._acknowledge(action.callsign)
        elif isinstance(action, grammar.Help):
            self._detail_mode = "help"
            self.detail.show_text(lines_text(grammar.help_text(action.verb)))
            self.screen.add_class("-detail")
        elif isinstance(action, grammar.JournalAction):
            if action.action == "list":
                self.action_journal()
            else:
                self._journal_entry_fix(action)
        elif isinstance(action, grammar.Quit):
            self.exit()

    def _recommend(self, action: grammar.Recommend) -> None:
        incident = self.client.state.incidents.get(action.reference)
        if incident is None:
            self.command_line.feedback(f"no incident {action.reference}", error=True)
            return
        needs = action.capabilities or needs_for(incident.incident_type)
        picks = recommend(self.client.state, incident, self.clock(), needs=needs)
        self._detail_mode = "recommend"
        self.detail.show_text(recommendation_text(action.reference, picks))
        self.screen.add_class("-detail")
        if not picks:
            best = "no unit fits"
        elif picks[0].basis == UNRANKED:
            best = f"{len(picks)} could go; no location or sector to rank them by"
        else:
            best = f"best: {picks[0].callsign} ({picks[0].reason})"
        self.command_line.feedback(f"recommend {short_reference(action.reference)}: {best}")

    def _find(self, text: str) -> None:
        needle = text.strip().lower()
        for reference in reversed(list(self.client.state.incidents)):
            incident = self.client.state.incidents[reference]
            haystack = f"{reference} {incident.incident_type} {incident.location.address}"
            if needle in haystack.lower() and self.queue.move_cursor_to(reference):
                self._show_incident(reference)
                self.command_line.feedback(f"found {short_reference(reference)}")
                return
        for callsign in self.client.state.units:
            if needle in callsign.lower() and self.units.move_cursor_to(callsign):
                self.command_line.feedback(f"found unit {callsign}")
                return
        self.command_line.feedback(f"nothing open matches {text!r}", error=True)

    def _acknowledge(self, callsign: str | None) -> None:
        self.alarms.acknowledge_grade_ones()
        targets = [callsign] if callsign else sorted(self.alarms.emergency_callsigns)
        commands = tuple(
            {"type": "acknowledge_emergency", "callsign": target}
            for target in targets
            if self.client.state.units.get(target) is not None
            and self.client.state.units[target].state == UnitState.EMERGENCY
        )
        self._refresh_alarms()
        if commands:
            self._dispatch(grammar.Dispatch(commands, f"acknowledge {', '.join(targets)}"))
        elif callsign:
            self.command_line.feedback(f"{callsign} has no emergency to acknowledge", error=True)
        else:
            self.command_line.feedback("alarms acknowledged", ok=True)

    @work(group="commands", exit_on_error=False)
    async def _dispatch(self, action: grammar.Dispatch) -> None:
        """Issue each command of one line, in order, and report the outcome."""
        outcomes = []
        for fields in action.commands:
            command = self.client.command(**fields)
            issued: Issued = await self.client.issue(command)
            if issued.error is not None:
                self._rejections_reported.add(issued.entry.key)
                self.command_line.feedback(_describe_error(issued.error), error=True)
                self._ring()
                return
            if issued.result is not None:
                event = issued.result.event
                if event.type == "incident_created":
                    self._select_when_shown(event.seq, event.reference)
                if issued.result.seq > self.client.seq:
                    self._awaiting.add(issued.result.seq)
                outcomes.append(f"#{issued.result.seq}")
            else:
                outcomes.append("journalled")
        queued = outcomes.count("journalled")
        if queued:
            self.command_line.feedback(
                f"{action.summary}: journalled, sends when the backend is reachable", error=True
            )
        else:
            self.command_line.feedback(f"done: {action.summary} ({' '.join(outcomes)})", ok=True)
        self._refresh_status()

    def _journal_entry_fix(self, action: grammar.JournalAction) -> None:
        """Deal with a rejected journal entry: set it aside, or send it again."""
        rejected = self.client.rejected()
        if action.number is None or action.number > len(rejected):
            self.command_line.feedback(
                f"no rejected entry {action.number}: {len(rejected)} rejected (F7 lists them)",
                error=True,
            )
            return
        entry = rejected[action.number - 1]
        assert self.client.journal is not None
        # The entry stays on file as dismissed either way: the record of what was
        # refused and what the operator did about it is never lost.
        self.client.journal.dismiss(entry.key)
        self._rejections_reported.add(entry.key)
        if action.action == "retry" and entry.command is None:
            why = entry.problem.detail if entry.problem else "unreadable"
            self.command_line.feedback(
                f"rejected {entry.kind} cannot be retried as stored ({why}); type it again. "
                "Set aside (kept in the journal)",
                error=True,
            )
        elif action.action == "retry":
            # A retry is the operator's fresh decision on the picture as it is now, so
            # it carries a new key and no expected version.
            fields = entry.command.model_dump(
                mode="json", exclude={"idempotency_key", "workstation", "expected_version"}
            )
            self._dispatch(grammar.Dispatch((fields,), f"retry of {entry.kind}"))
        else:
            self.command_line.feedback(
                f"rejected {entry.kind} set aside (kept in the journal)", ok=True
            )
        self._tick()
        if self._detail_mode == "journal" and self.detail.shown:
            self.action_journal()


def _describe_error(error: CommandError) -> str:
    """A refusal as the operator should read it."""
    text = f"refused: {error.detail}"
    if isinstance(error, CommandConflict) and error.changes:
        text += f" | latest: {error.changes[-1]}"
    return text


def lines_text(lines: list[str]) -> Text:
    """Plain lines as one text, never read as markup."""
    return Text("\n".join(lines))
