"""The console's command-line grammar: a typed line becomes an action, with no I/O.

The command-line widget is a thin view over three functions: `parse` turns a line into
an `Action` (or a `ParseError` that says what was wrong and where), `complete` offers
what may come next at the end of a line, and `help_text` describes the verbs. All three
read the live picture only through a `ParseContext` of plain data. A line that commands
the server becomes a `Dispatch` of command drafts (`cadterm.protocol.drafts`), each
validated by the protocol's rules as it is built, so what the server's door would refuse
is a `ParseError` here; the client adds the idempotency key and workstation when it sends.

The grammar is layered, each module one job, and this module is its public face:
`tokens` splits a line into words; `resolve` reads an argument's words against the
`ParseContext`; `verbs` holds the `VERBS` registry and the actions it builds; this
module parses a whole line and writes help; `completion` offers what may come next.

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
* ``at=HH:MM`` as the very last word of a command line says when the action really
  happened (a paper log typed in afterwards); it is the one word read from the end.

Errors::

    ValueError
     └── ParseError      the line cannot be read; .message, and .start/.end, the span
                         of the offending text (zero width at the end of the line where
                         something is missing)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from datetime import time
from typing import Any

from .completion import Candidate, Completion, complete
from .places import placed
from .resolve import FIELDS, READERS, Kind, ParseContext, Slot, Vocabulary, too_long
from .tokens import (
    SHORT_REFERENCE,
    Cursor,
    ParseError,
    Token,
    is_explicit_reference,
    shown,
    suggest,
)
from .verbs import (
    BY_WORD,
    VERBS,
    Acknowledge,
    Action,
    CallFormAction,
    Dispatch,
    Filter,
    Find,
    Help,
    JournalAction,
    Parsed,
    Quit,
    Recommend,
    Select,
    ShowSafety,
    ShowUnitHistory,
    Verb,
    WritePack,
    field_key,
    head_of,
    verb_named,
)

__all__ = [
    "VERBS",
    "Acknowledge",
    "Action",
    "CallFormAction",
    "Candidate",
    "Completion",
    "Dispatch",
    "Filter",
    "Find",
    "Help",
    "JournalAction",
    "Kind",
    "ParseContext",
    "ParseError",
    "Quit",
    "Recommend",
    "Select",
    "ShowSafety",
    "ShowUnitHistory",
    "Slot",
    "Verb",
    "WritePack",
    "complete",
    "help_text",
    "parse",
]


# --------------------------------------------------------------------------- parsing


#: ``at=HH:MM`` as the last word of a line: when a command's action really happened.
_HAPPENED_AT = re.compile(r"(?:^|\s)at=(\S*)\s*$")
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")


def parse(line: str, ctx: ParseContext) -> Action:
    """Read one command line; raises `ParseError` saying what is wrong and where.

    A line ending ``at=HH:MM`` is a command entered after the fact (from a paper log):
    the `Dispatch` carries that local time as `happened_at`.
    """
    _check_encodable(line)
    found = _HAPPENED_AT.search(line)
    if found is None:
        return _parse_line(line, ctx)
    start, end = found.start(1) - 3, found.end(1)
    clock = _CLOCK.fullmatch(found.group(1))
    if clock is None:
        raise ParseError("at= takes the time it happened as HH:MM, e.g. at=09:13", start, end)
    action = _parse_line(line[: found.start()].rstrip(), ctx)
    if not isinstance(action, Dispatch):
        raise ParseError("at=HH:MM goes at the end of a command that changes something", start, end)
    happened = time(int(clock.group(1)), int(clock.group(2)))
    return dataclasses.replace(action, happened_at=happened)


def _parse_line(line: str, ctx: ParseContext) -> Action:
    vocab = Vocabulary(ctx)
    head = head_of(line)
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
        verb, verb_token = verb_named(first), first
    else:
        verb, verb_token, args = head.verb, head.verb_token, head.args
    parsed = _parse_arguments(verb, verb_token, args, line, vocab)
    return placed(verb.build(parsed), ctx.places)


def _check_encodable(line: str) -> None:
    """Refuse text no command can carry: lone surrogates, which UTF-8 cannot encode."""
    try:
        line.encode("utf-8")
    except UnicodeEncodeError as bad:
        raise ParseError("the line holds an invalid character", bad.start, bad.end) from None


def _help_asked(first: Token, args: list[Token]) -> Help | None:
    """``assign ?`` or ``assign?``: help for that verb."""
    if len(args) == 1 and args[0].text == "?" and not args[0].quoted:
        return Help(verb_named(first).name)
    if not args and len(first.text) > 1 and first.text.endswith("?"):
        verb = BY_WORD.get(first.text[:-1].lower())
        if verb is not None:
            return Help(verb.name)
    return None


def _parse_arguments(
    verb: Verb, verb_token: Token, args: list[Token], line: str, vocab: Vocabulary
) -> Parsed:
    """Read fields, then the optional REF, then each positional argument in turn."""
    parsed = Parsed(verb, verb_token.text.lower(), (verb_token.start, verb_token.end))
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


def _missing(verb: Verb, slot: Slot, line: str) -> ParseError:
    end = len(line)
    return ParseError(f"{verb.name}: missing {slot.name.upper()} (usage: {verb.usage})", end, end)


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


def _read_fields(verb: Verb, args: list[Token], parsed: Parsed) -> list[Token]:
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
        key = field_key(verb, token)
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
        if not value and index < len(args) and field_key(verb, args[index]) is None:
            (extra,) = Cursor("", [args[index]]).take()  # ``desc= "two cars"``
            value, span = extra.text, (token.start, extra.end)
            index += 1
        raw[key], current = (value, span), key
    for key, (value, span) in raw.items():
        parsed.fields[key] = FIELDS[key].read(value, span)
        parsed.spans[key] = span
    return positional


def _optional_ref(verb: Verb, cur: Cursor, vocab: Vocabulary, parsed: Parsed) -> str:
    """The incident an optional REF names, or the selected one (see the module rules)."""
    if _takes_reference(verb, cur, vocab):
        value, parsed.spans["ref"] = _read_slot(Slot("ref", Kind.REF), cur, vocab)
        return value
    if vocab.ctx.selected is None:
        raise parsed.error("no incident selected: give a reference")
    return vocab.ctx.selected


def _takes_reference(verb: Verb, cur: Cursor, vocab: Vocabulary) -> bool:
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


def _fits(slot: Slot, cur: Cursor, vocab: Vocabulary, ahead: int) -> bool:
    """Whether the words from ``cur.peek(ahead)`` on could be read as `slot`."""
    if cur.peek(ahead) is None:
        return False
    try:
        _read_slot(slot, Cursor(cur.line, cur.tokens, cur.index + ahead), vocab)
    except ParseError:
        return False
    return True


def _read_verb(cur: Cursor, vocab: Vocabulary) -> str:
    (token,) = cur.take()
    return verb_named(token).name


#: Readers for every kind but free text, which `_read_slot` takes as the rest of the line.
_READERS: dict[Kind, Callable[[Cursor, Vocabulary], Any]] = {**READERS, Kind.VERB: _read_verb}


def _read_slot(slot: Slot, cur: Cursor, vocab: Vocabulary) -> tuple[Any, tuple[int, int]]:
    """Read one argument; returns its value and its span."""
    start = cur.peek()
    assert start is not None
    if start.unterminated and slot.kind is not Kind.TEXT:
        cur.take()  # raises: the open quote is the problem, not what it holds
    if slot.kind in (Kind.TEXT, Kind.WORDS):
        text, span = cur.rest_raw() if slot.kind is Kind.TEXT else cur.rest_words()
        text = text.strip()
        too_long(slot.name, text, slot.max_length, span)
        return text, span
    value = _READERS[slot.kind](cur, vocab)
    end = cur.tokens[cur.index - 1].end
    return value, (start.start, end)


# --------------------------------------------------------------------------- help


def help_text(verb: str | None = None) -> list[str]:
    """Help as lines of plain text: every verb, or the details of one (name or alias)."""
    if verb is None:
        return _overview()
    found = BY_WORD.get(verb.lower())
    if found is None:
        return [f"unknown verb {shown(verb)} ({suggest(verb, list(BY_WORD))})"]
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
        spec = FIELDS[key]
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
