"""The dispatch domain: incidents, units, operators and the vocabulary they share.

The defaults follow UK police practice (grades 1-5, Airwave unit states 0-11, THRIVE risk
headings). Fields are named so that each maps onto a NENA EIDO component without loss:
an `Incident` is an EIDO incident component, its `Location` a location component, its
`Caller` a person component, a `Unit` an agency resource and `chronology` the notes and
history.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, Strict, StrictInt

from .types import OperatorId, Text

__all__ = [
    "AVAILABLE_STATES",
    "COMMITTED_STATES",
    "DEPLOYABLE_STATES",
    "STATE_WORDS",
    "Caller",
    "Capability",
    "ChatLine",
    "ChronologyEntry",
    "Grade",
    "Incident",
    "IncidentLink",
    "IncidentStatus",
    "LinkRelation",
    "Location",
    "Operator",
    "Position",
    "Report",
    "ReportChannel",
    "Risk",
    "Role",
    "SourceChannel",
    "TriageOutcome",
    "Unit",
    "UnitState",
    "UnitType",
]


class _Model(BaseModel):
    """Base for every domain model: unknown fields are errors, not silently dropped.

    These models describe the picture as the server holds it and sends it. Times must be
    timezone-aware, but identifiers and free text are taken as stored, so a picture
    written before a rule existed still loads: the strict forms a command must pass are
    in `cadterm.protocol.commands` (`LocationInput`, ...) and `cadterm.protocol.types`.
    """

    model_config = ConfigDict(extra="forbid")


class Grade(IntEnum):
    """Incident grade: how urgently the public needs a response."""

    EMERGENCY = 1
    PRIORITY = 2
    SCHEDULED = 3
    APPOINTMENT = 4
    RESOLVED_WITHOUT_DEPLOYMENT = 5

    @property
    def label(self) -> str:
        """The grade as a dispatcher says it ("Emergency", "Priority", ...)."""
        return self.name.replace("_", " ").capitalize()


class UnitState(IntEnum):
    """Airwave status numbers. Operators may give the number or the word."""

    EMERGENCY = 0
    ON_DUTY = 1
    AVAILABLE_ON_PATROL = 2
    AVAILABLE_AT_STATION = 3
    REFRESHMENTS = 4
    EN_ROUTE = 5
    AT_SCENE = 6
    COMMITTED_DEPLOYABLE = 7
    COMMITTED_NOT_DEPLOYABLE = 8
    PRISONER_ESCORT = 9
    AT_COURT = 10
    OFF_DUTY = 11

    @property
    def label(self) -> str:
        """The state as a dispatcher says it ("At scene", "En route", ...)."""
        return self.name.replace("_", " ").capitalize()

    @classmethod
    def parse(cls, value: int | str) -> UnitState:
        """Read a state given as a number (``6``, ``"6"``) or words (``"at scene"``).

        Words are matched case-insensitively, ignoring spaces, hyphens and underscores,
        and a few aliases dispatchers use are accepted (``"available"``, ``"scene"``).
        Raises ``ValueError`` naming the accepted forms when nothing matches.
        """
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type: 6.0 is 6
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("unit state must be a number 0-11 or a state name")
        if isinstance(value, int):
            try:
                return cls(value)
            except ValueError:
                raise ValueError(f"unit state {value} is not an Airwave state (0-11)") from None
        text = value.strip()
        # isdigit() alone is true of any script's digits ("٦"): only ASCII is a number here.
        if text.isascii() and text.isdigit():
            return cls.parse(int(text))
        key = "".join(ch for ch in text.lower() if ch.isalnum())
        found = STATE_WORDS.get(key)
        if found is None:
            raise ValueError(
                f"unknown unit state {value!r}: give 0-11 or a name such as "
                "'available', 'enroute', 'atscene', 'refs', 'offduty'"
            )
        return found


#: The words each state may be given as (compared without case, spaces or punctuation).
STATE_WORDS: dict[str, UnitState] = {
    state.name.replace("_", "").lower(): state for state in UnitState
} | {
    "urgentassistance": UnitState.EMERGENCY,
    "onduty": UnitState.ON_DUTY,
    "available": UnitState.AVAILABLE_ON_PATROL,
    "patrol": UnitState.AVAILABLE_ON_PATROL,
    "station": UnitState.AVAILABLE_AT_STATION,
    "atstation": UnitState.AVAILABLE_AT_STATION,
    "refs": UnitState.REFRESHMENTS,
    "refreshment": UnitState.REFRESHMENTS,
    "enroute": UnitState.EN_ROUTE,
    "mobile": UnitState.EN_ROUTE,
    "scene": UnitState.AT_SCENE,
    "atscene": UnitState.AT_SCENE,
    "onscene": UnitState.AT_SCENE,
    "committed": UnitState.COMMITTED_DEPLOYABLE,
    "deployable": UnitState.COMMITTED_DEPLOYABLE,
    "notdeployable": UnitState.COMMITTED_NOT_DEPLOYABLE,
    "prisoner": UnitState.PRISONER_ESCORT,
    "escort": UnitState.PRISONER_ESCORT,
    "court": UnitState.AT_COURT,
    "offduty": UnitState.OFF_DUTY,
    "off": UnitState.OFF_DUTY,
}

#: States in which a unit is free and may be given work.
AVAILABLE_STATES = frozenset(
    {UnitState.ON_DUTY, UnitState.AVAILABLE_ON_PATROL, UnitState.AVAILABLE_AT_STATION}
)
#: States in which a dispatcher may assign a unit without diverting it from other work.
DEPLOYABLE_STATES = AVAILABLE_STATES | {UnitState.REFRESHMENTS, UnitState.COMMITTED_DEPLOYABLE}
#: States that tie a unit to the incident it is assigned to.
COMMITTED_STATES = frozenset(
    {
        UnitState.EN_ROUTE,
        UnitState.AT_SCENE,
        UnitState.COMMITTED_DEPLOYABLE,
        UnitState.COMMITTED_NOT_DEPLOYABLE,
    }
)


class IncidentStatus(StrEnum):
    """Where an incident is in its lifecycle."""

    OPEN = "open"  # awaiting resources
    RESOURCED = "resourced"  # at least one unit assigned
    AT_SCENE = "at_scene"  # at least one assigned unit has arrived
    CLOSED = "closed"


class SourceChannel(StrEnum):
    """How the report reached the control room."""

    EMERGENCY_999 = "999"
    NON_EMERGENCY_101 = "101"
    ONLINE = "online"
    OFFICER_INITIATED = "officer"
    ALARM = "alarm"
    OTHER_AGENCY = "agency"


class Role(StrEnum):
    """What an operator may do. Checked on every command."""

    DISPATCHER = "dispatcher"
    SUPERVISOR = "supervisor"
    READ_ONLY = "read_only"
    INTAKE = "intake"  # a force's website: may only submit online reports


class ReportChannel(StrEnum):
    """How an online report reached the force: a form on its website, or live chat."""

    WEB_FORM = "web_form"
    CHAT = "chat"


class TriageOutcome(StrEnum):
    """What a call handler did with an online report."""

    CREATED_INCIDENT = "created_incident"
    CLOSED = "closed"


class Capability(StrEnum):
    """Specialist capabilities that recommendation matches against an incident's needs."""

    FIREARMS = "firearms"
    DOG = "dog"
    TRAFFIC = "traffic"
    TASER = "taser"
    FIRST_AID = "first_aid"
    PUBLIC_ORDER = "public_order"


