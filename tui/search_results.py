"""The matches of one search: open and closed incidents, and which one is shown.

`f WORDS` finds incidents in the console's own picture at once (open ones first, newest
first; then those closed today) and asks the server's history for those that have left
the picture; their answer is added when it comes. `SearchResults` keeps the list and the
current match ("2 of 6"); stepping wraps round. Pure bookkeeping: no Textual, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cadterm.domain.search import searchable, typed_words, words_match
from cadterm.protocol.domain import Incident, IncidentStatus
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import sortable_time

__all__ = ["Match", "SearchResults"]


@dataclass(frozen=True)
class Match:
    """One incident found; `archived` when it came from the server's history."""

    incident: Incident
    archived: bool = False

    @property
    def reference(self) -> str:
        return self.incident.reference

    @property
    def closed(self) -> bool:
        return self.archived or self.incident.status == IncidentStatus.CLOSED


@dataclass
class SearchResults:
    """What one search found, and which match is current."""

    text: str
    matches: list[Match] = field(default_factory=list)
    index: int = 0
    #: What became of the history search: "searching", "done", or why it was not done.
    history: str = "searching"
    #: More archived matches exist than the server sent.
    more_archived: bool = False

    @classmethod
    def of_picture(
        cls, text: str, state: DispatchState, cache: dict[str, tuple[int, str]] | None = None
    ) -> SearchResults:
        """The matches in the picture: open newest first, then closed latest first.

        `cache` keeps each incident's searchable words by reference and version, so a
        search of a large picture reads only the incidents that changed since the last.
        """
        cache = {} if cache is None else cache
        typed = typed_words(text)
        found = []
        for reference, incident in state.incidents.items():
            kept = cache.get(reference)
            if kept is None or kept[0] != incident.version:
                kept = cache[reference] = (incident.version, searchable(incident))
            if words_match(kept[1], typed):
                found.append(incident)
        for gone in cache.keys() - state.incidents.keys():
            del cache[gone]
        open_ = [i for i in found if i.status != IncidentStatus.CLOSED]
        closed = [i for i in found if i.status == IncidentStatus.CLOSED]
        open_.sort(key=lambda i: (sortable_time(i.created_at), i.reference), reverse=True)
        closed.sort(key=lambda i: (sortable_time(i.closed_at), i.reference), reverse=True)
        return cls(text, [Match(i) for i in open_ + closed])

    def add_archived(self, incidents: list[Incident], more: bool) -> None:
        """Add the history's matches after the picture's (one in both counts once)."""
        known = {match.reference for match in self.matches}
        self.matches += [Match(i, archived=True) for i in incidents if i.reference not in known]
        self.history = "done"
        self.more_archived = more

    @property
    def current(self) -> Match | None:
        """The match shown, or None when nothing was found."""
        return self.matches[self.index] if self.matches else None

    def step(self, by: int) -> Match | None:
        """Move to the next (`by` = 1) or previous (-1) match, wrapping round."""
        if self.matches:
            self.index = (self.index + by) % len(self.matches)
        return self.current

    @property
    def position(self) -> str:
        """``2 of 6`` (``0 of 0`` when nothing matched)."""
        total = len(self.matches)
        return f"{self.index + 1 if total else 0} of {total}{'+' if self.more_archived else ''}"
