"""What this console did while no backend answered, shown on its picture until one has it.

In CAD-down mode the console goes on working on its last picture: each command that
waits in the journal is run through the same rules the server runs
(`cadterm.domain.rules.decide`) on a copy of that picture, in journal order, and the
events they would produce are folded into the copy. The boards show the copy, and mark
everything it changed as *provisional*: the server has not seen it yet, and when it
does it may decide otherwise (another console may have sent the unit elsewhere).

The copy is made on write: only the incidents and units an action may touch are copied,
so a picture of thousands of incidents costs little more than the actions themselves.
Nothing here reads the journal file, the network or the clock: every time comes from
the commands (`taken_at`, stamped when the dispatcher typed them).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cadterm.domain.rules import Codes, Refused, decide
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import Command
from cadterm.protocol.domain import Operator
from cadterm.protocol.events import Event
from cadterm.protocol.fold import Changes, DispatchState, FoldError, apply
from cadterm.protocol.problems import Problem

__all__ = ["OfflineAction", "ProvisionalPicture", "provisional_picture"]

log = logging.getLogger("cadterm.client")

#: The codes a console knows without a backend: the protocol's defaults.
CODES = Codes(INCIDENT_TYPES, CLOSING_CODES)


@dataclass(frozen=True)
class OfflineAction:
    """One waiting command, and what the rules made of it on this console's picture."""

    key: str
    command: Command
    #: The event the rules gave it here, folded into the provisional picture.
    event: Event | None = None
    #: Why the rules refused it here (the server will decide again when it has it).
    problem: Problem | None = None


@dataclass
class ProvisionalPicture:
    """The confirmed picture with the waiting commands applied, and what they touched."""

    state: DispatchState
    incidents: frozenset[str] = frozenset()
    units: frozenset[str] = frozenset()
    reports: frozenset[str] = frozenset()
    actions: tuple[OfflineAction, ...] = ()
    #: Provisional reference -> the entry key of the command that opened it.
    opened: dict[str, str] = field(default_factory=dict)

    @property
    def changes(self) -> Changes:
        """Everything the provisional actions touched, as a change set."""
        return Changes(
            incidents=set(self.incidents), units=set(self.units), reports=set(self.reports)
        )


def provisional_picture(
    confirmed: DispatchState,
    waiting: Sequence[Command],
    operator: Operator,
    provisional: Mapping[str, str] | None = None,
) -> ProvisionalPicture:
    """The picture `confirmed` with the `waiting` commands applied, oldest first.

    `provisional` maps the idempotency key of a waiting ``create_incident`` with no
    reserved reference to the provisional reference the console showed for it: the
    incident appears under that reference (the rules would give it the next log number,
    which only the server may give). `confirmed` is never changed.
    """
    provisional = provisional or {}
    shown = _shallow_copy(confirmed)
    owned_incidents: set[str] = set()
    owned_units: set[str] = set()
    touched = Changes()
    actions: list[OfflineAction] = []
    opened: dict[str, str] = {}
    for command in waiting:
        key = command.idempotency_key
        at = command.taken_at
        if at is None:  # a journalled command is always stamped; never invent a time
            actions.append(OfflineAction(key, command))
            continue
        try:
            event = decide(shown, command, operator, at, CODES)
        except Refused as refused:
            actions.append(OfflineAction(key, command, problem=refused.problem))
            continue
        if command.type == "create_incident" and key in provisional:
            event = event.model_copy(update={"reference": provisional[key]})
            opened[provisional[key]] = key
        _own(shown, event, owned_incidents, owned_units)
        try:
            changes = apply(shown, event)
        except FoldError as error:  # the rules and the fold disagree: show, never crash
            log.error("provisional %s not applied: %s", command.type, error)
            actions.append(OfflineAction(key, command))
            continue
        touched.update(changes)
        actions.append(OfflineAction(key, command, event=event))
    return ProvisionalPicture(
        state=shown,
        incidents=frozenset(touched.incidents),
        units=frozenset(touched.units),
        reports=frozenset(touched.reports),
        actions=tuple(actions),
        opened=opened,
    )


def _shallow_copy(state: DispatchState) -> DispatchState:
    """A picture sharing `state`'s entities until one is copied to change it.

    Every field is carried over; each mapping is a new dict (the fold adds and removes
    entries in place), and the reserved blocks are new lists (it takes from them).
    Incidents and units are copied one by one before an action changes them (`_own`);
    the fold replaces a report whole, never changes one in place.
    """
    fields = {}
    for name in DispatchState.model_fields:
        value = getattr(state, name)
        if name == "reserved":
            value = {ws: list(refs) for ws, refs in value.items()}
        elif isinstance(value, dict):
            value = dict(value)
        fields[name] = value
    return DispatchState.model_construct(**fields)


def _own(shown: DispatchState, event: Event, incidents: set[str], units: set[str]) -> None:
    """Copy into `shown` every incident and unit `event` may change, before it does.

    The fold changes what an event names and what those are tied to (a unit's
    incident, an incident's units): everything within two steps of a name the event
    carries is copied, once, the first time an action reaches it.
    """
    names = _names(event)
    wanted_incidents = {name for name in names if name in shown.incidents}
    wanted_units = {name for name in names if name in shown.units}
    for _ in range(2):
        for reference in list(wanted_incidents):
            wanted_units.update(shown.incidents[reference].assigned)
        for callsign in list(wanted_units):
            unit = shown.units.get(callsign)
            if unit is not None and unit.incident:
                wanted_incidents.add(unit.incident)
    for reference in wanted_incidents - incidents:
        if reference in shown.incidents:
            shown.incidents[reference] = shown.incidents[reference].model_copy(deep=True)
            incidents.add(reference)
    for callsign in wanted_units - units:
        if callsign in shown.units:
            shown.units[callsign] = shown.units[callsign].model_copy(deep=True)
            units.add(callsign)


def _names(event: Event) -> set[str]:
    """Every string the event carries: among them, the references and callsigns it names."""
    found: set[str] = set()
    for value in event.__dict__.values():
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, (tuple, list, frozenset, set)):
            found.update(item for item in value if isinstance(item, str))
    return found
