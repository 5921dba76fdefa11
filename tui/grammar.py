"""The console's command-line grammar: a typed line becomes an action, with no I/O.

The command-line widget is a thin view over three functions: `parse` turns a line into
an `Action` (or a `ParseError` that says what was wrong and where), `complete` offers
what may come next at the end of a line, and `help_text` describes the verbs. All three
read the live picture only through a `ParseContext` of plain data.

A line is ``VERB ARGUMENT...``; the verbs, their aliases and their arguments are the
`VERBS` registry, which also generates usage lines and help. A leading ``:`` is ignored
(k9s style); ``/TEXT`` filters the boards (``/`` alone clears the filter); ``+ TEXT``
adds a note; ``VERB ?`` shows help for the verb; a line that is only an incident
reference selects that incident.

Arguments:

* **REF** is an incident: its full log reference (``0042-27NOV26``, any case), its log
  number (``42`` or ``0042``), or ``#42``. A log number means the newest known incident
  with that number. A full reference the console has not seen (yesterday's incident, to
  reopen) is passed on for the server to check.
* **[REF]**, an optional reference before the other arguments, is taken from the next
  word when that word is a reference (a known incident, or any word in the explicit
  forms ``#99`` and ``0099-27NOV26``, so that a wrong one is reported rather than read as
  something else) and more words remain than the verb's required arguments need (so
  ``grade 1`` grades the selected incident but ``grade 42 1`` grades incident 42). Two
  refinements keep this from misreading ordinary input:

  - before free text (``note``, ``loc``) only an explicit reference counts, the full
    form or ``#42``: ``note 3 males seen`` and ``loc 42 High Street`` are text about the
    selected incident;
  - when an incident is selected, the word is left alone if it fits the first required
    argument and the word after it does not (``grade 1 caller now safe`` grades the
    selected incident 1 with a reason).

  Otherwise the selected incident is meant, and with none selected the line is refused
  with "no incident selected: give a reference".
* **CALLSIGN** matches a known callsign in any case. Multi-word callsigns may be typed
  as words (``arv 1``, longest match wins), quoted (``"ARV 1"``) or run together
  (``arv1``). ``bookon`` alone accepts a callsign nobody knows yet.
* **key=value** fields (``desc="two cars, one injured"``, ``pos=53.80,-1.55``) are
  recognised only for the keys the verb accepts, anywhere after the verb, so a note that
  reads ``x=1`` stays text. A value with spaces is quoted. ``risk`` headings run on
  until the next heading, so there the quotes are optional.
* Free text (notes, reasons, summaries, search text) is the rest of the line exactly as
  typed: quotes, brackets, ``=`` and markup-like text are data, never interpreted.

Errors::

    ValueError
     └── ParseError      the line cannot be read; .message, and .start/.end, the span
                         of the offending text (zero width at the end of the line where
                         something is missing)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from cadterm.protocol.commands import COMMAND_ADAPTER
from cadterm.protocol.domain import (
    Capability,
    Grade,
    LinkRelation,
    SourceChannel,
    UnitState,
    UnitType,
)

from .tokens import (
    FULL_REFERENCE,
    SHORT_REFERENCE,
    Cursor,
    Lexicon,
    ParseError,
    Token,
    closest,
    code_named,
    enum_member,
    is_explicit_reference,
    log_number,
    shown,
    span_of,
    suggest,
    tokenize,
)

__all__ = [
    "VERBS",
    "Acknowledge",
    "Action",
    "Candidate",
    "Completion",
    "Dispatch",
    "Filter",
    "Find",
    "Help",
    "Kind",
    "ParseContext",
    "ParseError",
    "Quit",
    "Recommend",
    "Select",
    "Slot",
    "Verb",
    "complete",
    "help_text",
    "parse",
]


# --------------------------------------------------------------------------- the contract


@dataclass(frozen=True)
class ParseContext:
    """What the parser may know of the live picture, as plain data."""

    selected: str | None
    """Reference of the incident selected on screen, if any."""
    references: Sequence[str]
    """Known incident references, newest last."""
    callsigns: Sequence[str]
    """Known callsigns; some hold spaces (``"ARV 1"``)."""
    incident_types: Mapping[str, str]
    """Opening codes and what they mean. Empty: any single word is accepted."""
    closing_codes: Mapping[str, str]
    """Closing codes and what they mean. Empty: any single word is accepted."""
    recommended: Sequence[str] = ()
    """Callsigns recommended for the selected incident, best first."""


@dataclass(frozen=True)
class Dispatch:
    """Commands to send to the server, in order, each without key or workstation."""

    commands: tuple[dict, ...]
    summary: str


@dataclass(frozen=True)
class Recommend:
    """Show recommended units for an incident, optionally needing capabilities."""

    reference: str
    capabilities: tuple[str, ...]


@dataclass(frozen=True)
class Filter:
    """Filter the boards by text; empty text clears the filter."""

    text: str


@dataclass(frozen=True)
class Find:
    """Search incidents and units for text."""

    text: str


@dataclass(frozen=True)
class Select:
    """Select an incident on screen."""

    reference: str


@dataclass(frozen=True)
class Acknowledge:
    """Acknowledge a unit's emergency alarm, or every visible alarm when None."""

    callsign: str | None


@dataclass(frozen=True)
class Help:
    """Show help for one verb, or for all when None."""

    verb: str | None


@dataclass(frozen=True)
class Quit:
    """Leave the console."""


Action = Dispatch | Recommend | Filter | Find | Select | Acknowledge | Help | Quit


@dataclass(frozen=True)
class Candidate:
    """One completion: the text to insert and a label to show beside it."""

    text: str
    label: str


@dataclass(frozen=True)
class Completion:
    """Candidates to replace ``line[start:]`` with (the UI appends a space)."""

    start: int
    candidates: tuple[Candidate, ...]


# --------------------------------------------------------------------------- vocabulary

_STATE_WORDS = (
    *(state.label.lower() for state in UnitState if state is not UnitState.OFF_DUTY),
    "available",
    "refs",
    "scene",
    "mobile",
    "court",
)


class _Vocabulary(Lexicon):
    """The lexicon of one `ParseContext`, with the context itself; built once per call."""

    def __init__(self, ctx: ParseContext) -> None:
        super().__init__(ctx.references, ctx.callsigns)
        self.ctx = ctx


