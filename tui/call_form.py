"""The call form: a call handler's questions in order, over the whole screen.

Opened by F10 or the ``call`` verb. One row per field (caller, phone, location, type,
what happened, the six THRIVE headings, grade), keyboard only:

- Enter or Down goes to the next field, Shift+Tab or Up to the previous one; Enter on
  the grade (or on the reason, when one is due) sends the call. F10 sends at once.
- Tab completes the location from the gazetteer and the type from the opening codes
  (again for the next candidate); on other fields it moves on, as Enter does.
- As the form fills, the grade the force's rules suggest is shown with its reasons, and
  the open incidents the call may repeat (same address, within 200 m, or the same
  caller's phone). Ctrl+L adds this call to the one marked ``>`` instead of opening a new
  incident; Ctrl+T marks the next.
- Escape closes the form and keeps the answers (F10 brings them back); Ctrl+N clears it
  for a new call.

Every row is one line, so the whole form fits 80x24. What the public said is shown as
plain text (never markup) with control characters replaced, and a paste loses them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from rich.text import Text
from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Label, Static

from cadterm.domain.duplicates import DuplicateOffer, DuplicatePolicy, likely_duplicates
from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.grading import GradingRules
from cadterm.protocol.fold import DispatchState

from .call_draft import FIELDS, CallAnswers, CallFormError
from .grammar import Dispatch
from .incident_queue import short_reference
from .safe_text import clean_line, fit, typeable

__all__ = ["CallForm", "CallFormContext"]

_ORDER = [f.key for f in FIELDS]
_KEYS = "Enter next  Tab complete  F10 send  ^L add to >  ^T next  Esc keep  ^N new"


@dataclass(frozen=True)
class CallFormContext:
    """What the form needs of the console: rules, codes, places, the picture, a clock,
    and how to send (the command line's own way, so the outcome shows there)."""

    rules: GradingRules
    incident_types: Mapping[str, str]
    places: Callable[[], Gazetteer | None]
    state: Callable[[], DispatchState]
    clock: Callable[[], datetime]
    send: Callable[[Dispatch], None]
    duplicates: DuplicatePolicy = field(default_factory=DuplicatePolicy)


class CallField(Input):
    """One answer: pastes lose control characters; Escape and Enter belong to the form."""

    def _on_paste(self, event: events.Paste) -> None:
        event.text = typeable(event.text)


class CallForm(Screen[None]):
    """The call form screen; see the module notes."""

    DEFAULT_CSS = """
    CallForm { layout: vertical; padding: 0 1; }
    CallForm > #call-title { height: 1; text-style: bold; }
    CallForm .call-row { height: 1; }
    CallForm .call-row > Label { width: 12; color: $text-muted; }
    CallForm .call-row.-focus > Label { color: $text; text-style: bold reverse; }
    CallForm .call-row > CallField, CallForm .call-row > CallField:focus {
        border: none; height: 1; width: 1fr; padding: 0 1;
    }
    CallForm CallField > .input--placeholder { text-style: italic; }
    CallForm #row-reason { display: none; }
    CallForm.-override #row-reason { display: block; }
    CallForm > #call-hint { height: 1; color: $text-muted; }
    CallForm > #call-guidance { height: auto; max-height: 2; }
    CallForm > #call-duplicates { height: auto; max-height: 4; }
    CallForm > #call-keys { height: 1; color: $text-muted; }
    CallForm > #call-error { height: 1; }
    CallForm > #call-error.-error { color: $error-text; text-style: bold; }
    """

    # Enter is the form's, not each field's: Input would post a message and move on only
    # once it was handled, after keys already typed ahead had gone into the old field.
    BINDINGS = [
        Binding("enter", "enter", "Next or send", show=False, priority=True, id="call.enter"),
        Binding("tab", "tab", "Complete or next", show=False, priority=True, id="call.tab"),
        Binding("shift+tab,up", "step(-1)", show=False, priority=True, id="call.previous"),
        Binding("down", "step(1)", "Next field", show=False, priority=True, id="call.next"),
        Binding("f10", "send", "Send the call", show=False, priority=True, id="call.send"),
        Binding("escape", "keep", "Close, kept", show=False, priority=True, id="call.keep"),
        Binding("ctrl+l", "add_to_offer", show=False, id="call.add_to_offer"),
        Binding("ctrl+t", "next_offer", show=False, id="call.next_offer"),
        Binding("ctrl+n", "clear", "New call", show=False, priority=True, id="call.clear"),
    ]

    def __init__(self, answers: CallAnswers, context: CallFormContext) -> None:
        super().__init__(id="call-form")
        self.answers = answers
        self.context = context
        self.offers: list[DuplicateOffer] = []
        self.marked: str | None = None  # the reference marked >, kept as the list changes
        self._cycle: tuple[str, str, list[str], int] | None = None  # key, before, options, at

    def compose(self) -> ComposeResult:
        yield Static("NEW CALL", id="call-title")
        for spec in FIELDS:
            with Horizontal(classes="call-row", id=f"row-{spec.key}"):
                yield Label(spec.label)
                yield CallField(
                    self.answers.values.get(spec.key, ""),
                    # In brackets: with no colour, a prompt must not read as an answer.
                    placeholder=f"({spec.prompt})",
                    max_length=spec.max_length,
                    id=f"call-{spec.key}",
                )
        yield Static("", id="call-hint")
        yield Static("", id="call-guidance")
        yield Static("", id="call-duplicates")
        yield Static(_KEYS, id="call-keys")
        yield Static("", id="call-error")

    def on_mount(self) -> None:
        first = next((k for k in _ORDER if not self.answers.get(k)), _ORDER[0])
        self._go(first)
        self.refresh_guidance()
        self.refresh_duplicates()

    # --- fields ------------------------------------------------------------------------

    def field(self, key: str) -> CallField:
        """The input of field `key`."""
        return self.query_one(f"#call-{key}", CallField)

    @property
    def focused_key(self) -> str | None:
        """The key of the field with the focus."""
        focused = self.focused
        if isinstance(focused, CallField) and focused.id:
            return focused.id.removeprefix("call-")
        return None

    def _keys_shown(self) -> list[str]:
        return [k for k in _ORDER if k != "reason" or self.has_class("-override")]

    def _go(self, key: str) -> None:
        # At once, not as `focus()` does on the next turn: the next key typed ahead
        # belongs to the field moved to.
        self.set_focus(self.field(key))

    @on(events.DescendantFocus)
    def _focus_moved(self, event: events.DescendantFocus) -> None:
        for row in self.query(".call-row"):
            row.set_class(row.id == f"row-{self.focused_key}", "-focus")
        self.refresh_hint()

    @on(Input.Changed)
    def _changed(self, event: Input.Changed) -> None:
        event.stop()
        key = (event.input.id or "").removeprefix("call-")
        self.answers.values[key] = event.value
        if self._cycle is not None and self._cycle[0] == key and event.value in self._cycle[2]:
            pass  # a completion being cycled: keep the cycle
        else:
            self._cycle = None
        self.refresh_guidance()
        if key in ("location", "phone", "type"):
            self.refresh_duplicates()
        self.refresh_hint()
        self.say("")

    def _collect(self) -> None:
        """Every answer as its field holds it now: a key typed ahead of Enter or F10 is in
        the field, though its change message may not have been handled yet."""
        for spec in FIELDS:
            self.answers.values[spec.key] = self.field(spec.key).value
        self.refresh_guidance()

    def action_enter(self) -> None:
        """The next field; on the last one, send the call."""
        shown = self._keys_shown()
        key = self.focused_key
        if key is None or key == shown[-1]:
            self.action_send()
        else:
            self._go(shown[shown.index(key) + 1])

    def action_step(self, by: int) -> None:
        """Move to the next (1) or previous (-1) field."""
        shown = self._keys_shown()
        key = self.focused_key
        at = shown.index(key) if key in shown else 0
        self._go(shown[max(0, min(len(shown) - 1, at + by))])

    def _when_typed(self, then: Callable[[], None]) -> None:
        """Run `then` once every field has taken the keys already sent to it.

        A binding runs as its key is read, but the keys before it go to the field as
        messages: typed ahead in one burst ("37 Gas" Tab, "knife" F10), they are not in
        the field yet. Each field runs the callback after its pending keys."""
        fields = list(self.query(CallField))
        left = {id(widget) for widget in fields}

        def taken(widget: CallField) -> None:
            left.discard(id(widget))
            if not left:
                then()

        for widget in fields:
            widget.call_later(taken, widget)

    def action_tab(self) -> None:
        """Complete the location or the type; elsewhere, the next field."""
        key = self.focused_key
        if key not in ("location", "type"):
            self.action_step(1)
            return
        self.field(key).call_later(self._complete, key)

    def _complete(self, key: str) -> None:
        """Complete field `key` (Tab); again for the next candidate."""
        widget = self.field(key)
        if self._cycle is not None and self._cycle[0] == key and widget.value in self._cycle[2]:
            _, before, options, at = self._cycle
            at = (at + 1) % len(options)
        else:
            before, at = widget.value, 0
            options = self._candidates(key, before)
            if options and all(option == before for option in options):
                if self.focused_key == key:
                    self.action_step(1)  # already complete: on to the next row, as Enter
                return
            if not options:
                self.say(f"nothing to complete for {clean_line(before)!r}", error=True)
                return
        self._cycle = (key, before, options, at)
        widget.value = options[at]
        widget.cursor_position = len(widget.value)

    def _candidates(self, key: str, prefix: str) -> list[str]:
        if key == "type":
            word = prefix.strip().upper()
            return sorted(code for code in self.context.incident_types if code.startswith(word))
        places = self.context.places()
        return places.complete(prefix, 5) if places is not None else []

    # --- what the form shows -----------------------------------------------------------

    def refresh_hint(self) -> None:
        """The line under the fields: completions or the match for the field in hand."""
        key = self.focused_key
        value = self.answers.get(key or "")
        hint = ""
        if key == "type":
            codes = self._candidates("type", value)[:4]
            hint = "  ".join(f"{c} {self.context.incident_types[c]}" for c in codes)
            if value.upper() in self.context.incident_types:
                hint = f"{value.upper()}: {self.context.incident_types[value.upper()]}"
        elif key == "location" and value:
            places = self.context.places()
            if places is None:
                hint = "no gazetteer: the location goes as typed"
            else:
                found = places.match(value)
                if found is not None:
                    hint = f"found: {found.address} ({found.sector or 'no sector'})"
                else:
                    options = places.complete(value, 3)
                    hint = "Tab: " + " | ".join(options) if options else "not in the gazetteer"
        self.query_one("#call-hint", Static).update(Text(clean_line(hint)))

    def refresh_guidance(self) -> None:
        """The suggested grade and its reasons; the reason row when it is overridden."""
        guidance = self.answers.guidance(self.context.rules)
        typed, suggested = self.answers.chosen_grade(self.context.rules)
        overriding = self.answers.overrides(self.context.rules)
        self.set_class(overriding, "-override")
        line = Text("Grade: ", style="bold")
        line.append(clean_line(guidance.summary))
        if overriding and typed is not None:
            line.append(f"  OVERRIDE to {int(typed)}: say why", style="bold")
        self.query_one("#call-guidance", Static).update(line)
        self.field("grade").placeholder = f"(Enter takes the suggested {int(suggested)})"

    def refresh_duplicates(self) -> None:
        """The open incidents this call may repeat, the marked one with ``>``.

        The mark stays on the incident it is on while the list is re-ranked (a new
        incident arriving, another answer typed); it goes to the first only when the
        marked one drops off the list."""
        context = self.context
        call = self.answers.new_call(context.clock(), context.places(), context.incident_types)
        incidents = context.state().incidents.values()
        self.offers = likely_duplicates(call, incidents, context.duplicates)[:3]
        references = [offer.reference for offer in self.offers]
        if self.marked not in references:
            self.marked = references[0] if references else None
        text = Text()
        if self.offers:
            text.append("Possible duplicates (^L add this call to >, ^T next):", style="bold")
        state = self.context.state()
        for offer in self.offers:
            incident = state.incidents[offer.reference]
            mark = ">" if offer.reference == self.marked else " "
            line = (
                f"{mark} {short_reference(offer.reference)} {incident.incident_type} "
                f"{clean_line(incident.location.address)[:30]}: {offer.summary}"
            )
            # One row each, cut to the screen: all three stay in sight at 80 columns.
            text.append("\n" + fit(line, max(20, self.size.width - 2)).rstrip())
        self.query_one("#call-duplicates", Static).update(text)

    def say(self, message: str, *, error: bool = False) -> None:
        """One line at the foot of the form: what is wrong, or nothing."""
        widget = self.query_one("#call-error", Static)
        widget.set_class(error, "-error")
        widget.update(Text(("! " if error else "") + clean_line(message)))

    # --- actions -----------------------------------------------------------------------

    def action_send(self) -> None:
        """Send the call as one command, once the keys typed before are in."""
        self._when_typed(self._send)

    def _send(self) -> None:
        """Send the call as one command; what is missing is said, at its field."""
        if not self.is_active:
            return  # sent or closed meanwhile (F10 pressed twice)
        self._collect()
        try:
            action = self.answers.dispatch(
                self.context.rules, self.context.incident_types, self.context.places()
            )
        except CallFormError as error:
            self.say(error.message, error=True)
            if error.key == "reason":
                self.set_class(True, "-override")
            self._go(error.key)
            self.app.bell()
            return
        self.context.send(action)
        self.answers.values.clear()
        self.dismiss()

    def action_add_to_offer(self) -> None:
        """Record this call on the marked open incident, once the keys typed are in."""
        self._when_typed(self._add_to_offer)

    def _add_to_offer(self) -> None:
        """Record this call on the marked open incident instead of opening a new one."""
        if not self.is_active:
            return
        self._collect()
        if not self.offers:
            self.say("no possible duplicate to add this call to", error=True)
            return
        reference = self.marked or self.offers[0].reference
        self.context.send(self.answers.further_call(reference))
        self.answers.values.clear()
        self.dismiss()

    def action_next_offer(self) -> None:
        """Mark the next possible duplicate."""
        if self.offers:
            references = [offer.reference for offer in self.offers]
            at = references.index(self.marked) if self.marked in references else -1
            self.marked = references[(at + 1) % len(references)]
            self.refresh_duplicates()

    def action_keep(self) -> None:
        """Close the form; the answers stay for the next F10."""
        self._when_typed(self._keep)

    def _keep(self) -> None:
        if self.is_active:
            self._collect()
            self.dismiss()

    def action_clear(self) -> None:
        """Clear every answer, for a new call."""
        self.answers.values.clear()
        for spec in FIELDS:
            self.field(spec.key).value = ""
        self._go(_ORDER[0])