class UnitType(StrEnum):
    """The kind of resource a callsign is."""

    PATROL_CAR = "patrol_car"
    VAN = "van"
    ARMED_RESPONSE = "armed_response"
    DOG = "dog"
    TRAFFIC = "traffic"
    MOTORCYCLE = "motorcycle"
    FOOT = "foot"
    SUPERVISOR = "supervisor"
    CID = "cid"


class LinkRelation(StrEnum):
    """How one incident relates to another, read from the incident that holds the link."""

    DUPLICATE_OF = "duplicate_of"  # this incident reports the same thing as the other
    DUPLICATED_BY = "duplicated_by"  # the other incident is a duplicate of this one
    RELATED = "related"


_Degrees = Annotated[float, Strict()]  # a JSON number; never a string or a boolean


class Position(_Model):
    """A point in WGS84 decimal degrees."""

    lat: _Degrees = Field(ge=-90, le=90)
    lon: _Degrees = Field(ge=-180, le=180)


class Location(_Model):
    """Where an incident is: what the caller said, and where that is on the map if known."""

    address: str = Field(min_length=1, max_length=500)
    position: Position | None = None
    sector: str | None = Field(default=None, max_length=40)


class Caller(_Model):
    """The person who reported the incident. Free text from the public."""

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    relationship: str | None = Field(
        default=None, max_length=200, description="e.g. victim, witness, neighbour"
    )