# --------------------------------------------------------------------------- arguments


class Kind(Enum):
    """What an argument is; decides how it is read and what completes it."""

    REF = "incident reference"
    CALLSIGN = "callsign"
    NEW_CALLSIGN = "new callsign"
    GRADE = "grade"
    INCIDENT_TYPE = "incident type"
    CLOSING_CODE = "closing code"
    STATE = "unit state"
    POSITION = "position"
    TEXT = "text"
    WORDS = "words"
    CAPABILITY = "capability"
    UNIT_TYPE = "unit type"
    VERB = "verb"


#: Kinds that take the rest of the line.
_REST = frozenset({Kind.STATE, Kind.POSITION, Kind.TEXT, Kind.WORDS})


@dataclass(frozen=True)
class Slot:
    """One positional argument of a verb."""

    name: str
    kind: Kind
    optional: bool = False
    many: bool = False
    max_length: int = 4000
    shown_as: str = ""
    """How usage names the argument, when not its name in capitals."""

    @property
    def label(self) -> str:
        """How the argument reads in a usage line: ``[REF]``, ``CALLSIGN...``."""
        text = self.shown_as or self.name.upper()
        text += "..." if self.many or self.kind in _REST - {Kind.POSITION} else ""
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class _Field:
    """A ``key=value`` argument."""

    key: str
    read: Callable[[str, tuple[int, int]], Any]
    help: str
    aliases: tuple[str, ...] = ()


def _too_long(what: str, text: str, limit: int, span: tuple[int, int]) -> None:
    if len(text) > limit:
        raise ParseError(f"{what} is too long ({len(text)} characters; at most {limit})", *span)


def _read_position(text: str, span: tuple[int, int]) -> dict[str, float]:
    """``53.80,-1.55`` (or with a space) as a protocol position."""
    parts = text.replace(",", " ").split()
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise ParseError(
            f"position {shown(text)} is not LAT,LON in decimal degrees, e.g. 53.80,-1.55", *span
        ) from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise ParseError(
            f"position {shown(text)} is off the map: latitude -90..90, longitude -180..180",
            *span,
        )
    return {"lat": lat, "lon": lon}


def _enum_reader(enum: type[Enum], what: str) -> Callable[[str, tuple[int, int]], str]:
    def read(text: str, span: tuple[int, int]) -> str:
        member = enum_member(enum, text)
        if member is None:
            options = [m.value for m in enum]
            raise ParseError(f"unknown {what} {shown(text)} ({suggest(text, options)})", *span)
        return member.value

    return read


def _text_reader(what: str, limit: int) -> Callable[[str, tuple[int, int]], str]:
    def read(text: str, span: tuple[int, int]) -> str:
        if not text.strip():
            raise ParseError(f"{what} is empty", *span)
        _too_long(what, text, limit, span)
        return text

    return read


_FIELDS: dict[str, _Field] = {
    f.key: f
    for f in (
        _Field("desc", _text_reader("description", 4000), "what was reported"),
        _Field("src", _enum_reader(SourceChannel, "source"), "999, 101, online, officer, ..."),
        _Field("caller", _text_reader("caller", 200), "caller's name"),
        _Field("phone", _text_reader("phone", 40), "caller's number"),
        _Field("pos", _read_position, "LAT,LON in decimal degrees"),
        _Field("sector", _text_reader("sector", 40), "sector or beat"),
        _Field("rel", _enum_reader(LinkRelation, "relation"), "related, duplicate_of, ..."),
        _Field("threat", _text_reader("threat", 2000), "THRIVE: threat"),
        _Field("harm", _text_reader("harm", 2000), "THRIVE: harm"),
        _Field("risk", _text_reader("risk", 2000), "THRIVE: risk"),
        _Field(
            "investigation", _text_reader("investigation", 2000), "THRIVE: investigation", ("inv",)
        ),
        _Field(
            "vulnerability", _text_reader("vulnerability", 2000), "THRIVE: vulnerability", ("vul",)
        ),
        _Field("engagement", _text_reader("engagement", 2000), "THRIVE: engagement", ("eng",)),
    )
}
_THRIVE = ("threat", "harm", "risk", "investigation", "vulnerability", "engagement")


# --------------------------------------------------------------------------- readers


def _missing(verb: Verb, slot: Slot, line: str) -> ParseError:
    end = len(line)
    return ParseError(f"{verb.name}: missing {slot.name.upper()} (usage: {verb.usage})", end, end)


def _read_ref(cur: Cursor, vocab: _Vocabulary) -> str:
    (token,) = cur.take()
    found = vocab.reference(token.text)
    if found is not None:
        return found
    if FULL_REFERENCE.fullmatch(token.text):
        return token.text.upper()  # an incident this console has not seen; the server knows
    hint = suggest(token.text, list(reversed(vocab.ctx.references)))
    raise ParseError(f"unknown incident {shown(token.text)} ({hint})", token.start, token.end)


def _read_callsign(cur: Cursor, vocab: _Vocabulary) -> str:
    match = vocab.callsign(cur.tokens, cur.index)
    if match is None:
        token = cur.peek()
        assert token is not None
        hint = suggest(token.text, vocab.ctx.callsigns)
        raise ParseError(f"unknown callsign {shown(token.text)} ({hint})", token.start, token.end)
    cur.take(match[1])
    return match[0]


def _read_new_callsign(cur: Cursor, vocab: _Vocabulary) -> str:
    """A callsign for ``bookon``: known, quoted, or the words before the unit type."""
    known = vocab.callsign(cur.tokens, cur.index)
    first = cur.peek()
    assert first is not None
    if known is not None:
        count = known[1]
    elif first.quoted:
        count = 1
    else:
        later = range(1, cur.remaining)
        count = next((n for n in later if enum_member(UnitType, cur.tokens[cur.index + n].text)), 1)
    taken = cur.take(count)
    callsign = known[0] if known else " ".join(" ".join(t.text for t in taken).split())
    span = span_of(taken)
    if not callsign or not callsign.isprintable():
        raise ParseError(f"callsign {shown(callsign)} must be printable text", *span)
    _too_long("callsign", callsign, 40, span)
    return callsign


