"""How incidents end: time at scene, closing codes, and the virtual dispatcher's pace.

Pure tables and draws from a `random.Random`. Times are simulated seconds.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

__all__ = [
    "CLOSING_BY_TYPE",
    "DISPATCH_DELAY",
    "EMERGENCY_PRONE",
    "SCENE_MINUTES",
    "closing_code",
    "dispatch_delay",
    "scene_seconds",
]

#: Typical minutes a unit spends at scene, by incident type (default 30).
SCENE_MINUTES: Mapping[str, float] = {
    "ABDUCTION": 60, "ALARM": 12, "ANIMAL": 20, "ASB": 20, "ASSAULT": 45, "BURGLARY": 40,
    "CONCERN": 35, "CRIMDAM": 25, "DOMESTIC": 60, "DRUGS": 30, "FIREARMS": 60, "FRAUD": 30,
    "HAZARD": 25, "MISSING": 50, "PUBORDER": 40, "ROBBERY": 45, "RTC": 45, "SEXUAL": 60,
    "SUDDEN": 90, "SUSPICIOUS": 20, "THEFT": 30, "TRAFFIC": 20, "VEHICLE": 25, "WELFARE": 25,
}  # fmt: skip

#: Plausible closing codes by incident type, with weights (default: NFA/ADVICE/CRIME).
CLOSING_BY_TYPE: Mapping[str, Mapping[str, float]] = {
    "ALARM": {"NOTRACE": 50, "RESOLVED": 35, "HOAX": 5, "ADVICE": 10},
    "ASB": {"ADVICE": 50, "NOTRACE": 30, "RESOLVED": 20},
    "ASSAULT": {"CRIME": 55, "ARREST": 35, "NFA": 10},
    "BURGLARY": {"CRIME": 80, "ARREST": 10, "NOTRACE": 10},
    "CONCERN": {"RESOLVED": 60, "OTHERAGENCY": 30, "NFA": 10},
    "DOMESTIC": {"ARREST": 35, "CRIME": 35, "ADVICE": 30},
    "FIREARMS": {"ARREST": 30, "NOTRACE": 50, "HOAX": 20},
    "HAZARD": {"RESOLVED": 70, "OTHERAGENCY": 30},
    "MISSING": {"RESOLVED": 80, "OTHERAGENCY": 20},
    "RTC": {"RESOLVED": 50, "CRIME": 25, "OTHERAGENCY": 25},
    "SUDDEN": {"OTHERAGENCY": 70, "RESOLVED": 30},
    "SUSPICIOUS": {"NOTRACE": 60, "ADVICE": 30, "ARREST": 10},
    "WELFARE": {"RESOLVED": 60, "OTHERAGENCY": 40},
}
_DEFAULT_CLOSING = {"CRIME": 40, "ADVICE": 35, "NFA": 25}

#: Types at which an officer is most likely to press the emergency button (state 0).
EMERGENCY_PRONE = frozenset({"ASSAULT", "DOMESTIC", "FIREARMS", "PUBORDER", "ROBBERY"})

#: How long the virtual dispatcher takes to act on an unresourced incident, by grade:
#: (fewest, most) seconds.
DISPATCH_DELAY: Mapping[int, tuple[float, float]] = {
    1: (15, 45),
    2: (60, 240),
    3: (300, 1200),
    4: (600, 1800),
    5: (120, 600),
}


def scene_seconds(rng: random.Random, incident_type: str, factor: float = 1.0) -> float:
    """How long a unit stays at scene: around the type's typical time, times `factor`."""
    minutes = SCENE_MINUTES.get(incident_type, 30.0)
    return max(30.0, minutes * 60.0 * rng.uniform(0.5, 1.5) * factor)


def closing_code(rng: random.Random, incident_type: str) -> str:
    """A plausible closing code for an attended incident of `incident_type`."""
    weights = CLOSING_BY_TYPE.get(incident_type, _DEFAULT_CLOSING)
    codes = list(weights)
    return rng.choices(codes, weights=[weights[c] for c in codes])[0]


def dispatch_delay(rng: random.Random, grade: int) -> float:
    """Seconds the virtual dispatcher waits before acting on an incident of `grade`."""
    low, high = DISPATCH_DELAY.get(grade, (60, 300))
    return rng.uniform(low, high)
