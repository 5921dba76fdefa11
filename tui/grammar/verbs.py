"""The verbs: what each is called, what it takes, and the action it makes.

A line becomes an `Action`: a `Dispatch` of command drafts for the server, or
something the console does itself (`Recommend`, `Filter`, `Find`, `Select`,
`Acknowledge`, `ShowUnitHistory`, `ShowSafety`, `Help`, `Quit`). `VERBS` is the
registry of every `Verb`, in the order help lists them: its name and aliases, its
positional `Slot`s and ``key=value`` fields, an example, notes for help, and the
builder that turns its arguments, once read into a `Parsed`, into an action. Usage
lines are generated from the slots and fields. A builder checks what only the verb
knows (a risk assessment needs a heading; state 11 is for booking off) and raises
`ParseError` over the argument at fault; `Parsed.draft` makes each command draft, so
whatever the protocol refuses is reported as the line is read.

`BY_WORD`, `PREFIX_VERBS`, `verb_named` and `head_of` say which verb a line names;
`field_key` which field a word sets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from typing import Any

from pydantic import ValidationError

from cadterm.protocol.domain import Capability, Grade, LinkRelation, UnitState, UnitType
from cadterm.protocol.drafts import CommandDraft, draft

from .resolve import FIELDS, STATE_WORDS, THRIVE, Kind, Slot
from .tokens import ParseError, Token, closest, shown, tokenize

__all__ = [
    "BY_WORD",
    "PREFIX_VERBS",
    "VERBS",
    "Acknowledge",
    "Action",
    "CallFormAction",
    "Dispatch",
    "Filter",
    "Find",
    "Head",
    "Help",
    "JournalAction",
    "Parsed",
    "Quit",
    "Recommend",
    "Select",
    "ShowSafety",
    "ShowUnitHistory",
    "Verb",
    "WritePack",
    "field_key",
    "head_of",
    "verb_named",
]


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Dispatch:
    """Commands to send to the server, in order: drafts the client keys and sends."""

    commands: tuple[CommandDraft, ...]
    summary: str
    #: ``at=HH:MM`` at the end of the line: the local time the action really happened
    #: (a paper log typed in after an outage). The console turns it into `taken_at`.
    happened_at: time | None = None


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
    """Search open and closed incidents for text; empty text moves to the next match."""

    text: str


@dataclass(frozen=True)
class ShowUnitHistory:
    """Show a unit's states, positions and incidents over the shift."""

    callsign: str


@dataclass(frozen=True)
class ShowSafety:
    """Show the units whose safety checks are running, overdue first."""


@dataclass(frozen=True)
class Select:
    """Select an incident on screen."""

    reference: str


@dataclass(frozen=True)
class Acknowledge:
    """Acknowledge the alarm `target` names (a callsign or an incident), or the top one."""

    target: str | None


@dataclass(frozen=True)
class Help:
    """Show help for one verb, or for all when None."""

    verb: str | None


@dataclass(frozen=True)
class Quit:
    """Leave the console."""


@dataclass(frozen=True)
class WritePack:
    """Write the CAD-down pack from this console's picture (for when the terminals go)."""


@dataclass(frozen=True)
class JournalAction:
    """List the journal, or put right rejected entry `number` (1 = oldest rejected).

    `action` is "list"; "retry" (apply anyway: send it again as a new command on the
    picture as it is now); "adapt" (do `text`, another command line, instead);
    "withdraw" (not done after all, for the reason `text`, recorded in the chronology);
    or "dismiss" (set it aside). The entry stays on file whatever is decided.
    """

    action: str
    number: int | None = None
    text: str | None = None


@dataclass(frozen=True)
class CallFormAction:
    """Open the call form, with the location already given if the line had one."""

    location: str = ""


Action = (
    Dispatch
    | CallFormAction
    | Recommend
    | Filter
    | Find
    | Select
    | Acknowledge
    | ShowUnitHistory
    | ShowSafety
    | Help
    | Quit
    | WritePack
    | JournalAction
)


# --------------------------------------------------------------------------- verbs


@dataclass
class Parsed:
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

    def draft(self, type: str, **fields: Any) -> CommandDraft:
        """A draft of a `type` command; what the protocol refuses is a `ParseError`."""
        try:
            return draft(type, **fields)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise self.error(
                f"{self.verb.name}: {where + ': ' if where else ''}{problem['msg']}"
            ) from None