def _read_grade(cur: Cursor, vocab: _Vocabulary) -> int:
    (token,) = cur.take()
    text = token.text.strip().lower()
    for grade in Grade:
        if text in (str(grade.value), grade.label.lower(), grade.name.lower()):
            return grade.value
    grades = ", ".join(f"{g.value} {g.label}" for g in Grade)
    raise ParseError(
        f"grade must be 1-5 ({grades}), got {shown(token.text)}", token.start, token.end
    )


def _code_reader(what: str, table: Callable[[ParseContext], Mapping[str, str]]):
    def read(cur: Cursor, vocab: _Vocabulary) -> str:
        (token,) = cur.take()
        codes = table(vocab.ctx)
        found = code_named(codes, token.text)
        if found is None:
            hint = suggest(token.text, list(codes)) if codes else "give one word"
            raise ParseError(f"unknown {what} {shown(token.text)} ({hint})", token.start, token.end)
        _too_long(what, found, 40, (token.start, token.end))
        return found

    return read


def _read_state(cur: Cursor, vocab: _Vocabulary) -> int:
    text, span = cur.rest_words()
    if text.isascii() and text.isdigit():
        if int(text) > UnitState.OFF_DUTY:
            raise ParseError(f"unit state {text} is not an Airwave state (0-11)", *span)
        return int(text)
    try:
        return UnitState.parse(text).value
    except ValueError:
        raise ParseError(
            f"unknown unit state {shown(text)}: give 0-10 or words such as "
            "'available', 'en route', 'at scene', 'refs'",
            *span,
        ) from None


def _read_position_slot(cur: Cursor, vocab: _Vocabulary) -> dict[str, float]:
    return _read_position(*cur.rest_words())


def _read_enum(enum: type[Enum], what: str):
    reader = _enum_reader(enum, what)

    def read(cur: Cursor, vocab: _Vocabulary) -> str:
        (token,) = cur.take()
        return reader(token.text, (token.start, token.end))

    return read


def _read_verb(cur: Cursor, vocab: _Vocabulary) -> str:
    (token,) = cur.take()
    return _verb_named(token).name


_READERS: dict[Kind, Callable[[Cursor, _Vocabulary], Any]] = {
    Kind.REF: _read_ref,
    Kind.CALLSIGN: _read_callsign,
    Kind.NEW_CALLSIGN: _read_new_callsign,
    Kind.GRADE: _read_grade,
    Kind.INCIDENT_TYPE: _code_reader("incident type", lambda ctx: ctx.incident_types),
    Kind.CLOSING_CODE: _code_reader("closing code", lambda ctx: ctx.closing_codes),
    Kind.STATE: _read_state,
    Kind.POSITION: _read_position_slot,
    Kind.CAPABILITY: _read_enum(Capability, "capability"),
    Kind.UNIT_TYPE: _read_enum(UnitType, "unit type"),
    Kind.VERB: _read_verb,
}


def _read_slot(slot: Slot, cur: Cursor, vocab: _Vocabulary) -> tuple[Any, tuple[int, int]]:
    """Read one argument; returns its value and its span."""
    start = cur.peek()
    assert start is not None
    if start.unterminated and slot.kind is not Kind.TEXT:
        cur.take()  # raises: the open quote is the problem, not what it holds
    if slot.kind in (Kind.TEXT, Kind.WORDS):
        text, span = cur.rest_raw() if slot.kind is Kind.TEXT else cur.rest_words()
        text = text.strip()
        _too_long(slot.name, text, slot.max_length, span)
        return text, span
    value = _READERS[slot.kind](cur, vocab)
    end = cur.tokens[cur.index - 1].end
    return value, (start.start, end)


# --------------------------------------------------------------------------- verbs


@dataclass
class _Parsed:
    """A verb's arguments once read, handed to the verb's builder."""

    verb: Verb
    invoked: str
    verb_span: tuple[int, int]
    values: dict[str, Any] = field(default_factory=dict)
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    def error(self, message: str, name: str | None = None) -> ParseError:
        """An error about argument `name` (or the verb itself)."""
        return ParseError(message, *self.spans.get(name or "", self.verb_span))


@dataclass(frozen=True)
class Verb:
    """One command-line verb: its words, arguments, example and how it becomes an action."""

    name: str
    aliases: tuple[str, ...]
    description: str
    example: str
    slots: tuple[Slot, ...]
    build: Callable[[_Parsed], Action]
    fields: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    run_on_fields: bool = False
    """Words after a field's value belong to it (``risk threat=knife seen``)."""

    @property
    def usage(self) -> str:
        """``assign [REF] CALLSIGN...``, generated from the slots and fields."""
        parts = [self.name, *(slot.label for slot in self.slots)]
        parts += [f"[{key}=..]" for key in self.fields]
        return " ".join(parts)

    @property
    def optional_ref(self) -> bool:
        return bool(self.slots) and self.slots[0].kind is Kind.REF and self.slots[0].optional

    @property
    def after_ref(self) -> tuple[Slot, ...]:
        return self.slots[1:] if self.optional_ref else self.slots

    @property
    def field_keys(self) -> dict[str, str]:
        """Every key this verb accepts, aliases included, mapped to the canonical key."""
        keys = {key: key for key in self.fields}
        keys |= {alias: key for key in self.fields for alias in _FIELDS[key].aliases}
        return keys


def _location(p: _Parsed, name: str = "address") -> dict[str, Any]:
    location: dict[str, Any] = {"address": p.values[name]}
    if "pos" in p.fields:
        location["position"] = p.fields["pos"]
    if "sector" in p.fields:
        location["sector"] = p.fields["sector"]
    return location


def _one(command: dict, summary: str) -> Dispatch:
    return Dispatch((command,), summary)


def _build_new(p: _Parsed) -> Action:
    v, f = p.values, p.fields
    command: dict[str, Any] = {
        "type": "create_incident",
        "grade": v["grade"],
        "incident_type": v["type"],
        "location": _location(p, "location"),
    }
    if "desc" in f:
        command["description"] = f["desc"]
    if "src" in f:
        command["source"] = f["src"]
    caller = {k: f[key] for k, key in (("name", "caller"), ("phone", "phone")) if key in f}
    if caller:
        command["caller"] = caller
    return _one(command, f"new grade {v['grade']} {v['type']} at {v['location']}")


