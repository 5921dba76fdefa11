"""The triage queue: online reports waiting for a call handler.

Reports come from a force's website (web forms and live chat) through the intake API
and wait in the picture until someone deals with them. The queue lists them oldest
first; the one selected is shown in full below the list. ``c`` (or Enter) asks for
``GRADE TYPE [LOCATION]`` and creates an incident from the report; ``x`` asks for a
reason and closes it; Escape backs out of the prompt, then out of the queue.

Everything in a report is the public's words, stored as the website sent them: it is
shown only through `safe_text` (control characters as visible stand-ins, markup as
typed, never interpreted).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import ValidationError
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from cadterm.domain.timers import format_age
from cadterm.protocol.domain import Report, ReportChannel, TriageOutcome
from cadterm.protocol.drafts import CommandDraft, draft
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import sortable_time

from .safe_text import clean, clean_line, fit

__all__ = ["TriageQueue", "read_creation", "report_line", "report_text"]

_CHANNEL = {ReportChannel.WEB_FORM: "WEB", ReportChannel.CHAT: "CHAT"}


def report_line(report: Report, now: datetime, width: int) -> Text:
    """One line of the queue: id, channel, age, where, and the start of the words."""
    age = format_age(now - report.received_at)
    head = f"{report.id:<8} {_CHANNEL[report.channel]:<4} {age:>5}  "
    where = fit(clean_line(report.location or "-"), 24)
    words = clean_line(report.words())
    rest = max(8, width - len(head) - 26)
    return Text(f"{head}{where}  {fit(words, rest)}", no_wrap=True)


def report_text(report: Report, now: datetime) -> Text:
    """The whole report, neutralised: what a call handler reads before deciding."""
    out = Text()
    received = report.received_at.astimezone().strftime("%H:%M")
    channel = "web form" if report.channel == ReportChannel.WEB_FORM else "chat"
    out.append(
        f"{report.id}  {channel}, received {received} "
        f"({format_age(now - report.received_at)} ago) from {clean_line(report.operator)}",
        style="bold",
    )
    if report.website_reference:
        out.append(f"  website ref {clean_line(report.website_reference)}")
    out.append("\n")
    reporter = report.reporter
    if reporter is not None:
        bits = [clean_line(x) for x in (reporter.name, reporter.phone, reporter.relationship) if x]
        if bits:
            out.append(f"Reporter: {', '.join(bits)}\n")
    out.append(f"Where: {clean_line(report.location) if report.location else 'not given'}\n")
    if report.channel == ReportChannel.CHAT:
        for line in report.transcript:
            at = f"{line.at.astimezone():%H:%M} " if line.at is not None else ""
            out.append(f"{at}{clean_line(line.sender)}: ", style="bold")
            out.append(f"{clean(line.text)}\n")
    else:
        out.append(f"{clean(report.text)}\n")
    return out


def read_creation(report: Report, answer: str) -> CommandDraft:
    """The `triage_report` draft for ``GRADE TYPE [LOCATION]`` typed about `report`.

    The location defaults to where the reporter said. Raises `ValueError` saying what
    is wrong, in the words the prompt uses.
    """
    words = answer.split()
    if len(words) < 2:
        raise ValueError("give GRADE TYPE [LOCATION], e.g. '3 THEFT 12 High Street'")
    grade, incident_type, *place = words
    if not (grade.isascii() and grade.isdigit() and 1 <= int(grade) <= 5):
        raise ValueError(f"grade is 1 to 5, not {grade!r}")
    address = " ".join(place) or (clean_line(report.location).strip() if report.location else "")
    if not address:
        raise ValueError("the report says no location: give one after the type")
    return _draft(
        report=report.id,
        outcome=TriageOutcome.CREATED_INCIDENT.value,
        grade=int(grade),
        incident_type=incident_type,
        location={"address": address},
    )


def read_closure(report: Report, reason: str) -> CommandDraft:
    """The `triage_report` draft closing `report` with `reason`."""
    if not reason.strip():
        raise ValueError("closing a report needs a reason")
    return _draft(report=report.id, outcome=TriageOutcome.CLOSED.value, reason=reason.strip())


def _draft(**fields: object) -> CommandDraft:
    try:
        return draft("triage_report", **fields)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ValueError(f"{where}: {first['msg']}" if where else first["msg"]) from None


class TriageQueue(Vertical):
    """The waiting online reports, the selected one in full, and a prompt to deal with it."""

    class Decided(Message):
        """The call handler decided about a report: send `command`."""

        def __init__(self, command: CommandDraft, summary: str) -> None:
            super().__init__()
            self.command = command
            self.summary = summary

    class Closed(Message):
        """Escape: back to the boards."""

    BINDINGS = [
        Binding("escape", "back", "Back", show=False, id="triage.back"),
        Binding("c,enter", "create", "Create incident", show=False, id="triage.create"),
        Binding("x", "close_report", "Close report", show=False, id="triage.close"),
    ]

    DEFAULT_CSS = """
    TriageQueue > #tq-title { height: 1; background: $panel; text-style: bold; }
    TriageQueue > #tq-list { height: 2fr; border: none; padding: 0; }
    TriageQueue > #tq-list > .option-list--option-highlighted {
        background: $cursor-bg; color: $cursor-fg; text-style: bold;
    }
    TriageQueue > #tq-list:nocolor > .option-list--option-highlighted {
        text-style: bold underline;
    }
    TriageQueue > #tq-report { height: 3fr; border-top: hkey $panel; }
    TriageQueue > #tq-prompt { display: none; height: 1; border: none; padding: 0; }
    TriageQueue > #tq-prompt.-asking { display: block; }
    TriageQueue > #tq-error { height: auto; }
    """

    def __init__(
        self,
        state: Callable[[], DispatchState],
        clock: Callable[[], datetime],
        *,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self._state = state
        self._clock = clock
        self._listed: list[str] = []
        self._asking: str | None = None  # "create" or "close" while the prompt is open

    def compose(self) -> ComposeResult:
        yield Static(id="tq-title")
        yield OptionList(id="tq-list")
        with VerticalScroll(id="tq-report"):
            yield Static(id="tq-text")
        yield Static("", id="tq-error")
        # The prompt's Input is mounted the first time it is needed: mounted with the
        # screen, ahead of the command line, Input's own styles would load after the
        # command line's and override them.

    @property
    def selected(self) -> Report | None:
        """The report under the cursor, if it is still waiting."""
        option = self.query_one(OptionList).highlighted_option
        if option is None or option.id is None:
            return None
        return self._state().reports.get(option.id)

    def focus_list(self) -> None:
        """Put the keyboard on the list of reports."""
        self.query_one(OptionList).focus()

    def refresh_queue(self) -> None:
        """Redraw from the picture: new reports appear, triaged ones go."""
        reports = sorted(
            self._state().reports.values(), key=lambda r: (sortable_time(r.received_at), r.id)
        )
        now = self._clock()
        count = len(reports)
        self.query_one("#tq-title", Static).update(
            Text(
                f"TRIAGE QUEUE  {count} online report{'s' if count != 1 else ''} waiting   "
                "c: create incident  x: close  Esc: back",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
        width = max(40, self.size.width - 2)
        order = [r.id for r in reports]
        options = [Option(report_line(r, now, width), id=r.id) for r in reports]
        option_list = self.query_one(OptionList)
        if order == self._listed:
            for option in options:
                option_list.replace_option_prompt(option.id or "", option.prompt)
        else:
            kept = option_list.highlighted_option
            keep = kept.id if kept is not None else None
            self._listed = order
            option_list.clear_options()
            option_list.add_options(options)
            if options:
                option_list.highlighted = order.index(keep) if keep in order else 0
        self._show_selected()

    def _show_selected(self) -> None:
        report = self.selected
        text = (
            report_text(report, self._clock())
            if report is not None
            else Text("No online reports waiting.")
        )
        self.query_one("#tq-text", Static).update(text)

    def on_option_list_option_highlighted(self, message: OptionList.OptionHighlighted) -> None:
        message.stop()
        self._show_selected()

    async def on_option_list_option_selected(self, message: OptionList.OptionSelected) -> None:
        message.stop()
        await self.action_create()

    # --- the prompt -------------------------------------------------------------------

    async def _ask(self, what: str, placeholder: str, value: str = "") -> None:
        report = self.selected
        if report is None:
            self._say("no report selected")
            return
        self._asking = what
        found = self.query("#tq-prompt")
        if found:
            prompt = found.first(Input)
        else:
            prompt = Input(id="tq-prompt", compact=True)
            await self.mount(prompt)
        prompt.placeholder = placeholder
        prompt.value = value
        prompt.add_class("-asking")
        prompt.focus()
        if what == "create":
            self._say(f"incident from {report.id}: GRADE TYPE [LOCATION], Enter sends, Esc cancels")
        else:
            self._say(
                f"close {report.id} without an incident: the reason, Enter sends, Esc cancels"
            )

    async def action_create(self) -> None:
        """Ask for the grade and type (and the location) of the incident to create."""
        report = self.selected
        where = (
            clean_line(report.location).strip() if report is not None and report.location else ""
        )
        await self._ask(
            "create", "GRADE TYPE [LOCATION], e.g. 3 THEFT", f"3 CONCERN {where}".rstrip()
        )

    async def action_close_report(self) -> None:
        """Ask for the reason to close the report with."""
        await self._ask("close", "why no incident: the reason")

    def action_back(self) -> None:
        """Out of the prompt; out of the queue when no prompt is open."""
        if self._asking is not None:
            self._end_prompt()
            return
        self.post_message(self.Closed())

    def _end_prompt(self) -> None:
        self._asking = None
        for prompt in self.query("#tq-prompt"):
            prompt.remove_class("-asking")
        self.focus_list()

    def _say(self, words: str) -> None:
        self.query_one("#tq-error", Static).update(Text(clean_line(words)))

    def on_input_submitted(self, message: Input.Submitted) -> None:
        message.stop()
        report = self.selected
        if report is None or self._asking is None:
            self._say("that report has been dealt with already")
            self._end_prompt()
            return
        try:
            if self._asking == "create":
                command = read_creation(report, message.value)
                summary = (
                    f"incident from {report.id}: grade {command.grade} "  # type: ignore[attr-defined]
                    f"{command.incident_type}"  # type: ignore[attr-defined]
                )
            else:
                command = read_closure(report, message.value)
                summary = f"close {report.id}"
        except ValueError as error:
            self._say(str(error))
            return
        self._end_prompt()
        self._say(f"sending: {summary} (the outcome shows on the command line)")
        self.post_message(self.Decided(command, summary))
