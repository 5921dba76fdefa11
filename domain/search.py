"""Finding incidents by what a dispatcher remembers of them: words, numbers, names.

An incident is found by its reference, type, address, caller (name and phone),
description and chronology (notes included). Each typed word must start a word of the
incident's text, in any field and any order: ``gas 37`` finds "37 Gasworks Lane". A
typed word with punctuation inside (``0042-27NOV26``, ``07700-900123``) must match
those words in a row. Case and accents are ignored, and a phone number is also known by
its digits alone, so ``07700900123`` finds "07700 900123".

The server's history search (SQLite FTS5, ``unicode61`` tokens, prefix queries) reads
words the same way, so a closed incident is found by the same words as an open one.
"""

from __future__ import annotations

import re
import unicodedata

from cadterm.protocol.domain import Caller, Incident

__all__ = [
    "MAX_WORDS",
    "caller_words",
    "incident_matches",
    "incident_words",
    "searchable",
    "typed_words",
    "words_match",
    "words_of",
]

_WORD = re.compile(r"[^\W_]+")

#: Typed words beyond this many are ignored (the server's search takes as many).
MAX_WORDS = 16


def words_of(text: str) -> list[str]:
    """The words of `text`: letters and digits, lower case, accents removed."""
    plain = text.casefold()
    if not plain.isascii():  # most text is: skip the per-character pass
        plain = unicodedata.normalize("NFKD", plain)
        plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return _WORD.findall(plain)


def caller_words(caller: Caller | None) -> str:
    """What a caller is found by: name, phone as given, and the phone's digits alone."""
    if caller is None:
        return ""
    parts = [caller.name or "", caller.phone or ""]
    digits = "".join(ch for ch in caller.phone or "" if ch.isdigit())
    if digits:
        parts.append(digits)
    return " ".join(part for part in parts if part)


def incident_words(incident: Incident) -> list[str]:
    """Every word an incident can be found by, in field order."""
    fields = (
        incident.reference,
        incident.incident_type,
        incident.description,
        incident.location.address,
        caller_words(incident.caller),
        *(entry.text for entry in incident.chronology),
    )
    return words_of("\n".join(fields))


def searchable(incident: Incident) -> str:
    """The incident's words as one string, each after a space: what `words_match` reads."""
    return " " + " ".join(incident_words(incident))


def typed_words(query: str) -> list[str]:
    """What each typed word must find in a `searchable` text: ``" 0042 27nov"``.

    Punctuation alone is dropped (it matches anything); words past `MAX_WORDS` too.
    """
    typed = (words_of(word) for word in query.split()[:MAX_WORDS])
    return [" " + " ".join(parts) for parts in typed if parts]


def words_match(text: str, typed: list[str]) -> bool:
    """Whether every typed word (from `typed_words`) is in `text` (from `searchable`).

    A space starts each word in both, so a typed word found in the text starts a word
    there; its inner words, followed by a space, are whole words in a row.
    """
    return bool(typed) and all(word in text for word in typed)


def incident_matches(incident: Incident, query: str) -> bool:
    """Whether every typed word of `query` starts a word of the incident (see the module)."""
    return words_match(searchable(incident), typed_words(query))