def _build_grade(p: _Parsed) -> Action:
    ref, grade = p.values["ref"], p.values["grade"]
    command = {"type": "grade_incident", "reference": ref, "grade": grade}
    if p.values["reason"]:
        command["reason"] = p.values["reason"]
    return _one(command, f"grade {ref} to {grade} {Grade(grade).label}")


def _build_type(p: _Parsed) -> Action:
    ref, code = p.values["ref"], p.values["type"]
    return _one(
        {"type": "retype_incident", "reference": ref, "incident_type": code},
        f"retype {ref} as {code}",
    )


def _build_loc(p: _Parsed) -> Action:
    ref = p.values["ref"]
    return _one(
        {"type": "relocate_incident", "reference": ref, "location": _location(p)},
        f"relocate {ref} to {p.values['address']}",
    )


def _build_risk(p: _Parsed) -> Action:
    ref = p.values["ref"]
    risk = {key: p.fields[key] for key in _THRIVE if key in p.fields}
    if not risk:
        raise p.error("risk: give at least one heading: threat=.. harm=.. risk=.. inv=.. ...")
    return _one(
        {"type": "assess_risk", "reference": ref, "risk": risk},
        f"risk assessment for {ref}: {', '.join(risk)}",
    )


def _build_note(p: _Parsed) -> Action:
    ref = p.values["ref"]
    return _one({"type": "add_note", "reference": ref, "text": p.values["text"]}, f"note on {ref}")


def _build_assign(p: _Parsed) -> Action:
    ref, divert = p.values["ref"], p.verb.name == "divert"
    callsigns = tuple(dict.fromkeys(p.values["callsign"]))
    commands = []
    for callsign in callsigns:
        command = {"type": "assign_unit", "reference": ref, "callsign": callsign}
        commands.append({**command, "divert": True} if divert else command)
    return Dispatch(tuple(commands), f"{p.verb.name} {', '.join(callsigns)} to {ref}")


def _build_unassign(p: _Parsed) -> Action:
    ref, callsign = p.values["ref"], p.values["callsign"]
    command = {"type": "unassign_unit", "reference": ref, "callsign": callsign}
    if p.values["reason"]:
        command["reason"] = p.values["reason"]
    return _one(command, f"stand {callsign} down from {ref}")


def _build_state(p: _Parsed) -> Action:
    callsign, state = p.values["callsign"], UnitState(p.values["state"])
    if state is UnitState.OFF_DUTY:
        raise p.error(f"state 11 (off duty) is set by booking off: use 'off {callsign}'", "state")
    return _one(
        {"type": "set_unit_state", "callsign": callsign, "state": state.value},
        f"{callsign} state {state.value} {state.label}",
    )


def _build_locate(p: _Parsed) -> Action:
    callsign, position = p.values["callsign"], p.values["position"]
    return _one(
        {"type": "locate_unit", "callsign": callsign, "position": position},
        f"{callsign} at {position['lat']:.5f},{position['lon']:.5f}",
    )


def _build_close(p: _Parsed) -> Action:
    ref, code = p.values["ref"], p.values["code"]
    command = {"type": "close_incident", "reference": ref, "closing_code": code}
    if p.values["summary"]:
        command["summary"] = p.values["summary"]
    return _one(command, f"close {ref} as {code}")


def _build_reopen(p: _Parsed) -> Action:
    ref = p.values["ref"]
    return _one(
        {"type": "reopen_incident", "reference": ref, "reason": p.values["reason"]},
        f"reopen {ref}",
    )


def _build_link(p: _Parsed) -> Action:
    ref, other = p.values["ref"], p.values["other"]
    default = LinkRelation.DUPLICATE_OF if p.invoked == "dup" else LinkRelation.RELATED
    relation = p.fields.get("rel", default.value)
    if ref == other:
        raise p.error(f"cannot link {ref} to itself", "other")
    return _one(
        {"type": "link_incidents", "reference": ref, "other": other, "relation": relation},
        f"link {ref} to {other} ({relation})",
    )


def _build_bookon(p: _Parsed) -> Action:
    callsign, unit_type = p.values["callsign"], p.values["type"]
    command: dict[str, Any] = {
        "type": "book_on",
        "callsign": callsign,
        "unit_type": unit_type,
        "capabilities": list(dict.fromkeys(p.values["capability"])),
    }
    if "sector" in p.fields:
        command["home_sector"] = p.fields["sector"]
    if "pos" in p.fields:
        command["position"] = p.fields["pos"]
    return _one(command, f"book on {callsign} ({unit_type})")


def _build_bookoff(p: _Parsed) -> Action:
    callsign = p.values["callsign"]
    return _one({"type": "book_off", "callsign": callsign}, f"book off {callsign}")


def _build_recommend(p: _Parsed) -> Action:
    return Recommend(p.values["ref"], tuple(dict.fromkeys(p.values["capability"])))


_REF = Slot("ref", Kind.REF, optional=True)
_CALLSIGN = Slot("callsign", Kind.CALLSIGN)
_STATE_NOTE = "STATE is 0-10 or words: " + ", ".join(_STATE_WORDS[:12]) + ", ..."
_GRADE_NOTE = "GRADE is " + ", ".join(f"{g.value} {g.label}" for g in Grade) + "."
_TYPE_NOTE = "TYPE is an opening code (Tab lists them), e.g. RTC, BURGLARY, CONCERN."

