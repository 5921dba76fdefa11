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

__all__ = ["caller_words", "incident_matches", "incident_words", "words_of"]

_WORD = re.compile(r"[^\W_]+")

#: Typed words beyond this many are ignored (the server's search takes as many).
MAX_WORDS = 16


def words_of(text: str) -> list[str]:
    """The words of `text`: letters and digits, lower case, accents removed."""
    plain = unicodedata.normalize("NFKD", text.casefold())
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
    return [word for text in fields for word in words_of(text)]


def incident_matches(incident: Incident, query: str) -> bool:
    """Whether every typed word of `query` starts a word of the incident (see the module)."""
    typed = [words_of(word) for word in query.split()[:MAX_WORDS]]
    typed = [parts for parts in typed if parts]  # punctuation alone matches anything
    if not typed:
        return False
    words = incident_words(incident)
    return all(_found(parts, words) for parts in typed)


def _found(parts: list[str], words: list[str]) -> bool:
    """Whether `parts` occur in a row in `words`, the last as a prefix, the rest whole."""
    *whole, last = parts
    span = len(parts)
    for start in range(len(words) - span + 1):
        if words[start + span - 1].startswith(last) and words[start : start + span - 1] == whole:
            return True
    return False
