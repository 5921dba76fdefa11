"""Completion: what may come next at the end of a command line, as the operator types.

`complete` works out which verb the line names and which argument the last word begins
(a verb, an incident, a callsign that may run over several words, a code, a state, a
``key=`` field or its value) and offers `Candidate`s for it: recommended units before
others, the newest incident first, exact matches before longer ones. A line it cannot
follow gets no candidates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from cadterm.protocol.domain import (
    Capability,
    Grade,
    LinkRelation,
    SourceChannel,
    UnitState,
    UnitType,
)

from .resolve import FIELDS, REST, STATE_WORDS, Kind, ParseContext, Slot, Vocabulary
from .tokens import Token, enum_member, is_explicit_reference, log_number
from .verbs import BY_WORD, PREFIX_VERBS, VERBS, Verb, field_key, head_of

__all__ = ["Candidate", "Completion", "complete"]


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


def complete(line: str, ctx: ParseContext) -> Completion:
    """What may replace the word at the end of `line` (the cursor is at the end)."""
    vocab = Vocabulary(ctx)
    head = head_of(line)
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
    verb = head.verb or BY_WORD.get(before[0].text.lower())
    if verb is None:
        return Completion(start, ())
    args = before if head.verb else before[1:]
    if in_word and last and field_key(verb, last):
        return Completion(start, _field_value_candidates(last.text))
    return _argument_completion(verb, args, start, prefix, line, vocab)


def _argument_completion(
    verb: Verb, args: list[Token], start: int, prefix: str, line: str, vocab: Vocabulary
) -> Completion:
    given = {field_key(verb, t) for t in args} - {None}
    positional = [t for t in args if field_key(verb, t) is None]
    slots, from_word = _expected(verb, positional, vocab)
    if from_word is not None and slots and slots[0].place:
        names = vocab.ctx.places.complete(line[from_word:]) if vocab.ctx.places else []
        if names:
            return Completion(from_word, tuple(Candidate(name, "gazetteer") for name in names))
        slots, from_word = [], None  # nothing known: complete the last word (field keys)
    if from_word is not None:
        start, prefix = from_word, line[from_word:]
    exclude = {match[0] for i in range(len(positional)) if (match := vocab.callsign(positional, i))}
    exclude |= {enum_member(Capability, t.text) for t in positional} - {None}
    candidates: list[Candidate] = []
    for slot in slots:
        if slot.place and vocab.ctx.places is not None:
            candidates += [
                Candidate(name, "gazetteer") for name in vocab.ctx.places.complete(prefix)
            ]
        candidates += _candidates(slot.kind, prefix, vocab, verb, exclude)
    if from_word is None:
        keys = [k for k in verb.fields if k not in given and k.startswith(prefix.lower())]
        candidates += [Candidate(f"{key}=", FIELDS[key].help) for key in keys]
    return Completion(start, tuple(dict.fromkeys(candidates)))


def _expected(verb: Verb, tokens: list[Token], vocab: Vocabulary) -> tuple[list[Slot], int | None]:
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
        if slot.place and vocab.ctx.places is not None:  # several words, completed as one
            return [slot], tokens[index].start
        if slot.kind in REST or (slot.many and slot.kind is not Kind.CALLSIGN):
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
        if alias.startswith(word) and alias not in PREFIX_VERBS
    ]
    found = names + sorted(aliases, key=lambda c: c.text)
    exact = [c for c in found if c.text == word]
    return exact + [c for c in found if c.text != word]


def _ref_candidates(prefix: str, vocab: Vocabulary, hashed: bool = False) -> list[Candidate]:
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


def _callsign_candidates(prefix: str, vocab: Vocabulary, exclude: set) -> list[Candidate]:
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
        for w in STATE_WORDS
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
    kind: Kind, prefix: str, vocab: Vocabulary, verb: Verb, exclude: set
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
