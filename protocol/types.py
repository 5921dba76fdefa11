"""Wire types: the shapes every value must have to pass the door.

The protocol refuses what its readers cannot use, before it is stored:

* **Times** (`UtcTime`) are RFC 3339 strings with a UTC offset (``2026-11-27T09:18:58Z``,
  ``...+01:00``), normalised to UTC on arrival. Naive times, bare dates and epoch
  numbers (as numbers or as strings) are refused.
* **Counts** (`Seq`, `Version`) are JSON integers (``3.0`` counts, as JSON Schema says):
  ``true``, ``"31647"`` and ``1.5`` are refused.
* **Grades and states** are integers or, for unit states, words; never booleans, and
  never digits outside ASCII (``"٦"``).
* **Identifiers** (`Callsign`, `Reference`, `Code`, `Sector`, `WorkstationId`,
  `OperatorId`) follow one pattern a person can type on any keyboard: ASCII letters and
  digits, with a single space, ``-``, ``.`` or ``_`` between them, starting and ending
  with a letter or digit (`IDENTIFIER_PATTERN`). Callsigns, references and codes are
  upper-cased and their whitespace collapsed *before* the pattern and the length are
  checked, so normalising can never push a value past its limit or make it empty.
* **Free text** (`Text`, `Note`) may hold any printable Unicode. Control characters (C0,
  C1, DEL) are refused with an error naming the character; notes and descriptions may
  also hold newlines and tabs.

Readers stay forgiving: what a model reads from the picture may predate a rule, so
`known_time` turns a time a reader cannot compare into "unknown" instead of an error.
"""

from __future__ import annotations

import re
import socket
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "IDENTIFIER_PATTERN",
    "MAX_INTEGER",
    "Callsign",
    "Code",
    "Note",
    "OperatorId",
    "Reference",
    "RequiredNote",
    "RequiredText",
    "Sector",
    "Seq",
    "Text",
    "UtcTime",
    "Version",
    "WorkstationId",
    "check_identifier",
    "integer_only",
    "known_time",
    "normalise_callsign",
    "reject_non_integer",
    "sortable_time",
    "type_required",
    "workstation_for_this_machine",
]

# --- times ------------------------------------------------------------------------------

# RFC 3339 section 5.6 date-time: full date, "T", full time with optional fraction, and a
# mandatory offset. pydantic alone would take an epoch number given as a string.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def _rfc3339_only(value: Any) -> Any:
    if isinstance(value, datetime):
        return value  # built in code; AwareDatetime still refuses a naive one
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    if isinstance(value, bool | int | float):
        raise PydanticCustomError(
            "rfc3339_time",
            "time must be an RFC 3339 string with a UTC offset, "
            "e.g. '2026-11-27T09:18:58Z', not a number",
        )
    raise PydanticCustomError(
        "rfc3339_time",
        "time must be an RFC 3339 date and time with a UTC offset, "
        "e.g. '2026-11-27T09:18:58Z' or '2026-11-27T09:18:58+01:00'",
    )


def _to_utc(value: datetime) -> datetime:
    if value.tzinfo is UTC:
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 or 9999-12-31T23:59:59-01:00: no UTC time exists.
        raise PydanticCustomError(
            "time_out_of_range",
            "time {value} falls outside the years 1-9999 once in UTC",
            {"value": value.isoformat()},
        ) from None


