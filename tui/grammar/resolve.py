"""What an argument's words name: the kinds of argument, and how each is read.

The grammar's middle layer, between the words of `tokens` and the verbs of `verbs`. A
`ParseContext` is the live picture as plain data; a `Vocabulary` looks words up in it.
A `Kind` says what an argument is and a `Slot` places one in a verb; `READERS` turns the
words at a `Cursor` into an argument's value (an incident reference, a callsign, a grade,
an opening or closing code, a unit state, a position, a capability or unit type), and
`FIELDS` reads the value of each ``key=value`` field. A reader returns the value or
raises `ParseError` over the words at fault, naming close known alternatives if any.

Errors::

    ValueError
     └── ParseError      from every reader: .message, .start/.end
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cadterm.domain.gazetteer import Gazetteer
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
    Cursor,
    Lexicon,
    ParseError,
    Token,
    code_named,
    enum_member,
    shown,
    span_of,
    suggest,
)

__all__ = [
    "FIELDS",
    "READERS",
    "REST",
    "STATE_WORDS",
    "THRIVE",
    "Field",
    "Kind",
    "ParseContext",
    "Slot",
    "Vocabulary",
    "too_long",
]


# --------------------------------------------------------------------------- the live picture


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
    places: Gazetteer | None = None
    """The force's streets and places, when the console has loaded them."""


STATE_WORDS = (
    *(state.label.lower() for state in UnitState if state is not UnitState.OFF_DUTY),
    "available",
    "refs",
    "scene",
    "mobile",
    "court",
)


class Vocabulary(Lexicon):
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
REST = frozenset({Kind.STATE, Kind.POSITION, Kind.TEXT, Kind.WORDS})


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
    place: bool = False
    """A location: completed from the gazetteer, and matched against it when sent."""

    @property
    def label(self) -> str:
        """How the argument reads in a usage line: ``[REF]``, ``CALLSIGN...``."""
        text = self.shown_as or self.name.upper()
        text += "..." if self.many or self.kind in REST - {Kind.POSITION} else ""
        return f"[{text}]" if self.optional else text


@dataclass(frozen=True)
class Field:
    """A ``key=value`` argument."""

    key: str
    read: Callable[[str, tuple[int, int]], Any]
    help: str
    aliases: tuple[str, ...] = ()


def too_long(what: str, text: str, limit: int, span: tuple[int, int]) -> None:
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
        too_long(what, text, limit, span)
        return text

    return read


FIELDS: dict[str, Field] = {
    f.key: f
    for f in (
        Field("desc", _text_reader("description", 4000), "what was reported"),
        Field("src", _enum_reader(SourceChannel, "source"), "999, 101, online, officer, ..."),
        Field("caller", _text_reader("caller", 200), "caller's name"),
        Field("phone", _text_reader("phone", 40), "caller's number"),
        Field("pos", _read_position, "LAT,LON in decimal degrees"),
        Field("sector", _text_reader("sector", 40), "sector or beat"),
        Field("rel", _enum_reader(LinkRelation, "relation"), "related, duplicate_of, ..."),
        Field("threat", _text_reader("threat", 2000), "THRIVE: threat"),
        Field("harm", _text_reader("harm", 2000), "THRIVE: harm"),
        Field("risk", _text_reader("risk", 2000), "THRIVE: risk"),
        Field(
            "investigation", _text_reader("investigation", 2000), "THRIVE: investigation", ("inv",)
        ),
        Field(
            "vulnerability", _text_reader("vulnerability", 2000), "THRIVE: vulnerability", ("vul",)
        ),
        Field("engagement", _text_reader("engagement", 2000), "THRIVE: engagement", ("eng",)),
    )
}
THRIVE = ("threat", "harm", "risk", "investigation", "vulnerability", "engagement")


# --------------------------------------------------------------------------- readers


def _read_ref(cur: Cursor, vocab: Vocabulary) -> str:
    (token,) = cur.take()
    found = vocab.reference(token.text)
    if found is not None:
        return found
    if FULL_REFERENCE.fullmatch(token.text):
        return token.text.upper()  # an incident this console has not seen; the server knows
    hint = suggest(token.text, list(reversed(vocab.ctx.references)))
    raise ParseError(f"unknown incident {shown(token.text)} ({hint})", token.start, token.end)


def _read_callsign(cur: Cursor, vocab: Vocabulary) -> str:
    match = vocab.callsign(cur.tokens, cur.index)
    if match is None:
        token = cur.peek()
        assert token is not None
        hint = suggest(token.text, vocab.ctx.callsigns)
        raise ParseError(f"unknown callsign {shown(token.text)} ({hint})", token.start, token.end)
    cur.take(match[1])
    return match[0]


def _read_new_callsign(cur: Cursor, vocab: Vocabulary) -> tuple[str, ...]:
    """The callsigns for ``bookon``: the words before the unit type, one or several.

    A known or quoted callsign is taken whole. Otherwise the words are split after each
    that ends in a digit, so ``XY02 XY03`` is two units and ``ARV 3`` (a word, then a
    number) is one; ``ARV 1 ARV 2`` is two.
    """
    first = cur.peek()
    assert first is not None
    later = range(1, cur.remaining)
    count = next((n for n in later if enum_member(UnitType, cur.tokens[cur.index + n].text)), 1)
    callsigns: list[str] = []
    words: list[Token] = []
    end = cur.index + count
    while cur.index < end:
        known = vocab.callsign(cur.tokens, cur.index)
        token = cur.peek()
        assert token is not None
        if not words and (known is not None or token.quoted):
            taken = cur.take(known[1] if known else 1)
            callsigns.append(_new_callsign(known[0] if known else taken[0].text, taken))
            continue
        words += cur.take(1)
        if words[-1].text[-1:].isdigit() or cur.index == end:
            callsigns.append(_new_callsign(" ".join(t.text for t in words), words))
            words = []
    return tuple(callsigns)


def _new_callsign(text: str, taken: list[Token]) -> str:
    callsign = " ".join(text.split())
    span = span_of(taken)
    if not callsign or not callsign.isprintable():
        raise ParseError(f"callsign {shown(callsign)} must be printable text", *span)
    too_long("callsign", callsign, 40, span)
    return callsign


def _read_grade(cur: Cursor, vocab: Vocabulary) -> int:
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
    def read(cur: Cursor, vocab: Vocabulary) -> str:
        (token,) = cur.take()
        codes = table(vocab.ctx)
        found = code_named(codes, token.text)
        if found is None:
            hint = suggest(token.text, list(codes)) if codes else "give one word"
            raise ParseError(f"unknown {what} {shown(token.text)} ({hint})", token.start, token.end)
        too_long(what, found, 40, (token.start, token.end))
        return found

    return read


def _read_state(cur: Cursor, vocab: Vocabulary) -> int:
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


def _read_position_slot(cur: Cursor, vocab: Vocabulary) -> dict[str, float]:
    return _read_position(*cur.rest_words())


def _read_enum(enum: type[Enum], what: str):
    reader = _enum_reader(enum, what)

    def read(cur: Cursor, vocab: Vocabulary) -> str:
        (token,) = cur.take()
        return reader(token.text, (token.start, token.end))

    return read


#: How each kind of argument is read from the words at a cursor. Free text (TEXT, WORDS)
#: is the rest of the line and VERB needs the registry: `grammar` reads those.
READERS: dict[Kind, Callable[[Cursor, Vocabulary], Any]] = {
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
}
