"""What the public reports: call arrivals, incident types, grades, sources and words.

Calls arrive as a Poisson process: at ``rate`` 1.0 about one a minute, the busy evening
of a mid-sized force; 0.2 is a quiet night, 20 or more a major incident. Grades follow
`GRADE_MIX` (far more grade 2-3 than grade 1), the type is drawn given the grade, the
source given the grade and type (999 for most emergencies, 101 and online for the rest),
and the place given the type (collisions on roads, shoplifting at retail parks).

Everything here is pure: a `random.Random` in, data out, so the same seed gives the same
calls. `plan_calls(seed, rate, duration)` is the whole arrival schedule of a run.

Some incidents ring in more than once. `draw_repeat` is a further call about one already
made: later, about the same place (the same address, a few doors along, across the road,
or down the road by the time someone rings), sometimes from the same caller ringing back.
The simulator marks each repeat with the call it repeats (`Call.repeat_of`): ground truth
for measuring duplicate detection, never sent to the server.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass

from cadterm.domain.geography import offset
from cadterm.protocol.domain import Caller, Grade, Location, SourceChannel

from .city import BRACKLEY, City, Place, Street, UnknownPlace

__all__ = [
    "GRADE_MIX",
    "SOURCE_MIX",
    "TYPES_BY_GRADE",
    "Call",
    "call_rng",
    "draw_call",
    "draw_repeat",
    "next_arrival",
    "plan_calls",
]

#: Share of calls at each grade.
GRADE_MIX: Mapping[int, float] = {1: 0.08, 2: 0.35, 3: 0.40, 4: 0.12, 5: 0.05}

#: Incident types (opening codes, see `cadterm.protocol.codes`) by grade, with weights.
TYPES_BY_GRADE: Mapping[int, Mapping[str, float]] = {
    1: {
        "ASSAULT": 14, "DOMESTIC": 16, "RTC": 12, "CONCERN": 12, "ROBBERY": 8,
        "FIREARMS": 4, "BURGLARY": 8, "PUBORDER": 8, "SEXUAL": 5, "MISSING": 5,
        "ABDUCTION": 2, "SUDDEN": 3, "ALARM": 3,
    },
    2: {
        "DOMESTIC": 14, "ASSAULT": 10, "CONCERN": 12, "SUSPICIOUS": 10, "ASB": 9,
        "THEFT": 8, "ALARM": 8, "MISSING": 6, "RTC": 6, "BURGLARY": 5, "WELFARE": 5,
        "HAZARD": 4, "SUDDEN": 2, "PUBORDER": 4, "CRIMDAM": 3,
    },
    3: {
        "BURGLARY": 12, "THEFT": 16, "CRIMDAM": 12, "VEHICLE": 10, "ASB": 12,
        "FRAUD": 8, "WELFARE": 8, "TRAFFIC": 6, "DRUGS": 6, "ANIMAL": 4, "SUSPICIOUS": 6,
    },
    4: {"FRAUD": 25, "THEFT": 25, "CRIMDAM": 15, "VEHICLE": 15, "BURGLARY": 10, "DRUGS": 10},
    5: {"FRAUD": 25, "ANIMAL": 15, "HAZARD": 15, "TRAFFIC": 10, "ASB": 20, "THEFT": 15},
}  # fmt: skip

_S = SourceChannel
#: How calls of each grade reach the control room (alarms come in as "alarm").
SOURCE_MIX: Mapping[int, Mapping[SourceChannel, float]] = {
    1: {_S.EMERGENCY_999: 92, _S.OTHER_AGENCY: 6, _S.OFFICER_INITIATED: 2},
    2: {_S.EMERGENCY_999: 50, _S.NON_EMERGENCY_101: 38, _S.OTHER_AGENCY: 7, _S.ONLINE: 5},
    3: {_S.NON_EMERGENCY_101: 60, _S.ONLINE: 30, _S.EMERGENCY_999: 10},
    4: {_S.NON_EMERGENCY_101: 50, _S.ONLINE: 50},
    5: {_S.ONLINE: 60, _S.NON_EMERGENCY_101: 40},
}

# Where each type tends to happen: place kinds, and the share of calls at a home address.
_PLACE_KINDS: Mapping[str, tuple[tuple[str, ...], float]] = {
    "RTC": (("road",), 0.15),
    "HAZARD": (("road",), 0.1),
    "TRAFFIC": (("road",), 0.2),
    "THEFT": (("retail", "transport"), 0.3),
    "ROBBERY": (("retail", "transport", "night"), 0.2),
    "PUBORDER": (("night", "civic", "transport"), 0.1),
    "ASSAULT": (("night", "transport", "park"), 0.5),
    "ASB": (("park", "retail", "transport"), 0.4),
    "ALARM": (("retail", "industrial", "school"), 0.4),
    "DRUGS": (("park", "night"), 0.5),
    "FIREARMS": (("night", "retail", "park"), 0.5),
    "VEHICLE": (("retail", "transport"), 0.5),
    "ANIMAL": (("park", "road"), 0.5),
    "SUSPICIOUS": (("industrial", "school", "park"), 0.6),
    "MISSING": (("health", "park"), 0.8),
    "CONCERN": (("health", "park", "transport"), 0.7),
}
_HOME_SHARE = 0.9  # types not listed above: mostly at someone's home

_SECTOR_WEIGHTS = {"City Centre": 30, "North": 17.5, "East": 17.5, "South": 17.5, "West": 17.5}

_DESCRIPTIONS: Mapping[str, tuple[str, ...]] = {
    "ABDUCTION": (
        "Caller saw a woman forced into a grey van",
        "Child taken by non-resident parent",
    ),
    "ALARM": (
        "Intruder alarm sounding, keyholder en route",
        "Panic alarm activated, no voice contact",
    ),
    "ANIMAL": ("Loose horse on the carriageway", "Dangerous dog off lead, chasing walkers"),
    "ASB": (
        "Youths throwing stones at buses",
        "Group drinking and shouting, residents intimidated",
    ),
    "ASSAULT": (
        "Male assaulted outside, bleeding from the head",
        "Fight involving four males, one on the floor",
    ),
    "BURGLARY": ("Caller hears someone downstairs", "Rear door forced, house ransacked overnight"),
    "CONCERN": (
        "Elderly neighbour not seen for three days",
        "Male on the bridge parapet, distressed",
    ),
    "CRIMDAM": ("Car windows smashed overnight", "Graffiti and damage to shop shutters"),
    "DOMESTIC": (
        "Shouting and screaming heard from the flat",
        "Ex-partner at the door refusing to leave",
    ),
    "DRUGS": (
        "Suspected dealing from a parked car",
        "Strong smell of cannabis, people coming and going",
    ),
    "FIREARMS": ("Male seen with what looks like a handgun", "Shots heard, two males ran off"),
    "FRAUD": (
        "Elderly caller scammed by a fake bank official",
        "Online purchase never arrived, seller vanished",
    ),
    "HAZARD": ("Debris across both lanes", "Traffic lights out at a busy junction"),
    "MISSING": (
        "Fourteen-year-old not home from school",
        "Patient missing from the ward, vulnerable",
    ),
    "PUBORDER": ("Large group fighting outside the venue", "Disorder spilling into the road"),
    "ROBBERY": ("Phone snatched at knifepoint", "Shop worker threatened, till emptied"),
    "RTC": (
        "Two-vehicle collision, one driver trapped",
        "Car into a lamp post, driver walking away",
    ),
    "SEXUAL": (
        "Woman reports being followed and touched",
        "Indecent exposure to children in the park",
    ),
    "SUDDEN": ("Neighbour found unresponsive", "Body found in the canal"),
    "SUSPICIOUS": ("Two males trying car door handles", "Person loitering by the school gates"),
    "THEFT": ("Shoplifter detained by security", "Bicycle stolen from the rack"),
    "TRAFFIC": (
        "Car driving erratically, possible drink driver",
        "Vehicle speeding through the estate",
    ),
    "VEHICLE": ("Catalytic converter stolen overnight", "Male breaking into a van"),
    "WELFARE": (
        "Check on a man sleeping rough in the cold",
        "Carer cannot get an answer at the door",
    ),
}

_FIRST_NAMES = ("Amir", "Bethany", "Chloe", "Daniel", "Emma", "Fatima", "George", "Hannah",
                "Imran", "Jack", "Kiran", "Lucy", "Mohammed", "Niamh", "Oliver", "Priya",
                "Ryan", "Sophie", "Tomasz", "Zara")  # fmt: skip
_SURNAMES = ("Ahmed", "Brown", "Clarke", "Davies", "Evans", "Fletcher", "Green", "Hussain",
             "Jones", "Khan", "Lewis", "Murphy", "Nowak", "Patel", "Roberts", "Smith",
             "Taylor", "Walker", "Wilson", "Wright")  # fmt: skip
_RELATIONSHIPS = ("victim", "witness", "neighbour", "passer-by", "relative", "staff member")


@dataclass(frozen=True)
class Call:
    """One call as it reaches the control room, ready to become a `create_incident`."""

    at: float
    grade: Grade
    incident_type: str
    location: Location
    description: str
    caller: Caller | None
    source: SourceChannel
    #: Ground truth: the number (from 1, in arrival order) of the call this one repeats.
    repeat_of: int | None = None

    def command_fields(self) -> dict:
        """The `create_incident` command fields (JSON-ready, no idempotency key)."""
        fields = {
            "grade": int(self.grade),
            "incident_type": self.incident_type,
            "location": self.location.model_dump(mode="json", exclude_none=True),
            "description": self.description,
            "source": self.source.value,
        }
        if self.caller is not None:
            fields["caller"] = self.caller.model_dump(mode="json", exclude_none=True)
        return fields


def call_rng(seed: int | str) -> random.Random:
    """The random stream calls are drawn from, for `seed` (independent of the units')."""
    return random.Random(f"cadterm-sim/{seed}/calls")


def next_arrival(rng: random.Random, after: float, rate: float) -> float:
    """When the next call comes, `rate` calls a minute on average (inf when rate is 0)."""
    if rate <= 0:
        return float("inf")
    return after + rng.expovariate(rate / 60.0)


def draw_call(rng: random.Random, at: float, city: City = BRACKLEY) -> Call:
    """One realistic call arriving at sim time `at`."""
    grade = _weighted(rng, GRADE_MIX)
    incident_type = _weighted(rng, TYPES_BY_GRADE[grade])
    source = (
        SourceChannel.ALARM
        if incident_type == "ALARM" and grade > 1
        else _weighted(rng, SOURCE_MIX[grade])
    )
    location = _draw_location(rng, incident_type, city)
    description = rng.choice(_DESCRIPTIONS[incident_type])
    caller = None
    if source in (
        SourceChannel.EMERGENCY_999,
        SourceChannel.NON_EMERGENCY_101,
        SourceChannel.ONLINE,
    ):
        caller = Caller(
            name=f"{rng.choice(_FIRST_NAMES)} {rng.choice(_SURNAMES)}",
            # Ofcom's range for drama: never a real subscriber.
            phone=f"07700 900{rng.randrange(1000):03d}",
            relationship=rng.choice(_RELATIONSHIPS),
        )
    return Call(at, Grade(grade), incident_type, location, description, caller, source)


def draw_repeat(
    rng: random.Random, original: Call, number: int, at: float, city: City = BRACKLEY
) -> Call:
    """A further call at sim time `at` about `original`, the `number`-th call of the run.

    Where: the same address (half), a few doors along or just across the way (a quarter),
    down the road, 250-500 m on (one in twelve), or only "near" the first address with
    no place the gazetteer knows (one in six). Who: the same caller ringing back about a third
    of the time, else someone else who saw it. Mostly the same type, the same grade.
    """
    where = rng.random()
    location = original.location
    if where >= 0.5:
        location = _moved(rng, original.location, where, city)
    incident_type = original.incident_type
    if rng.random() < 0.15:
        incident_type = _weighted(rng, TYPES_BY_GRADE[int(original.grade)])
    caller = original.caller
    if caller is None or rng.random() >= 0.35:
        caller = Caller(
            name=f"{rng.choice(_FIRST_NAMES)} {rng.choice(_SURNAMES)}",
            phone=f"07700 900{rng.randrange(1000):03d}",
            relationship=rng.choice(("witness", "passer-by", "neighbour")),
        )
    description = "Further call: " + rng.choice(_DESCRIPTIONS[incident_type])
    source = original.source  # a further call is a phone call: 999 if urgent, else 101
    if source not in (SourceChannel.EMERGENCY_999, SourceChannel.NON_EMERGENCY_101):
        urgent = original.grade <= Grade.PRIORITY
        source = SourceChannel.EMERGENCY_999 if urgent else SourceChannel.NON_EMERGENCY_101
    return Call(at, original.grade, incident_type, location, description, caller, source, number)


def _moved(rng: random.Random, location: Location, where: float, city: City) -> Location:
    """Somewhere near `location`, as a second caller would give it (see `draw_repeat`)."""
    if where >= 5 / 6 or location.position is None:
        return Location(address=f"near {location.address}")
    if where < 0.75:
        street = _street_of(location.address, city)
        if street is not None:
            number = int(location.address.split()[0])
            house = min(street.houses, max(1, number + rng.choice((-4, -2, 2, 4))))
            return city.location(street.name, house=house)
        metres = rng.uniform(30, 150)
    else:
        metres = rng.uniform(250, 500)
    bearing = rng.uniform(0, 2 * math.pi)
    position = offset(
        location.position, metres / 1000 * math.cos(bearing), metres / 1000 * math.sin(bearing)
    )
    return Location(
        address=f"outside {location.address}", position=position, sector=location.sector
    )


def _street_of(address: str, city: City) -> Street | None:
    words = address.split(",")[0].split()
    if len(words) < 2 or not words[0].isdigit():
        return None
    try:
        found = city.find(" ".join(words[1:]))
    except UnknownPlace:
        return None
    return found if isinstance(found, Street) else None


def plan_calls(seed: int | str, rate: float, duration: float, city: City = BRACKLEY) -> list[Call]:
    """Every call of a run of `duration` sim seconds: the same for the same seed and rate."""
    rng = call_rng(seed)
    calls = []
    at = next_arrival(rng, 0.0, rate)
    while at <= duration:
        calls.append(draw_call(rng, at, city))
        at = next_arrival(rng, at, rate)
    return calls


def _weighted(rng: random.Random, weights: Mapping) -> object:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def _draw_location(rng: random.Random, incident_type: str, city: City) -> Location:
    kinds, home_share = _PLACE_KINDS.get(incident_type, ((), _HOME_SHARE))
    sector = _weighted(rng, {s.name: _SECTOR_WEIGHTS.get(s.name, 10) for s in city.sectors})
    if rng.random() >= home_share:
        places = [p for p in city.places if p.kind in kinds and p.sector == sector] or [
            p for p in city.places if p.kind in kinds
        ]
        if places:
            place: Place = rng.choice(places)
            return city.location(place.name)
    streets = [s for s in city.streets if s.sector == sector] or list(city.streets)
    street = rng.choice(streets)
    return city.location(street.name, house=rng.randint(1, street.houses))