UtcTime = Annotated[
    AwareDatetime,
    BeforeValidator(_rfc3339_only),
    AfterValidator(_to_utc),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
"""An instant: RFC 3339 with an offset on the wire, a UTC `datetime` in code."""


def known_time(value: object) -> datetime | None:
    """`value` if it is a time a reader can compare (timezone-aware), else None.

    The picture may hold values written before the door checked them (a naive time
    from an older server); readers ask this instead of comparing blindly, and show the
    time as unknown.
    """
    if isinstance(value, datetime) and value.utcoffset() is not None:
        return value
    return None


_EARLIEST = datetime.min.replace(tzinfo=UTC)


def sortable_time(value: object) -> datetime:
    """A key for ordering by time: `value` when usable, else before every real time."""
    known = known_time(value)
    return _EARLIEST if known is None else known


# --- numbers ----------------------------------------------------------------------------


def integer_only(value: Any) -> Any:
    """Refuse anything but a JSON integer, ``1.0`` included: for grades and unit states.

    A grade or a state is a choice, not a measurement: a number with a fraction or an
    exponent means a client computed it, and ``1e-400`` (which reads as ``0.0``) must
    never mean state 0, an emergency.
    """
    if isinstance(value, bool | str | bytes | float):
        raise PydanticCustomError(
            "integer_required", "must be a JSON integer, not {kind}", {"kind": _kind(value)}
        )
    return value


def reject_non_integer(value: Any) -> Any:
    """Refuse booleans, strings and fractions where an integer (or integer enum) is meant.

    JSON has one number type, and JSON Schema counts ``3.0`` as an integer, so a
    number with no fractional part is taken (as ``3``). pydantic's strict mode would
    refuse it, and in Python code would also refuse a plain ``3`` for an enum.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool | str | bytes | float):
        raise PydanticCustomError(
            "integer_required", "must be a JSON integer, not {kind}", {"kind": _kind(value)}
        )
    return value


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str | bytes):
        return "a string"
    return "a " + type(value).__name__


#: The largest count the protocol carries: 2**53 - 1, the largest integer every JSON
#: reader (JavaScript's included) holds exactly.
MAX_INTEGER = 2**53 - 1

# Constraints before the validator, so the JSON Schema shows them as minimum/maximum.
Seq = Annotated[int, Field(ge=0, le=MAX_INTEGER), BeforeValidator(reject_non_integer)]
"""A position in the event log (0 means "before the first event")."""

Version = Annotated[int, Field(ge=0, le=MAX_INTEGER), BeforeValidator(reject_non_integer)]
"""A version number of an incident or unit."""

# --- identifiers ------------------------------------------------------------------------

#: The one pattern every identifier follows (after normalisation).
IDENTIFIER_PATTERN = r"^[A-Za-z0-9]+(?:[ ._-][A-Za-z0-9]+)*$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN, re.ASCII)
_ALLOWED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 ._-")


#: What an identifier's spacing may be typed as: runs of these collapse to one space.
#: Only the space and the tab: Python's own idea of whitespace takes in line breaks,
#: U+0085 and the separators U+001C-U+001F, which must be refused, not turned into spaces.
_SPACES = re.compile(r"[ \t]+")


def normalise_callsign(value: str) -> str:
    """A callsign, reference or code as the server stores it: trimmed, single-spaced,
    upper case. Only ASCII letters change case, so the length cannot grow."""
    collapsed = _SPACES.sub(" ", value).strip(" ")
    return collapsed.upper() if collapsed.isascii() else collapsed


def check_identifier(value: str, what: str, max_length: int) -> str:
    """Return `value` if it is a valid `what`; raise a message naming the fault."""
    if not value:
        raise PydanticCustomError(
            "identifier", "{what} must not be empty or only spaces", {"what": what}
        )
    bad = next((ch for ch in value if ch not in _ALLOWED), None)
    if bad is not None:
        raise PydanticCustomError(
            "identifier",
            "{what} may hold only ASCII letters, digits, single spaces, '-', '.' and '_'; "
            "found {char}",
            {"what": what, "char": _describe(bad)},
        )
    if not _IDENTIFIER.match(value):
        raise PydanticCustomError(
            "identifier",
            "{what} must start and end with a letter or digit, with one space, '-', '.' or "
            "'_' at most between them",
            {"what": what},
        )
    if len(value) > max_length:
        raise PydanticCustomError(
            "identifier",
            "{what} is {length} characters long; at most {max_length} are allowed",
            {"what": what, "length": len(value), "max_length": max_length},
        )
    return value


def _identifier(what: str, max_length: int, *, upper: bool) -> Any:
    def validate(value: Any) -> str:
        if not isinstance(value, str):
            raise PydanticCustomError("identifier", "{what} must be a string", {"what": what})
        value = normalise_callsign(value) if upper else value.strip(" \t")
        return check_identifier(value, what, max_length)

    schema = {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": max_length}
    return (BeforeValidator(validate), WithJsonSchema(schema))


Callsign = Annotated[str, *_identifier("callsign", 40, upper=True)]
"""A unit's callsign, e.g. ``AB12`` or ``ARV 1`` (stored upper case)."""

Reference = Annotated[str, *_identifier("incident reference", 40, upper=True)]
"""An incident's log reference, e.g. ``0042-27NOV26``."""

ReportId = Annotated[str, *_identifier("report id", 40, upper=True)]
"""An online report's id in the triage queue, e.g. ``R1042``."""

Code = Annotated[str, *_identifier("code", 40, upper=True)]
"""An opening or closing code, e.g. ``RTC`` or ``NFA``."""

Sector = Annotated[str, *_identifier("sector", 40, upper=False)]
"""A policing sector's name, e.g. ``City Centre`` (case kept)."""

WorkstationId = Annotated[str, *_identifier("workstation", 64, upper=False)]
"""A workstation the server knows, e.g. ``ws-03`` (case kept)."""

OperatorId = Annotated[str, *_identifier("operator id", 64, upper=False)]
"""An operator's id, e.g. ``disp1`` (case kept)."""


def workstation_for_this_machine() -> str:
    """This machine's host name when it is a valid workstation id, else ``console1``.

    The default on both sides: a first-start server registers it, and a console on the
    same machine sends it, so the two agree without anyone typing a name.
    """
    name = socket.gethostname()[:64]
    try:
        return check_identifier(name, "workstation", 64)
    except PydanticCustomError:
        return "console1"


# --- free text --------------------------------------------------------------------------


def _describe(ch: str) -> str:
    name = unicodedata.name(ch, None)
    code = f"U+{ord(ch):04X}"
    return f"{code} {name}" if name else code


#: Format characters that change how the text around them is shown: the bidirectional
#: embeddings, overrides and isolates (a reversed address or callsign in a note reads as
#: another), and the interlinear annotation marks (which hide the text between them).
#: Joiners, marks and variation selectors stay: names and emoji need them.
_DISPLAY_CONTROLS = frozenset(
    [
        *map(chr, range(0x202A, 0x202F)),
        *map(chr, range(0x2066, 0x206A)),
        "\ufff9",
        "\ufffa",
        "\ufffb",
    ]
)


def _refused_in_text(ch: str) -> bool:
    """True for a character no free text may hold (see `_printable`)."""
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return True
    if ch in _DISPLAY_CONTROLS:
        return True
    code = ord(ch)
    # Noncharacters: U+FDD0-U+FDEF and the last two code points of every plane.
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def _printable(what: str, *, lines: bool) -> Callable[[str], str]:
    allowed = {"\n", "\t"} if lines else set()

    def validate(value: str) -> str:
        for ch in value:
            if ch in allowed:
                continue
            # Cc: C0, DEL and C1 controls. Cs: lone surrogates, which no terminal or
            # JSON encoder can carry. Zl, Zp: line and paragraph separators, which
            # break a line where no newline is allowed. And the display controls above.
            if _refused_in_text(ch):
                raise PydanticCustomError(
                    "control_character",
                    "{what} may not hold control characters; found {char}",
                    {"what": what, "char": _describe(ch)},
                )
        return value

    return validate


#: What counts as blank in text that must say something: the white space of JSON Schema's
#: (ECMAScript's) ``\\s``, so the schema's pattern and the server agree on every value.
_BLANK = " \t\n\v\f\r\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B)))
_BLANK += "\u2028\u2029\u202f\u205f\u3000\ufeff"


def _not_blank(what: str) -> Callable[[str], str]:
    def validate(value: str) -> str:
        if not value.strip(_BLANK):
            raise PydanticCustomError(
                "blank_text", "{what} must not be empty or only spaces", {"what": what}
            )
        return value

    return validate


# The same rules as JSON Schema patterns, so a schema-driven client knows them too (all
# but the noncharacters outside the first plane, which a JSON Schema pattern cannot name).
_REFUSED_ANYWHERE = (
    "\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069"
    "\\ufdd0-\\ufdef\\ufff9-\\ufffb\\ufffe\\uffff"
)
_ONE_LINE_CHARS = f"\\u0000-\\u001f{_REFUSED_ANYWHERE}"
_LINES_CHARS = f"\\u0000-\\u0008\\u000b-\\u001f{_REFUSED_ANYWHERE}"
_ONE_LINE = f"^[^{_ONE_LINE_CHARS}]*$"
_LINES = f"^[^{_LINES_CHARS}]*$"
# `_BLANK` as a pattern: U+FEFF named, being in ECMAScript's \s and not in Python's.
_BLANK_CHARS = "\\s\\ufeff"


def _saying_something(refused: str) -> str:
    """A pattern for text of allowed characters with at least one that is not blank."""
    return f"^[^{refused}]*[^{refused}{_BLANK_CHARS}][^{refused}]*$"


Text = Annotated[
    str,
    AfterValidator(_printable("text", lines=False)),
    Field(json_schema_extra={"pattern": _ONE_LINE}),
]
"""One line of printable text (an address, a name, a phone number, a reason)."""

Note = Annotated[
    str,
    AfterValidator(_printable("text", lines=True)),
    Field(json_schema_extra={"pattern": _LINES}),
]
"""Printable text that may run over several lines (a note, a description)."""

RequiredText = Annotated[
    Text,
    AfterValidator(_not_blank("text")),
    Field(json_schema_extra={"pattern": _saying_something(_ONE_LINE_CHARS)}),
]
"""`Text` that must say something: not empty, not only spaces (an address, a reason)."""

RequiredNote = Annotated[
    Note,
    AfterValidator(_not_blank("text")),
    Field(json_schema_extra={"pattern": _saying_something(_LINES_CHARS)}),
]
"""`Note` that must say something: not empty, not only spaces (a note's text)."""


# --- schemas ----------------------------------------------------------------------------


def type_required(schema: dict[str, Any]) -> None:
    """Mark `type` required in a model's JSON Schema.

    Models give `type` a default so code can build them without repeating it, but on the
    wire it is what tells one command or frame from another and is always required;
    the schema (and so the OpenAPI document) must say what the server enforces.
    """
    if "type" in schema.get("properties", {}):
        required = schema.setdefault("required", [])
        if "type" not in required:
            required.insert(0, "type")
