"""Typed locations against the gazetteer: a match gives coordinates and a sector.

`n` and `loc` take a location as typed (and so does an incident created from an
online report in the triage queue). When the console has a gazetteer, each one is
looked up before the command is sent: a match records the gazetteer's address, position
and sector (a sector or position typed as a field is kept); no match leaves the text as
typed, with no coordinates, and the summary says it is unverified.
"""

from __future__ import annotations

from cadterm.domain.gazetteer import Gazetteer
from cadterm.protocol.drafts import CommandDraft, draft

from .verbs import Action, Dispatch

__all__ = ["placed"]

_LOCATED = ("create_incident", "relocate_incident", "triage_report")


def placed(action: Action, places: Gazetteer | None) -> Action:
    """`action` with each typed location matched against `places` (when there are some)."""
    if places is None or not isinstance(action, Dispatch):
        return action
    commands, notes = [], []
    for command in action.commands:
        located, note = _place(command, places)
        commands.append(located)
        if note:
            notes.append(note)
    if not notes:
        return action
    return Dispatch(tuple(commands), f"{action.summary} ({'; '.join(notes)})")


def _place(command: CommandDraft, places: Gazetteer) -> tuple[CommandDraft, str]:
    if command.type not in _LOCATED:
        return command, ""
    location = command.location  # type: ignore[attr-defined]
    if location is None:
        return command, ""  # a report closed without an incident has no location
    if location.position is not None:
        return command, ""  # given as pos=: the dispatcher's own coordinates win
    found = places.match(location.address)
    if found is None:
        return command, "unverified: not in the gazetteer"
    fields = command.model_dump(exclude_unset=True)
    fields["location"] = {
        "address": found.address,
        "position": {"lat": found.position.lat, "lon": found.position.lon},
        "sector": location.sector or found.sector,
    }
    if fields["location"]["sector"] is None:
        del fields["location"]["sector"]
    fields.pop("type")
    return draft(command.type, **fields), f"{found.kind.value} in {found.sector or 'no sector'}"