@dataclass(frozen=True)
class Verb:
    """One command-line verb: its words, arguments, example and how it becomes an action."""

    name: str
    aliases: tuple[str, ...]
    description: str
    example: str
    slots: tuple[Slot, ...]
    build: Callable[[Parsed], Action]
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
        keys |= {alias: key for key in self.fields for alias in FIELDS[key].aliases}
        return keys


def _location(p: Parsed, name: str = "address") -> dict[str, Any]:
    location: dict[str, Any] = {"address": p.values[name]}
    if "pos" in p.fields:
        location["position"] = p.fields["pos"]
    if "sector" in p.fields:
        location["sector"] = p.fields["sector"]
    return location


def _one(command: CommandDraft, summary: str) -> Dispatch:
    return Dispatch((command,), summary)


def _build_new(p: Parsed) -> Action:
    v, f = p.values, p.fields
    fields: dict[str, Any] = {
        "grade": v["grade"],
        "incident_type": v["type"],
        "location": _location(p, "location"),
    }
    if "desc" in f:
        fields["description"] = f["desc"]
    if "src" in f:
        fields["source"] = f["src"]
    caller = {k: f[key] for k, key in (("name", "caller"), ("phone", "phone")) if key in f}
    if caller:
        fields["caller"] = caller
    return _one(
        p.draft("create_incident", **fields),
        f"new grade {v['grade']} {v['type']} at {v['location']}",
    )


def _build_grade(p: Parsed) -> Action:
    ref, grade = p.values["ref"], p.values["grade"]
    reason = {"reason": p.values["reason"]} if p.values["reason"] else {}
    command = p.draft("grade_incident", reference=ref, grade=grade, **reason)
    return _one(command, f"grade {ref} to {grade} {Grade(grade).label}")


def _build_type(p: Parsed) -> Action:
    ref, code = p.values["ref"], p.values["type"]
    return _one(
        p.draft("retype_incident", reference=ref, incident_type=code),
        f"retype {ref} as {code}",
    )


def _build_loc(p: Parsed) -> Action:
    ref = p.values["ref"]
    return _one(
        p.draft("relocate_incident", reference=ref, location=_location(p)),
        f"relocate {ref} to {p.values['address']}",
    )


#: What `j` can do with a rejected entry, and whether it needs words after the number.
_JOURNAL_ACTIONS = {
    "retry": False,
    "apply": False,
    "dismiss": False,
    "adapt": True,
    "withdraw": True,
}
_JOURNAL_USAGE = (
    "journal: 'j' lists; for rejected entry N: 'j retry N' (apply anyway), "
    "'j adapt N COMMAND', 'j withdraw N REASON' or 'j dismiss N'"
)


def _build_journal(p: Parsed) -> Action:
    words = (p.values["words"] or "").split(maxsplit=2)
    if not words:
        return JournalAction("list")
    action = words[0].lower()
    if action not in _JOURNAL_ACTIONS or len(words) < 2 or not words[1].isdigit():
        raise p.error(_JOURNAL_USAGE, "words")
    number = int(words[1])
    if number < 1:
        raise p.error("journal: rejected entries are numbered from 1", "words")
    text = words[2].strip() if len(words) > 2 else None
    if _JOURNAL_ACTIONS[action] and not text:
        what = "the command to do instead" if action == "adapt" else "the reason"
        raise p.error(f"journal: 'j {action} {number}' needs {what} after the number", "words")
    if not _JOURNAL_ACTIONS[action] and text:
        raise p.error(f"journal: 'j {action} {number}' takes nothing more", "words")
    return JournalAction("retry" if action == "apply" else action, number, text)


def _build_risk(p: Parsed) -> Action:
    ref = p.values["ref"]
    risk = {key: p.fields[key] for key in THRIVE if key in p.fields}
    if not risk:
        raise p.error("risk: give at least one heading: threat=.. harm=.. risk=.. inv=.. ...")
    return _one(
        p.draft("assess_risk", reference=ref, risk=risk),
        f"risk assessment for {ref}: {', '.join(risk)}",
    )


def _build_note(p: Parsed) -> Action:
    ref = p.values["ref"]
    return _one(p.draft("add_note", reference=ref, text=p.values["text"]), f"note on {ref}")