#: Every verb, in the order help lists them.
VERBS: dict[str, Verb] = {
    verb.name: verb
    for verb in (
        Verb(
            "new",
            ("n", "create"),
            "open a new incident",
            "n 1 rtc 12 High Street, Leeds",
            (
                Slot("grade", Kind.GRADE),
                Slot("type", Kind.INCIDENT_TYPE),
                Slot("location", Kind.WORDS, max_length=500),
            ),
            _build_new,
            fields=("desc", "src", "caller", "phone", "pos", "sector"),
            notes=(
                _GRADE_NOTE,
                _TYPE_NOTE,
                "LOCATION is the other words, in any order with fields.",
            ),
        ),
        Verb(
            "grade",
            ("g",),
            "change an incident's grade",
            "g 42 1 weapon now seen",
            (_REF, Slot("grade", Kind.GRADE), Slot("reason", Kind.TEXT, True, max_length=1000)),
            _build_grade,
            notes=(_GRADE_NOTE,),
        ),
        Verb(
            "type",
            ("ty", "retype"),
            "change an incident's type",
            "ty burglary",
            (_REF, Slot("type", Kind.INCIDENT_TYPE)),
            _build_type,
            notes=(_TYPE_NOTE,),
        ),
        Verb(
            "loc",
            ("relocate", "where"),
            "correct where an incident is",
            "loc 14 High Street sector=LS1",
            (_REF, Slot("address", Kind.WORDS, max_length=500)),
            _build_loc,
            fields=("pos", "sector"),
        ),
        Verb(
            "risk",
            ("thrive",),
            "record the THRIVE risk assessment",
            "risk threat=knife seen harm=high vul=elderly caller",
            (_REF,),
            _build_risk,
            fields=_THRIVE,
            run_on_fields=True,
            notes=("Each heading runs on to the next one; give at least one.",),
        ),
        Verb(
            "note",
            ("nt", "+"),
            "add to an incident's chronology",
            "note suspect left on foot",
            (_REF, Slot("text", Kind.TEXT)),
            _build_note,
            notes=(
                "The text is kept exactly as typed. Before it, only a full reference "
                "or #42 names another incident.",
            ),
        ),
        Verb(
            "assign",
            ("a", "send"),
            "send units to an incident",
            "a AB12 arv 1",
            (_REF, Slot("callsign", Kind.CALLSIGN, many=True)),
            _build_assign,
        ),
        Verb(
            "divert",
            ("dv",),
            "send units committed elsewhere",
            "dv 42 AB12",
            (_REF, Slot("callsign", Kind.CALLSIGN, many=True)),
            _build_assign,
        ),
        Verb(
            "unassign",
            ("ua", "standdown", "sd"),
            "stand a unit down from an incident",
            "sd AB12 not needed",
            (_REF, _CALLSIGN, Slot("reason", Kind.TEXT, True, max_length=1000)),
            _build_unassign,
        ),
        Verb(
            "state",
            ("s", "st"),
            "set a unit's Airwave state",
            "s AB12 at scene",
            (_CALLSIGN, Slot("state", Kind.STATE)),
            _build_state,
            notes=(_STATE_NOTE,),
        ),
        Verb(
            "locate",
            ("pos",),
            "record a unit's position",
            "locate AB12 53.80,-1.55",
            (_CALLSIGN, Slot("position", Kind.POSITION, shown_as="LAT,LON")),
            _build_locate,
        ),
        Verb(
            "close",
            ("cl",),
            "close an incident with a closing code",
            "cl resolved all quiet",
            (_REF, Slot("code", Kind.CLOSING_CODE), Slot("summary", Kind.TEXT, True)),
            _build_close,
            notes=("CODE is a closing code (Tab lists them), e.g. RESOLVED, NFA, ARREST.",),
        ),
        Verb(
            "reopen",
            ("ro",),
            "reopen a closed incident (supervisors)",
            "ro 42 caller rang back",
            (Slot("ref", Kind.REF), Slot("reason", Kind.TEXT)),
            _build_reopen,
        ),
        Verb(
            "link",
            ("ln", "dup"),
            "link two incidents",
            "dup 41",
            (_REF, Slot("other", Kind.REF)),
            _build_link,
            fields=("rel",),
            notes=(
                "rel= is related (link's default), duplicate_of (dup's default: this "
                "incident reports the same as OTHER) or duplicated_by.",
            ),
        ),
        Verb(
            "bookon",
            ("on",),
            "book a unit on duty",
            "on AB99 patrol_car taser first_aid",
            (
                Slot("callsign", Kind.NEW_CALLSIGN),
                Slot("type", Kind.UNIT_TYPE),
                Slot("capability", Kind.CAPABILITY, optional=True, many=True),
            ),
            _build_bookon,
            fields=("sector", "pos"),
            notes=(
                "TYPE: " + ", ".join(t.value for t in UnitType) + ".",
                "CAPABILITY: " + ", ".join(c.value for c in Capability) + ".",
                "A new callsign with spaces is the words before TYPE, or quoted.",
            ),
        ),
        Verb(
            "bookoff",
            ("off",),
            "book a unit off duty",
            "off AB12",
            (_CALLSIGN,),
            _build_bookoff,
        ),
        Verb(
            "recommend",
            ("rec", "r"),
            "recommend units for an incident",
            "rec firearms",
            (_REF, Slot("capability", Kind.CAPABILITY, optional=True, many=True)),
            _build_recommend,
        ),
        Verb(
            "find",
            ("f",),
            "search incidents and units",
            "f high street",
            (Slot("text", Kind.TEXT),),
            lambda p: Find(p.values["text"]),
        ),
        Verb(
            "filter",
            ("/",),
            "filter the boards; /TEXT for short, / alone clears",
            "/leeds",
            (Slot("text", Kind.TEXT, optional=True),),
            lambda p: Filter(p.values["text"] or ""),
        ),
        Verb(
            "ack",
            ("acknowledge", "k"),
            "acknowledge an emergency alarm (all if no callsign)",
            "ack AB12",
            (Slot("callsign", Kind.CALLSIGN, optional=True),),
            lambda p: Acknowledge(p.values["callsign"]),
        ),
        Verb(
            "help",
            ("?", "h"),
            "show help; VERB ? for one verb",
            "? assign",
            (Slot("verb", Kind.VERB, optional=True),),
            lambda p: Help(p.values["verb"]),
        ),
        Verb("quit", ("q", "exit"), "leave the console", "q", (), lambda p: Quit()),
    )
}

_BY_WORD: dict[str, Verb] = {
    word: verb for verb in VERBS.values() for word in (verb.name, *verb.aliases)
}
#: Verbs that may be glued to their argument: ``/leeds``, ``+caller called back``.
_PREFIX_VERBS = {"/": VERBS["filter"], "+": VERBS["note"]}


def _verb_named(token: Token) -> Verb:
    verb = _BY_WORD.get(token.text.lower())
    if verb is None:
        close = closest(token.text, list(_BY_WORD), 3)
        hint = f"did you mean {', '.join(close)}?" if close else "not a verb"
        raise ParseError(
            f"unknown verb {shown(token.text)} ({hint}; ? for help)", token.start, token.end
        )
    return verb


# --------------------------------------------------------------------------- parsing


