"""The command line: a view over the pure grammar, with completion and history.

Tab completes the word at the end from live data (the first candidate, then the next on
each further Tab); Up and Down walk the history; Esc clears the line; Enter submits.
Parsing happens in the app, which knows the picture; this widget only edits text and
shows the outcome (or a precise error) on the line below.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.geometry import Size
from textual.message import Message
from textual.reactive import Reactive
from textual.widgets import Input, Static

from .grammar import Completion, ParseContext, complete
from .safe_text import clean_line, typeable

__all__ = ["CommandInput", "CommandLine"]


class CommandInput(Input):
    """The text field itself."""

    # Input grows its virtual width with every character, and the stock reactive asks
    # for a layout of the whole screen each time: with two big boards on screen that
    # cost ~40 ms a keystroke. The field has a fixed size, so a repaint is enough.
    virtual_size = Reactive(Size(0, 0), layout=False)

    BINDINGS = [
        Binding("tab", "complete", "Complete", show=False, id="command.complete"),
        Binding("up", "history_back", "Previous", show=False, id="command.history_back"),
        Binding("down", "history_forward", "Next", show=False, id="command.history_forward"),
        Binding("escape", "clear", "Clear", show=False, id="command.clear"),
    ]

    def __init__(self, context: Callable[[], ParseContext], **kwargs) -> None:
        super().__init__(**kwargs)
        self._parse_context = context
        self.history: list[str] = []
        self._history_at: int | None = None
        self._cycle: tuple[str, Completion, int] | None = None  # line before Tab, options, index

    def action_complete(self) -> None:
        """Complete the last word; further Tabs cycle through the candidates."""
        if self._cycle is not None and self.value == self._cycle_line():
            before, completion, index = self._cycle
            index = (index + 1) % len(completion.candidates)
        else:
            before = self.value
            completion = complete(before, self._parse_context())
            index = 0
            if not completion.candidates:
                self._cycle = None
                self.app.bell()
                return
        self._cycle = (before, completion, index)
        self.value = self._cycle_line()
        self.cursor_position = len(self.value)

    def _cycle_line(self) -> str:
        assert self._cycle is not None
        before, completion, index = self._cycle
        return before[: completion.start] + completion.candidates[index].text + " "

    def candidates_hint(self) -> str:
        """The candidates being cycled through, the current one first with its label."""
        if self._cycle is None:
            return ""
        _, completion, index = self._cycle
        current = completion.candidates[index]
        others = [c.text for c in completion.candidates if c is not current][:8]
        return f"Tab: {current.text} ({current.label})" + (
            "  next: " + " ".join(others) if others else ""
        )

    def remember(self, line: str) -> None:
        """Add a submitted line to the history."""
        if line and (not self.history or self.history[-1] != line):
            self.history.append(line)
        self._history_at = None
        self._cycle = None

    def action_history_back(self) -> None:
        """Show the previous line from the history."""
        if not self.history:
            return
        at = len(self.history) if self._history_at is None else self._history_at
        self._history_at = max(0, at - 1)
        self.value = self.history[self._history_at]
        self.cursor_position = len(self.value)

    def action_history_forward(self) -> None:
        """Show the next line from the history (or an empty line past the end)."""
        if self._history_at is None:
            return
        self._history_at += 1
        if self._history_at >= len(self.history):
            self._history_at = None
            self.value = ""
        else:
            self.value = self.history[self._history_at]
        self.cursor_position = len(self.value)

    # Textual calls these before Input's own handlers of the same name, which then type
    # the key or insert the paste.

    def _on_key(self, event: events.Key) -> None:
        # Escape and the next key in one read (fast typing over a link with delay) arrive
        # as alt+key: that is "clear the line", then the key, as the dispatcher meant.
        if event.key.startswith("alt+") and event.is_printable:
            self.action_clear()

    def _on_paste(self, event: events.Paste) -> None:
        # A paste may carry controls or bidi overrides that would hide or reorder part of
        # the command on screen: they never reach the line.
        event.text = typeable(event.text)

    def action_clear(self) -> None:
        """Clear the line."""
        self.value = ""
        self._cycle = None
        self._history_at = None


class CommandLine(Vertical):
    """The prompt, the field and the line below it for errors and outcomes."""

    DEFAULT_CSS = """
    CommandLine { height: 2; }
    CommandInput, CommandInput:focus { border: none; height: 1; width: 1fr; padding: 0 1; }
    CommandLine > #command-feedback { height: 1; padding: 0 1; color: $muted; }
    CommandLine > #command-feedback.-error { color: $error-text; text-style: bold; }
    CommandLine > #command-feedback.-ok { color: $live; }
    """

    class Submitted(Message):
        """The operator pressed Enter on a line."""

        def __init__(self, line: str) -> None:
            super().__init__()
            self.line = line

    def __init__(self, context: Callable[[], ParseContext], **kwargs) -> None:
        super().__init__(**kwargs)
        self._parse_context = context

    def compose(self) -> ComposeResult:
        yield CommandInput(
            self._parse_context, placeholder="type a command (? for help)", id="command-input"
        )
        yield Static("", id="command-feedback")

    @property
    def input(self) -> CommandInput:
        """The text field."""
        return self.query_one(CommandInput)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        line = event.value
        self.input.remember(line.strip())
        self.input.value = ""
        self.post_message(self.Submitted(line))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        hint = self.input.candidates_hint()
        if hint:
            self.feedback(hint)

    def feedback(self, message: str, *, error: bool = False, ok: bool = False) -> None:
        """Show one line under the field: an error, an outcome, or a hint."""
        widget = self.query_one("#command-feedback", Static)
        widget.set_class(error, "-error")
        widget.set_class(ok, "-ok")
        widget.update(Text(clean_line(message)), layout=False)  # one fixed line

    def show_error(self, line: str, message: str, start: int, end: int) -> None:
        """Show a parse error, pointing at the offending part of the line."""
        where = line[start:end] if 0 <= start < end <= len(line) else ""
        self.feedback(f"{message}" + (f"  <- '{where}'" if where else ""), error=True)
        self.input.value = line
        # At the end, so what is typed next goes after the line, not into the word the
        # pointer names (Escape clears the line, Tab completes at the end).
        self.input.cursor_position = len(line)