def _build_assign(p: Parsed) -> Action:
    ref, divert = p.values["ref"], p.verb.name == "divert"
    callsigns = tuple(dict.fromkeys(p.values["callsign"]))
    diverting = {"divert": True} if divert else {}
    commands = tuple(
        p.draft("assign_unit", reference=ref, callsign=callsign, **diverting)
        for callsign in callsigns
    )
    return Dispatch(commands, f"{p.verb.name} {', '.join(callsigns)} to {ref}")


def _build_unassign(p: Parsed) -> Action:
    ref, callsign = p.values["ref"], p.values["callsign"]
    reason = {"reason": p.values["reason"]} if p.values["reason"] else {}
    command = p.draft("unassign_unit", reference=ref, callsign=callsign, **reason)
    return _one(command, f"stand {callsign} down from {ref}")


def _build_state(p: Parsed) -> Action:
    callsign, state = p.values["callsign"], UnitState(p.values["state"])
    if state is UnitState.OFF_DUTY:
        raise p.error(f"state 11 (off duty) is set by booking off: use 'off {callsign}'", "state")
    return _one(
        p.draft("set_unit_state", callsign=callsign, state=state.value),
        f"{callsign} state {state.value} {state.label}",
    )


def _build_locate(p: Parsed) -> Action:
    callsign, position = p.values["callsign"], p.values["position"]
    return _one(
        p.draft("locate_unit", callsign=callsign, position=position),
        f"{callsign} at {position['lat']:.5f},{position['lon']:.5f}",
    )


def _build_close(p: Parsed) -> Action:
    ref, code = p.values["ref"], p.values["code"]
    summary = {"summary": p.values["summary"]} if p.values["summary"] else {}
    command = p.draft("close_incident", reference=ref, closing_code=code, **summary)
    return _one(command, f"close {ref} as {code}")


def _build_reopen(p: Parsed) -> Action:
    ref = p.values["ref"]
    return _one(
        p.draft("reopen_incident", reference=ref, reason=p.values["reason"]),
        f"reopen {ref}",
    )


def _build_link(p: Parsed) -> Action:
    ref, other = p.values["ref"], p.values["other"]
    default = LinkRelation.DUPLICATE_OF if p.invoked == "dup" else LinkRelation.RELATED
    relation = p.fields.get("rel", default.value)
    if ref == other:
        raise p.error(f"cannot link {ref} to itself", "other")
    return _one(
        p.draft("link_incidents", reference=ref, other=other, relation=relation),
        f"link {ref} to {other} ({relation})",
    )


def _build_bookon(p: Parsed) -> Action:
    callsigns, unit_type = p.values["callsign"], p.values["type"]
    if len(set(callsigns)) < len(callsigns):
        raise p.error("bookon: a callsign is given twice", "callsign")
    fields: dict[str, Any] = {
        "unit_type": unit_type,
        "capabilities": list(dict.fromkeys(p.values["capability"])),
    }
    if "sector" in p.fields:
        fields["home_sector"] = p.fields["sector"]
    if "pos" in p.fields:
        fields["position"] = p.fields["pos"]
    commands = tuple(p.draft("book_on", callsign=c, **fields) for c in callsigns)
    return Dispatch(commands, f"book on {', '.join(callsigns)} ({unit_type})")


def _build_bookoff(p: Parsed) -> Action:
    callsign = p.values["callsign"]
    return _one(p.draft("book_off", callsign=callsign), f"book off {callsign}")


def _build_check_in(p: Parsed) -> Action:
    callsign = p.values["callsign"]
    note = {"note": p.values["note"]} if p.values["note"] else {}
    return _one(p.draft("check_in_unit", callsign=callsign, **note), f"{callsign} checked in")


def _build_recommend(p: Parsed) -> Action:
    return Recommend(p.values["ref"], tuple(dict.fromkeys(p.values["capability"])))


# --------------------------------------------------------------------------- the registry

