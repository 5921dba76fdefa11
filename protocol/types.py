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
    "Sector",
    "Seq",
    "Text",
    "UtcTime",
    "Version",
    "WorkstationId",
    "check_identifier",
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
    return value if value.tzinfo is UTC else value.astimezone(UTC)


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


def normalise_callsign(value: str) -> str:
    """A callsign, reference or code as the server stores it: trimmed, single-spaced,
    upper case. Only ASCII letters change case, so the length cannot grow."""
    collapsed = " ".join(value.split())
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
        value = normalise_callsign(value) if upper else value.strip()
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


def _printable(what: str, *, lines: bool) -> Callable[[str], str]:
    allowed = {"\n", "\t"} if lines else set()

    def validate(value: str) -> str:
        for ch in value:
            if ch in allowed:
                continue
            category = unicodedata.category(ch)
            # Cc: C0, DEL and C1 controls. Cs: lone surrogates, which no terminal or
            # JSON encoder can carry.
            if category in ("Cc", "Cs"):
                raise PydanticCustomError(
                    "control_character",
                    "{what} may not hold control characters; found {char}",
                    {"what": what, "char": _describe(ch)},
                )
        return value

    return validate


# The same rules as JSON Schema patterns, so a schema-driven client knows them too.
_ONE_LINE = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
_LINES = "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"

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