class Risk(_Model):
    """Risk assessment under the THRIVE headings. Each heading is the assessor's words."""

    threat: str | None = Field(default=None, max_length=2000)
    harm: str | None = Field(default=None, max_length=2000)
    risk: str | None = Field(default=None, max_length=2000)
    investigation: str | None = Field(default=None, max_length=2000)
    vulnerability: str | None = Field(default=None, max_length=2000)
    engagement: str | None = Field(default=None, max_length=2000)


class ChronologyEntry(_Model):
    """One line of an incident's record: who did what, when, from which workstation."""

    at: AwareDatetime
    seq: StrictInt = Field(description="The event that wrote this entry.")
    version: StrictInt = Field(description="The incident version this entry produced.")
    operator: str
    workstation: str
    kind: str = Field(description="The event type that wrote this entry, e.g. note_added.")
    text: str
    taken_at: AwareDatetime | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="When the action was taken, for an entry recorded after the fact "
        "(back-entered): `at` is when it was recorded. Absent otherwise.",
    )


class IncidentLink(_Model):
    """A link from this incident to another one."""

    reference: str
    relation: LinkRelation


class Incident(_Model):
    """A reported incident and everything the control room knows and did about it."""

    reference: str = Field(
        description="Daily log number a dispatcher can say aloud, e.g. 0042-27NOV26."
    )
    grade: Grade
    incident_type: str = Field(description="Opening code, e.g. RTC, BURGLARY, CONCERN.")
    status: IncidentStatus = IncidentStatus.OPEN
    description: str = ""
    location: Location
    caller: Caller | None = None
    source: SourceChannel
    risk: Risk = Field(default_factory=Risk)
    assigned: list[str] = Field(default_factory=list, description="Callsigns assigned now.")
    chronology: list[ChronologyEntry] = Field(default_factory=list)
    closing_code: str | None = None
    links: list[IncidentLink] = Field(default_factory=list)
    created_at: AwareDatetime
    updated_at: AwareDatetime
    closed_at: AwareDatetime | None = None
    version: StrictInt = 1


class Unit(_Model):
    """A resource that can be sent: a car, a van, a dog handler, an officer on foot."""

    callsign: str
    unit_type: UnitType
    capabilities: list[Capability] = Field(default_factory=list)
    state: UnitState
    state_since: AwareDatetime
    incident: str | None = Field(default=None, description="Incident the unit is assigned to.")
    position: Position | None = None
    position_at: AwareDatetime | None = Field(default=None, description="Time of the last fix.")
    home_sector: str | None = None
    on_duty: bool = True
    emergency_acknowledged_by: str | None = Field(
        default=None, description="Who acknowledged the current state-0 alarm, if anyone."
    )
    checked_in_at: AwareDatetime | None = Field(
        default=None,
        description="When the unit last checked in safe (`unit_checked_in`); it restarts "
        "the officer-safety timer.",
    )
    version: StrictInt = 1


class Operator(_Model):
    """A person at a workstation, as the server knows them from their token."""

    id: OperatorId
    name: Text = Field(min_length=1, max_length=200)
    role: Role


class ChatLine(_Model):
    """One line of a live-chat transcript, as the website recorded it."""

    at: AwareDatetime | None = None
    sender: str = Field(max_length=80, description="Who wrote it: 'public', 'agent', a name.")
    text: str = Field(max_length=4000)


class Report(_Model):
    """An online report waiting in the triage queue.

    Everything in it comes from the public through a website and is kept exactly as it
    arrived (markup, control characters and all): a console neutralises it when it
    shows it (``tui/safe_text.py``), and nothing in it is ever interpreted.
    """

    id: str = Field(description="The report's id in the queue, e.g. R1042.")
    channel: ReportChannel
    received_at: AwareDatetime
    text: str = Field(default="", description="The form's words (a web form report).")
    transcript: list[ChatLine] = Field(
        default_factory=list, description="The conversation (a chat report)."
    )
    reporter: Caller | None = None
    location: str | None = Field(default=None, description="Where they said, as they said it.")
    website_reference: str | None = Field(
        default=None, description="The website's own reference for the report."
    )
    operator: str = Field(description="The intake login that submitted it.")

    def words(self) -> str:
        """The report as one text: the form's words, or the transcript line by line."""
        if self.channel == ReportChannel.CHAT:
            return "\n".join(f"{line.sender}: {line.text}" for line in self.transcript)
        return self.text
