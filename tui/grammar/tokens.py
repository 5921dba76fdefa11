"""The words of a command line: how a line splits into them, and what they name.

This is the grammar's lexical layer, kept apart so the grammar reads as verbs and
arguments. `tokenize` splits a line into `Token` words that remember their span (so an
error can underline them), whether they were quoted (a quoted word is never a
``key=value`` field) and whether a quote was left open (an error only if the parser
reads that word: a note may hold a lone apostrophe). A `Cursor` reads tokens left to
right; a `Lexicon` says which callsign or incident some words name; `suggest` finds the
known names closest to a mistyped one.

Splitting rules, chosen so that ordinary English and addresses survive untouched:

* Words are separated by whitespace.
* A double or single quote groups text, spaces included, only where it opens a word or
  follows ``=`` (``"ARV 1"``, ``desc="two cars"``). Anywhere else it is a plain
  character, so ``St John's Road`` is three ordinary words.
* The group closes at the next same quote that ends a word (followed by a space or the
  end of the line), so ``'won't answer'`` is one group holding an apostrophe.
* A quote that is never closed makes a word that runs to the end of the line and is
  marked `unterminated`.

Tokenising never fails. Errors::

    ValueError
     └── ParseError      raised by `Cursor` and by the grammar built on it
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = [
    "FULL_REFERENCE",
    "QUOTES",
    "REF_WIDTH",
    "SHORT_REFERENCE",
    "SHOWN_REFERENCE",
    "Cursor",
    "Lexicon",
    "ParseError",
    "Token",
    "closest",
    "code_named",
    "enum_member",
    "is_explicit_reference",
    "log_number",
    "short_reference",
    "shown",
    "span_of",
    "suggest",
    "tokenize",
]


class ParseError(ValueError):
    """A line that cannot be read: what was wrong, and the span of text at fault."""

    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.message = message
        self.start = start
        self.end = end

    def __repr__(self) -> str:
        return f"ParseError({self.message!r}, {self.start}, {self.end})"


#: Characters that group words when they open a word or follow ``=``.
QUOTES = "\"'"


@dataclass(frozen=True)
class Token:
    """One word of a command line.

    `text` is the word with its grouping quotes removed; `start` and `end` are its span
    in the line, quotes included (``line[start:end]`` is what the operator typed).
    """

    text: str
    start: int
    end: int
    quoted: bool = False
    """The word opened with a quote, so it is always plain text, never a field."""
    unterminated: bool = False
    """A quote in the word was never closed; the word runs to the end of the line."""


def tokenize(line: str, start: int = 0) -> list[Token]:
    """Split ``line[start:]`` into tokens whose spans index into the whole `line`."""
    tokens: list[Token] = []
    index = start
    while index < len(line):
        if line[index].isspace():
            index += 1
            continue
        token = _read_word(line, index)
        tokens.append(token)
        index = token.end
    return tokens


def _read_word(line: str, start: int) -> Token:
    """Read the word that begins at `start` (a non-space character)."""
    parts: list[str] = []
    index = start
    while index < len(line) and not line[index].isspace():
        char = line[index]
        opens_group = char in QUOTES and (index == start or line[index - 1] == "=")
        if not opens_group:
            parts.append(char)
            index += 1
            continue
        close = _closing_quote(line, char, index + 1)
        if close < 0:
            parts.append(line[index + 1 :])
            return Token("".join(parts), start, len(line), line[start] in QUOTES, True)
        parts.append(line[index + 1 : close])
        index = close + 1
    return Token("".join(parts), start, index, line[start] in QUOTES)


def _closing_quote(line: str, quote: str, start: int) -> int:
    """Where the group opened by `quote` closes: the next `quote` that ends a word, so an
    apostrophe inside a word (``'won't go'``) does not close it. -1 if none does."""
    index = line.find(quote, start)
    while index >= 0 and index + 1 < len(line) and not line[index + 1].isspace():
        index = line.find(quote, index + 1)
    return index


# --------------------------------------------------------------------------- names

_DIGITS = re.compile(r"[0-9]+")
FULL_REFERENCE = re.compile(r"[0-9]{1,6}-[0-9]{2}[A-Za-z]{3}[0-9]{2}")
SHORT_REFERENCE = re.compile(r"#?([0-9]{1,6})")


def log_number(reference: str) -> int | None:
    """The log number of a reference such as ``0042-27NOV26`` (42), if it has one."""
    head = reference.split("-", 1)[0]
    return int(head) if _DIGITS.fullmatch(head) else None


#: Width of the queue's REF column: ``0042-27NOV`` and ``50003-27`` both fit.
REF_WIDTH = 10

_DAILY_REFERENCE = re.compile(r"(\d{4,})-(\d{2})([A-Z]{3})\d{2}")
#: A reference as the boards show it (`short_reference`): ``0042-27NOV``, ``50003-27``.
SHOWN_REFERENCE = re.compile(r"[0-9]{4,6}-[0-9]{2}([A-Za-z]{3})?")


def short_reference(reference: str) -> str:
    """The number and day, as dispatchers say it, in at most `REF_WIDTH` characters.

    ``0042-27NOV26`` -> ``0042-27NOV``. Past 9,999 in a day the month goes instead of
    the column growing (``50003-27NOV26`` -> ``50003-27``): the day of the month still
    tells today's log from yesterday's, and every column after REF stays put.
    """
    match = _DAILY_REFERENCE.fullmatch(reference)
    if match is None:
        return reference
    number, day, month = match.groups()
    short = f"{number}-{day}{month}"
    return short if len(short) <= REF_WIDTH else f"{number}-{day}"


def is_explicit_reference(text: str) -> bool:
    """Whether `text` can only be meant as a reference: the full form, as the boards
    show it (``0042-27NOV``), or ``#42``."""
    return (
        text.startswith("#")
        or FULL_REFERENCE.fullmatch(text) is not None
        or SHOWN_REFERENCE.fullmatch(text) is not None
    )


def shown(text: str, limit: int = 40) -> str:
    """`text` quoted for an error message: escaped, and cut short if long."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def closest(word: str, options: Sequence[str], limit: int) -> list[str]:
    """Up to `limit` options that look like `word` (ignoring case), closest first."""
    matcher = difflib.SequenceMatcher(b=word.lower()[:60])
    scored = []
    for option in dict.fromkeys(options):
        matcher.set_seq1(option.lower())
        if matcher.real_quick_ratio() >= 0.5 and matcher.ratio() >= 0.5:
            scored.append((-matcher.ratio(), option.lower(), option))
    return [option for *_, option in sorted(scored)[:limit]]


def suggest(word: str, options: Sequence[str], limit: int = 4) -> str:
    """A short hint naming the options closest to `word`, or a few known ones."""
    close = closest(word, options, limit)
    if close:
        return "did you mean " + ", ".join(close) + "?"
    if not options:
        return "none known"
    some = sorted(options, key=str.lower)[:limit]
    return "known: " + ", ".join(some) + (", ..." if len(options) > limit else "")


def code_named(table: Mapping[str, str], text: str) -> str | None:
    """The key of `table` that `text` names, ignoring case; any word if `table` is empty."""
    if not table:
        return text.upper() if text and not any(c.isspace() for c in text) else None
    return {key.lower(): key for key in table}.get(text.lower())


def enum_member(enum: type[Enum], text: str) -> Any:
    """The member of a string enum that `text` names, ignoring case, '-' and '_'."""
    key = text.lower().replace("-", "").replace("_", "")
    for member in enum:
        if member.value.replace("_", "") == key:
            return member
    return None


class Lexicon:
    """Case-insensitive lookups of the callsigns and incident references a console knows."""

    def __init__(self, references: Sequence[str], callsigns: Sequence[str]) -> None:
        self.callsigns: dict[str, str] = {}
        self.compact: dict[str, str | None] = {}
        for callsign in callsigns:
            words = callsign.split()
            if not words:
                continue
            self.callsigns.setdefault(" ".join(words).lower(), callsign)
            key = "".join(words).lower()
            self.compact[key] = callsign if self.compact.get(key, callsign) == callsign else None
        self.max_words = max((len(key.split()) for key in self.callsigns), default=1)
        self.references = {reference.lower(): reference for reference in references}
        self.by_number: dict[int, str] = {}
        # What the boards show can be typed back: `0042-27NOV` names `0042-27NOV26`.
        self.by_shown: dict[str, str] = {}
        for reference in references:  # newest last, so the newest wins
            number = log_number(reference)
            if number is not None:
                self.by_number[number] = reference
            self.by_shown[short_reference(reference).lower()] = reference

    def reference(self, text: str) -> str | None:
        """The known incident `text` names, if any."""
        key = text.strip().lower()
        found = self.references.get(key) or self.by_shown.get(key)
        if found is not None:
            return found
        short = SHORT_REFERENCE.fullmatch(text.strip())
        return self.by_number.get(int(short.group(1))) if short else None

    def callsign(self, tokens: Sequence[Token], index: int) -> tuple[str, int] | None:
        """The known callsign starting at ``tokens[index]`` and how many words it took."""
        for count in range(min(self.max_words, len(tokens) - index), 0, -1):
            words = " ".join(t.text for t in tokens[index : index + count]).split()
            found = self.callsigns.get(" ".join(words).lower())
            if found is None and count == 1:
                found = self.compact.get("".join(words).lower())
            if found is not None:
                return found, count
        return None


class Cursor:
    """Positional tokens being read left to right."""

    def __init__(self, line: str, tokens: Sequence[Token], index: int = 0) -> None:
        self.line = line
        self.tokens = tokens
        self.index = index

    @property
    def remaining(self) -> int:
        return len(self.tokens) - self.index

    def peek(self, ahead: int = 0) -> Token | None:
        at = self.index + ahead
        return self.tokens[at] if at < len(self.tokens) else None

    def take(self, count: int = 1) -> list[Token]:
        """Consume `count` words; a word with an open quote is an error here."""
        taken = list(self.tokens[self.index : self.index + count])
        for token in taken:
            if token.unterminated:
                raise ParseError("unterminated quote: close it", token.start, token.end)
        self.index += count
        return taken

    def rest_raw(self) -> tuple[str, tuple[int, int]]:
        """Consume every word and return the line from the first of them, as typed."""
        first, last = self.tokens[self.index], self.tokens[-1]
        self.index = len(self.tokens)
        return self.line[first.start : last.end], (first.start, last.end)

    def rest_words(self) -> tuple[str, tuple[int, int]]:
        """Consume every word and return them joined by single spaces, quotes removed."""
        taken = self.take(self.remaining)
        return " ".join(t.text for t in taken), (taken[0].start, taken[-1].end)


def span_of(tokens: Sequence[Token]) -> tuple[int, int]:
    return tokens[0].start, tokens[-1].end