def parse(line: str, ctx: ParseContext) -> Action:
    """Read one command line; raises `ParseError` saying what is wrong and where."""
    _check_encodable(line)
    vocab = _Vocabulary(ctx)
    head = _head(line)
    if head.verb is None and not head.args:
        raise ParseError("type a command; ? for help", 0, len(line))
    if head.verb is None:
        first, args = head.args[0], head.args[1:]
        asked = _help_asked(first, args)
        if asked is not None:
            return asked
        selected = None if args else vocab.reference(first.text)
        if selected is not None:
            return Select(selected)
        if not args and SHORT_REFERENCE.fullmatch(first.text):
            hint = suggest(first.text, list(reversed(ctx.references)))
            raise ParseError(f"no incident numbered {first.text} ({hint})", first.start, first.end)
        verb, verb_token = _verb_named(first), first
    else:
        verb, verb_token, args = head.verb, head.verb_token, head.args
    parsed = _parse_arguments(verb, verb_token, args, line, vocab)
    action = verb.build(parsed)
    if isinstance(action, Dispatch):
        _validate(action, parsed)
    return action


def _check_encodable(line: str) -> None:
    """Refuse text no command can carry: lone surrogates, which UTF-8 cannot encode."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as bad:
        raise ParseError("the line holds an invalid character", bad.start, bad.end) from None


@dataclass(frozen=True)
class _Head:
    """A line split after its prompt: a glued prefix verb if any, and the words."""

    verb: Verb | None
    verb_token: Token
    args: list[Token]


def _head(line: str) -> _Head:
    """Skip blanks and a leading ':'; recognise ``/`` and ``+`` glued to their text."""
    index = len(line) - len(line.lstrip())
    if line.startswith(":", index):
        index += 1
        index += len(line[index:]) - len(line[index:].lstrip())
    if index < len(line) and line[index] in _PREFIX_VERBS:
        token = Token(line[index], index, index + 1)
        return _Head(_PREFIX_VERBS[line[index]], token, tokenize(line, index + 1))
    return _Head(None, Token("", index, index), tokenize(line, index))


def _help_asked(first: Token, args: list[Token]) -> Help | None:
    """``assign ?`` or ``assign?``: help for that verb."""
    if len(args) == 1 and args[0].text == "?" and not args[0].quoted:
        return Help(_verb_named(first).name)
    if not args and len(first.text) > 1 and first.text.endswith("?"):
        verb = _BY_WORD.get(first.text[:-1].lower())
        if verb is not None:
            return Help(verb.name)
    return None


def _parse_arguments(
    verb: Verb, verb_token: Token, args: list[Token], line: str, vocab: _Vocabulary
) -> _Parsed:
    """Read fields, then the optional REF, then each positional argument in turn."""
    parsed = _Parsed(verb, verb_token.text.lower(), (verb_token.start, verb_token.end))
    positional = _read_fields(verb, args, parsed)
    cur = Cursor(line, positional)
    if verb.optional_ref:
        parsed.values["ref"] = _optional_ref(verb, cur, vocab, parsed)
    for slot in verb.after_ref:
        if cur.remaining == 0:
            if not slot.optional:
                raise _missing(verb, slot, line)
            parsed.values[slot.name] = [] if slot.many else None
            continue
        if slot.many:
            read = [_read_slot(slot, cur, vocab) for _ in iter(lambda: cur.remaining, 0)]
            parsed.values[slot.name] = [value for value, _ in read]
            parsed.spans[slot.name] = (read[0][1][0], read[-1][1][1])
        else:
            parsed.values[slot.name], parsed.spans[slot.name] = _read_slot(slot, cur, vocab)
    if cur.remaining:
        raise _unexpected(verb, cur.tokens[cur.index :])
    return parsed


def _unexpected(verb: Verb, extra: Sequence[Token]) -> ParseError:
    first = extra[0]
    if "=" in first.text and not first.quoted:
        key = first.text.split("=", 1)[0]
        accepted = ", ".join(f"{k}=" for k in verb.fields) or "none"
        message = f"{verb.name} takes no {key}= (fields: {accepted})"
        return ParseError(message, first.start, first.start + len(key) + 1)
    return ParseError(
        f"unexpected {shown(first.text)} (usage: {verb.usage})", first.start, extra[-1].end
    )


def _field_key(verb: Verb, token: Token) -> str | None:
    """The canonical field `token` sets, if it is ``key=...`` for a key `verb` accepts."""
    if token.quoted or "=" not in token.text:
        return None
    return verb.field_keys.get(token.text.split("=", 1)[0].lower())


def _read_fields(verb: Verb, args: list[Token], parsed: _Parsed) -> list[Token]:
    """Take ``key=value`` words out of `args` into `parsed.fields`; return the rest."""
    if not verb.fields:
        return args
    positional: list[Token] = []
    raw: dict[str, tuple[str, tuple[int, int]]] = {}
    current: str | None = None
    index = 0
    while index < len(args):
        token = args[index]
        index += 1
        key = _field_key(verb, token)
        if key is None and (current is None or not verb.run_on_fields):
            positional.append(token)
            continue
        Cursor("", [token]).take()  # an open quote is an error here
        if key is None:  # a word that runs on from the previous field's value
            text, span = raw[current]
            raw[current] = (f"{text} {token.text}".strip(), (span[0], token.end))
            continue
        if key in raw:
            raise ParseError(f"{key}= is given twice", token.start, token.end)
        value = token.text.split("=", 1)[1]
        span = (token.start, token.end)
        if not value and index < len(args) and _field_key(verb, args[index]) is None:
            (extra,) = Cursor("", [args[index]]).take()  # ``desc= "two cars"``
            value, span = extra.text, (token.start, extra.end)
            index += 1
        raw[key], current = (value, span), key
    for key, (value, span) in raw.items():
        parsed.fields[key] = _FIELDS[key].read(value, span)
        parsed.spans[key] = span
    return positional


def _optional_ref(verb: Verb, cur: Cursor, vocab: _Vocabulary, parsed: _Parsed) -> str:
    """The incident an optional REF names, or the selected one (see the module rules)."""
    if _takes_reference(verb, cur, vocab):
        value, parsed.spans["ref"] = _read_slot(Slot("ref", Kind.REF), cur, vocab)
        return value
    if vocab.ctx.selected is None:
        raise parsed.error("no incident selected: give a reference")
    return vocab.ctx.selected


def _takes_reference(verb: Verb, cur: Cursor, vocab: _Vocabulary) -> bool:
    """Whether the next word is the optional REF. A word in explicit form (``#99``,
    ``0099-27NOV26``) counts even when unknown, so that reading it says so."""
    token = cur.peek()
    if token is None or token.unterminated:
        return False
    explicit = is_explicit_reference(token.text)
    if not explicit and vocab.reference(token.text) is None:
        return False
    required = [slot for slot in verb.after_ref if not slot.optional]
    if cur.remaining <= len(required):
        return False
    if required and required[0].kind in (Kind.TEXT, Kind.WORDS):
        return explicit
    if vocab.ctx.selected is None or not required:
        return True
    return _fits(required[0], cur, vocab, 1) or not _fits(required[0], cur, vocab, 0)


def _fits(slot: Slot, cur: Cursor, vocab: _Vocabulary, ahead: int) -> bool:
    """Whether the words from ``cur.peek(ahead)`` on could be read as `slot`."""
    if cur.peek(ahead) is None:
        return False
    try:
        _read_slot(slot, Cursor(cur.line, cur.tokens, cur.index + ahead), vocab)
    except ParseError:
        return False
    return True


def _validate(action: Dispatch, parsed: _Parsed) -> None:
    """Last guard: every command must be one the protocol accepts."""
    for command in action.commands:
        try:
            COMMAND_ADAPTER.validate_python({**command, "idempotency_key": "x" * 16})
        except ValueError as error:
            problems = error.errors() if hasattr(error, "errors") else [{"msg": str(error)}]
            where = ".".join(str(part) for part in problems[0].get("loc", ())[1:])
            message = f"{parsed.verb.name}: {where + ': ' if where else ''}{problems[0]['msg']}"
            raise parsed.error(message) from None


# --------------------------------------------------------------------------- completion


def complete(line: str, ctx: ParseContext) -> Completion:
    """What may replace the word at the end of `line` (the cursor is at the end)."""
    vocab = _Vocabulary(ctx)
    head = _head(line)
    if head.verb is VERBS["filter"]:
        return Completion(len(line), ())
    tokens = head.args
    last = tokens[-1] if tokens else None
    in_word = last is not None and last.end == len(line)
    in_word = in_word and (last.unterminated or not line[-1].isspace())
    start = last.start if in_word and last else len(line)
    prefix = last.text if in_word and last else ""
    before = tokens[:-1] if in_word else tokens
    if head.verb is None and not before:
        return Completion(start, (*_verb_candidates(prefix), *_ref_candidates(prefix, vocab)))
    verb = head.verb or _BY_WORD.get(before[0].text.lower())
    if verb is None:
        return Completion(start, ())
    args = before if head.verb else before[1:]
    if in_word and last and _field_key(verb, last):
        return Completion(start, _field_value_candidates(last.text))
    return _argument_completion(verb, args, start, prefix, line, vocab)


def _argument_completion(
    verb: Verb, args: list[Token], start: int, prefix: str, line: str, vocab: _Vocabulary
) -> Completion:
    given = {_field_key(verb, t) for t in args} - {None}
    positional = [t for t in args if _field_key(verb, t) is None]
    slots, from_word = _expected(verb, positional, vocab)
    if from_word is not None:
        start, prefix = from_word, line[from_word:]
    exclude = {match[0] for i in range(len(positional)) if (match := vocab.callsign(positional, i))}
    exclude |= {enum_member(Capability, t.text) for t in positional} - {None}
    candidates: list[Candidate] = []
    for slot in slots:
        candidates += _candidates(slot.kind, prefix, vocab, verb, exclude)
    if from_word is None:
        keys = [k for k in verb.fields if k not in given and k.startswith(prefix.lower())]
        candidates += [Candidate(f"{key}=", _FIELDS[key].help) for key in keys]
    return Completion(start, tuple(dict.fromkeys(candidates)))


def _expected(verb: Verb, tokens: list[Token], vocab: _Vocabulary) -> tuple[list[Slot], int | None]:
    """The slots the next word may fill, and where its text starts when earlier words
    already began it (a multi-word callsign or state)."""
    index, later = 0, []
    if verb.optional_ref:
        if not tokens:
            later = [verb.slots[0]]
        elif is_explicit_reference(tokens[0].text) or (
            vocab.reference(tokens[0].text)
            and not (verb.after_ref and verb.after_ref[0].kind in (Kind.TEXT, Kind.WORDS))
        ):
            index = 1
    for slot in verb.after_ref:
        if index == len(tokens):
            return [slot, *later], None
        if slot.kind is Kind.STATE:
            return [slot], tokens[index].start
        if slot.kind in _REST or (slot.many and slot.kind is not Kind.CALLSIGN):
            return ([slot] if slot.many else []), None
        if slot.kind is Kind.NEW_CALLSIGN:
            types = (
                n for n in range(index + 1, len(tokens)) if enum_member(UnitType, tokens[n].text)
            )
            index = next(types, len(tokens))
        elif slot.kind is Kind.CALLSIGN:
            while index < len(tokens):
                match = vocab.callsign(tokens, index)
                if match is None:
                    return [slot], tokens[index].start
                index += match[1]
                if not slot.many:
                    break
            if slot.many:
                return [slot], None
        else:
            index += 1
    return later, None


def _verb_candidates(prefix: str) -> list[Candidate]:
    """Verbs, then aliases, starting with `prefix`; an exact match comes first."""
    word = prefix.lower()
    names = [Candidate(v.name, v.description) for v in VERBS.values() if v.name.startswith(word)]
    aliases = [
        Candidate(alias, f"= {v.name}")
        for v in VERBS.values()
        for alias in v.aliases
        if alias.startswith(word) and alias not in _PREFIX_VERBS
    ]
    found = names + sorted(aliases, key=lambda c: c.text)
    exact = [c for c in found if c.text == word]
    return exact + [c for c in found if c.text != word]


def _ref_candidates(prefix: str, vocab: _Vocabulary, hashed: bool = False) -> list[Candidate]:
    """Known incidents starting with `prefix`, newest first, each as its log number
    (``42``, or ``#42`` before free text) unless a newer incident has that number."""
    word, hashed = prefix.lower(), hashed or prefix.startswith("#")
    found: list[Candidate] = []
    seen: set[int] = set()
    for reference in reversed(vocab.ctx.references):
        number = log_number(reference)
        forms = [reference.lower(), reference.split("-", 1)[0]]
        short = None
        if number is not None:
            forms += [str(number), f"#{number}"]
            if number not in seen:
                seen.add(number)
                short = f"#{number}" if hashed else str(number)
        if any(form.startswith(word) for form in forms):
            label = reference + (" (selected)" if reference == vocab.ctx.selected else "")
            found.append(Candidate(short or reference, label))
    return found


def _callsign_candidates(prefix: str, vocab: _Vocabulary, exclude: set) -> list[Candidate]:
    """Callsigns starting with `prefix`: recommended ones first, then alphabetical."""
    spaced = " ".join(prefix.lstrip("\"'").split()).lower()
    if prefix.endswith(" ") and spaced:
        spaced += " "
    compact = spaced.replace(" ", "")
    recommended = list(dict.fromkeys(c for c in vocab.ctx.recommended if c in vocab.ctx.callsigns))
    others = sorted(set(vocab.ctx.callsigns) - set(recommended), key=str.lower)
    found = []
    for callsign in recommended + others:
        key = " ".join(callsign.split()).lower()
        if callsign in exclude or not (
            key.startswith(spaced) or key.replace(" ", "").startswith(compact)
        ):
            continue
        text = f'"{callsign}"' if any(c.isspace() for c in callsign) else callsign
        found.append(Candidate(text, "recommended" if callsign in recommended else "unit"))
    return found


def _code_candidates(table: Mapping[str, str], prefix: str) -> list[Candidate]:
    """Codes starting with `prefix`, then codes whose meaning mentions it."""
    word = prefix.lower()
    starts = [Candidate(k, v) for k, v in sorted(table.items()) if k.lower().startswith(word)]
    mentions = [
        Candidate(k, v) for k, v in sorted(table.items()) if len(word) > 2 and word in v.lower()
    ]
    return starts + [c for c in mentions if c not in starts]


def _state_candidates(prefix: str) -> list[Candidate]:
    word = " ".join(prefix.split()).lower()
    numbers = [
        Candidate(str(s.value), s.label)
        for s in UnitState
        if s is not UnitState.OFF_DUTY and str(s.value).startswith(word)
    ]
    words = [
        Candidate(w, str(UnitState.parse(w).value))
        for w in _STATE_WORDS
        if word and w.startswith(word)
    ]
    return numbers + words


def _enum_candidates(enum: type[Enum], prefix: str) -> list[Candidate]:
    word = prefix.lower()
    return [
        Candidate(m.value, m.name.replace("_", " ").lower())
        for m in enum
        if m.value.startswith(word)
    ]


def _candidates(
    kind: Kind, prefix: str, vocab: _Vocabulary, verb: Verb, exclude: set
) -> list[Candidate]:
    """Candidates for one kind of argument."""
    ctx = vocab.ctx
    if kind is Kind.REF:
        first = verb.after_ref[0].kind if verb.after_ref else None
        return _ref_candidates(prefix, vocab, hashed=first in (Kind.TEXT, Kind.WORDS))
    if kind is Kind.CALLSIGN:
        return _callsign_candidates(prefix, vocab, exclude)
    if kind is Kind.GRADE:
        return [Candidate(str(g.value), g.label) for g in Grade if str(g.value).startswith(prefix)]
    if kind is Kind.INCIDENT_TYPE:
        return _code_candidates(ctx.incident_types, prefix)
    if kind is Kind.CLOSING_CODE:
        return _code_candidates(ctx.closing_codes, prefix)
    if kind is Kind.STATE:
        return _state_candidates(prefix)
    if kind is Kind.CAPABILITY:
        return [c for c in _enum_candidates(Capability, prefix) if c.text not in exclude]
    if kind is Kind.UNIT_TYPE:
        return _enum_candidates(UnitType, prefix)
    if kind is Kind.VERB:
        return [
            Candidate(v.name, v.description)
            for v in VERBS.values()
            if v.name.startswith(prefix.lower())
        ]
    return []


def _field_value_candidates(word: str) -> tuple[Candidate, ...]:
    """Values for ``src=`` and ``rel=`` as the operator types them."""
    key, _, value = word.partition("=")
    enum = {"src": SourceChannel, "rel": LinkRelation}.get(key.lower())
    if enum is None:
        return ()
    return tuple(
        Candidate(f"{key}={m.value}", m.name.replace("_", " ").lower())
        for m in enum
        if m.value.startswith(value.lower())
    )


# --------------------------------------------------------------------------- help


def help_text(verb: str | None = None) -> list[str]:
    """Help as lines of plain text: every verb, or the details of one (name or alias)."""
    if verb is None:
        return _overview()
    found = _BY_WORD.get(verb.lower())
    if found is None:
        return [f"unknown verb {shown(verb)} ({suggest(verb, list(_BY_WORD))})"]
    return _details(found)


def _overview() -> list[str]:
    lines = ["Commands (a leading ':' is optional; VERB ? for details):", ""]
    for verb in VERBS.values():
        aliases = f" ({', '.join(verb.aliases)})" if verb.aliases else ""
        lines += [f"{verb.name}{aliases}: {verb.description}", f"    {verb.usage}"]
        lines.append(f"    e.g. {verb.example}")
    return [*lines, "", *_GENERAL]


def _details(verb: Verb) -> list[str]:
    lines = [f"{verb.name}: {verb.description}", f"usage: {verb.usage}"]
    if verb.aliases:
        lines.append(f"aliases: {', '.join(verb.aliases)}")
    lines.append(f"example: {verb.example}")
    for key in verb.fields:
        spec = _FIELDS[key]
        also = f" (or {', '.join(a + '=' for a in spec.aliases)})" if spec.aliases else ""
        lines.append(f"  {key}={also}: {spec.help}")
    lines += list(verb.notes)
    if verb.optional_ref:
        lines.append("[REF] may be left out to mean the selected incident.")
    return lines


_GENERAL = (
    "REF is 0042-27NOV26, 42, 0042 or #42 (the newest incident with that number);",
    "  an optional [REF] left out means the selected incident.",
    'Quote text with spaces: "ARV 1", desc="two cars, one injured".',
    "A line that is only a reference selects that incident.",
    "/TEXT filters the boards (/ alone clears); + TEXT adds a note; VERB ? explains VERB.",
)
