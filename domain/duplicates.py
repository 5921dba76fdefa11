"""Likely duplicate calls: which open incidents a new call may be reporting again.

A busy incident rings in many times: a fight outside a pub, a crash on the ring road,
the same frightened neighbour calling back. `likely_duplicates` takes what is known of a
new call (where, when, the caller's phone) and the open incidents, and returns the ones
it may be a repeat of, best first, each with the reasons in a dispatcher's words:

- **same place**: the same address (compared as the gazetteer folds it), or a position
  within `DuplicatePolicy.metres` of the incident's, opened within `window` of the call;
- **same caller**: the same phone number (digits only, ``+44`` read as ``0``; at least
  six digits, so a blank or a short code never matches), opened within `phone_window`.

With `DuplicatePolicy.same_type` (the default), a match on place alone also needs the
same incident type when the call's type is known: a busy retail park has thefts and
collisions in the same half hour that are not one incident. A match on the phone does
not: the same caller ringing back is the same call whatever it is typed as.

It is a pure function of its arguments: no clock, no I/O. Closed incidents and the
incident itself (a new incident checked against the rest) are never offered, nor one the
call is already linked to. Times that cannot be compared (a naive time from an older
picture) are skipped, never guessed at.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cadterm.protocol.domain import Incident, IncidentStatus, Position
from cadterm.protocol.types import known_time

from .gazetteer import fold
from .geography import haversine_km

__all__ = ["DuplicateOffer", "DuplicatePolicy", "NewCall", "likely_duplicates", "phone_key"]

# ASCII digits only: digits of other scripts are not a number anyone dialled here.
_DIGITS = re.compile(r"[0-9]")
#: Fewer digits than this are not a caller's number to match on ("999", "0", "").
_MIN_PHONE_DIGITS = 6


@dataclass(frozen=True)
class DuplicatePolicy:
    """How near, and how recent, an open incident must be to be offered as the same one."""

    metres: float = 200.0
    window: timedelta = timedelta(minutes=30)
    phone_window: timedelta = timedelta(hours=12)
    limit: int = 5
    same_type: bool = True

    def __post_init__(self) -> None:
        if not (self.metres >= 0 and math.isfinite(self.metres)):
            raise ValueError(f"duplicate distance must be 0 or more metres, not {self.metres}")
        for name in ("window", "phone_window"):
            if getattr(self, name) < timedelta(0):
                raise ValueError(f"duplicate {name} must not be negative")
        if self.limit < 1:
            raise ValueError(f"duplicate limit must be 1 or more, not {self.limit}")


@dataclass(frozen=True)
class NewCall:
    """What is known of a new call: any of it may be missing while a form is filled."""

    at: datetime
    address: str | None = None
    position: Position | None = None
    phone: str | None = None
    incident_type: str | None = None
    reference: str | None = None  # the incident the call already is, if any
    linked: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class DuplicateOffer:
    """An open incident the call may be a repeat of, and why."""

    reference: str
    reasons: tuple[str, ...]
    metres: float | None
    minutes: float
    same_phone: bool

    @property
    def summary(self) -> str:
        """``same caller's phone, 80 m away, opened 12 min before``."""
        return ", ".join(self.reasons)


def phone_key(phone: str | None) -> str | None:
    """A phone number as compared: its ASCII digits, ``+44``/``0044`` as ``0``; None when
    too short to be a caller's number."""
    if not phone:
        return None
    digits = "".join(_DIGITS.findall(phone))
    if digits.startswith("0044"):
        digits = "0" + digits[4:]
    elif digits.startswith("44") and phone.lstrip().startswith("+"):
        digits = "0" + digits[2:]
    return digits if len(digits) >= _MIN_PHONE_DIGITS else None


def likely_duplicates(
    call: NewCall, incidents: Iterable[Incident], policy: DuplicatePolicy | None = None
) -> list[DuplicateOffer]:
    """The open incidents `call` may be a repeat of, best first (at most `policy.limit`).

    Raises ``ValueError`` if the call's time is not timezone-aware.
    """
    policy = policy or DuplicatePolicy()
    at = known_time(call.at)
    if at is None:
        raise ValueError("a call's time must be timezone-aware")
    address = fold(call.address) if call.address else ""
    phone = phone_key(call.phone)
    code = " ".join((call.incident_type or "").split()).upper()
    # The widest window that can match: everything older is passed over at once, so a
    # long shift's picture costs a comparison per incident, not a fold of its address.
    widest = max(policy.window, policy.phone_window) if phone else policy.window
    offers: list[tuple[tuple, DuplicateOffer]] = []
    for incident in incidents:
        if incident.status == IncidentStatus.CLOSED or incident.reference == call.reference:
            continue
        if incident.reference in call.linked:
            continue
        opened = known_time(incident.created_at)
        if opened is None:
            continue
        apart = abs(at - opened)
        if apart > widest:
            continue
        reasons: list[str] = []
        same_phone = (
            phone is not None
            and apart <= policy.phone_window
            and _phone_key(incident.caller.phone if incident.caller else None) == phone
        )
        if same_phone:
            reasons.append("same caller's phone")
        metres = None  # measured only for an incident near enough in time to matter
        if apart <= policy.window and not (
            code and policy.same_type and incident.incident_type != code
        ):
            metres = _metres(call.position, incident.location.position)
            if address and _fold(incident.location.address) == address:
                reasons.append("same address")
            elif metres is not None and metres <= policy.metres:
                reasons.append(f"{metres:.0f} m away")
        if not reasons:
            continue
        if metres is None:
            metres = _metres(call.position, incident.location.position)
        minutes = (at - opened).total_seconds() / 60
        side = "before" if minutes >= 0 else "after"
        when = f"opened {abs(minutes):.0f} min {side}" if abs(minutes) >= 1 else ""
        reasons.append(when or f"opened just {side}")
        offer = DuplicateOffer(incident.reference, tuple(reasons), metres, minutes, same_phone)
        # Both a phone and a place first; then the nearer; then the more recent.
        rank = (-len(reasons), metres if metres is not None else math.inf, abs(minutes))
        offers.append((rank, offer))
    offers.sort(key=lambda pair: (pair[0], pair[1].reference))
    return [offer for _, offer in offers[: policy.limit]]


# The picture's addresses and phones, compared again for every new call: kept folded.
_fold = functools.lru_cache(maxsize=8192)(fold)


@functools.lru_cache(maxsize=8192)
def _phone_key(phone: str | None) -> str | None:
    return phone_key(phone)


def _metres(a: Position | None, b: Position | None) -> float | None:
    if a is None or b is None:
        return None
    metres = haversine_km(a, b) * 1000
    return metres if math.isfinite(metres) else None