_REF = Slot("ref", Kind.REF, optional=True)
_CALLSIGN = Slot("callsign", Kind.CALLSIGN)
_STATE_NOTE = "STATE is 0-10 or words: " + ", ".join(STATE_WORDS[:12]) + ", ..."
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
                Slot("location", Kind.WORDS, max_length=500, place=True),
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
            "call",
            (),
            "take a call on the call form (F10): caller, place, type, THRIVE, grade",
            "call 3 Mill Lane",
            (Slot("location", Kind.WORDS, optional=True, max_length=500, place=True),),
            lambda p: CallFormAction(p.values["location"] or ""),
            notes=(
                "The form asks each question in turn and suggests a grade from the "
                "force's rules; it opens the incident in one command.",
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
            (_REF, Slot("address", Kind.WORDS, max_length=500, place=True)),
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
            fields=THRIVE,
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
            "book units on duty (several callsigns of one type at once)",
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
            "checkin",
            ("ok",),
            "record that a unit checked in safe (restarts its safety timer)",
            "ok AB12 all fine, with the driver",
            (_CALLSIGN, Slot("note", Kind.TEXT, True, max_length=1000)),
            _build_check_in,
            notes=("The words after the callsign go in the incident's chronology.",),
        ),
        Verb(
            "safety",
            ("sf",),
            "list units due a safety check, overdue first, with countdowns",
            "safety",
            (),
            lambda p: ShowSafety(),
        ),
        Verb(
            "unithistory",
            ("uh",),
            "show a unit's states, positions and incidents over the shift",
            "uh AB12",
            (_CALLSIGN,),
            lambda p: ShowUnitHistory(p.values["callsign"]),
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
            "search open and closed incidents; f alone for the next match",
            "f gas 37",
            (Slot("text", Kind.TEXT, optional=True),),
            lambda p: Find(p.values["text"] or ""),
            notes=(
                "Finds by reference, address, caller's name or phone, type, description "
                "and notes: each word must start a word of the incident.",
                "Ctrl+N and Ctrl+P step through the matches; Enter on an empty line "
                "opens the one shown.",
            ),
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
            "acknowledge one alarm: a unit's emergency, an incident's, or the top one",
            "ack AB12",
            # A callsign or an incident's number: the controller finds the alarm it names.
            (Slot("alarm", Kind.WORDS, optional=True),),
            lambda p: (
                Acknowledge(" ".join(p.values["alarm"].upper().split()) or None)
                if p.values["alarm"]
                else Acknowledge(None)
            ),
        ),
        Verb(
            "help",
            ("?", "h"),
            "show help; VERB ? for one verb",
            "? assign",
            (Slot("verb", Kind.VERB, optional=True),),
            lambda p: Help(p.values["verb"]),
        ),
        Verb(
            "journal",
            ("j",),
            "the journal and reconciliation: put right a command refused after CAD was down",
            "j withdraw 1 unit went to 0042 instead",
            (Slot("words", Kind.WORDS, optional=True),),
            _build_journal,
        ),
        Verb(
            "pack",
            (),
            "write the CAD-down pack (incidents, units, references, contacts) to print (F12)",
            "pack",
            (),
            lambda p: WritePack(),
        ),
        Verb("quit", ("q", "exit"), "leave the console", "q", (), lambda p: Quit()),
    )
}


# --------------------------------------------------------------------------- naming a verb

BY_WORD: dict[str, Verb] = {
    word: verb for verb in VERBS.values() for word in (verb.name, *verb.aliases)
}
#: Verbs that may be glued to their argument: ``/leeds``, ``+caller called back``.
PREFIX_VERBS = {"/": VERBS["filter"], "+": VERBS["note"]}


def verb_named(token: Token) -> Verb:
    """The verb `token` names (its name or an alias, any case), or an error offering close ones."""
    verb = BY_WORD.get(token.text.lower())
    if verb is None:
        close = closest(token.text, list(BY_WORD), 3)
        hint = f"did you mean {', '.join(close)}?" if close else "not a verb"
        raise ParseError(
            f"unknown verb {shown(token.text)} ({hint}; ? for help)", token.start, token.end
        )
    return verb


@dataclass(frozen=True)
class Head:
    """A line split after its prompt: a glued prefix verb if any, and the words."""

    verb: Verb | None
    verb_token: Token
    args: list[Token]


def head_of(line: str) -> Head:
    """Skip blanks and a leading ':'; recognise ``/`` and ``+`` glued to their text."""
    index = len(line) - len(line.lstrip())
    if line.startswith(":", index):
        index += 1
        index += len(line[index:]) - len(line[index:].lstrip())
    if index < len(line) and line[index] in PREFIX_VERBS:
        token = Token(line[index], index, index + 1)
        return Head(PREFIX_VERBS[line[index]], token, tokenize(line, index + 1))
    return Head(None, Token("", index, index), tokenize(line, index))


def field_key(verb: Verb, token: Token) -> str | None:
    """The canonical field `token` sets, if it is ``key=...`` for a key `verb` accepts."""
    if token.quoted or "=" not in token.text:
        return None
    return verb.field_keys.get(token.text.split("=", 1)[0].lower())
