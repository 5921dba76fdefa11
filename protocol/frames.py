"""Stream frames: what travels over the WebSocket.

The socket speaks the subprotocol named by `SUBPROTOCOL`. The client sends one
`Subscribe`; the server answers with either a snapshot or a replay of `EventFrame`s,
then `CaughtUp`, then live `EventFrame`s and a `Heartbeat` every
`HEARTBEAT_INTERVAL` seconds when nothing else is sent. When the server cannot go on
it closes the socket with one of the `CloseCode`s and a reason.

A snapshot is one `Snapshot` frame when the picture fits in `SNAPSHOT_PART_BYTES`;
a larger picture comes as `SnapshotPart` frames 1..n of the picture at one seq, none
larger than that (unless one incident alone is), so a client with a WebSocket library's
default 1 MiB message limit can always read it.

A client that asks for it at subscribe (`Subscribe.batch`) may be sent several
consecutive events in one `EventBatch` frame, no larger than `SNAPSHOT_PART_BYTES` and
of at most the events it asked for: the server batches a replay and whatever has queued
up for a subscriber that is behind. A client that does not ask gets one `EventFrame` per
event, as always.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .events import EVENT_ADAPTER, Event
from .fold import DispatchState
from .types import Seq, type_required

__all__ = [
    "CLIENT_FRAME_ADAPTER",
    "HEARTBEAT_INTERVAL",
    "MAX_BATCH_EVENTS",
    "SERVER_FRAME_ADAPTER",
    "SNAPSHOT_PART_BYTES",
    "SUBPROTOCOL",
    "CaughtUp",
    "ClientFrame",
    "CloseCode",
    "ErrorFrame",
    "EventBatch",
    "EventFrame",
    "Heartbeat",
    "ServerFrame",
    "Snapshot",
    "SnapshotPart",
    "Subscribe",
    "read_events",
]

#: WebSocket subprotocol naming version 1 of this protocol.
SUBPROTOCOL = "cadterm.v1"
#: Seconds between heartbeats on an otherwise quiet stream. A client that hears nothing
#: for three intervals should treat the connection as dead and resume.
HEARTBEAT_INTERVAL = 5.0
#: The largest snapshot frame the server sends, in bytes of JSON text: a quarter of the
#: 1 MiB that WebSocket libraries accept by default. Only an incident that alone
#: serialises to more than this travels in a larger part (of its own).
SNAPSHOT_PART_BYTES = 256 * 1024
#: The most events a client may ask to be sent in one `EventBatch` frame.
MAX_BATCH_EVENTS = 512

SnapshotReason = Literal["requested", "older_than_retention", "ahead_of_server"]


class CloseCode(IntEnum):
    """Why the server closed a stream, and what the client should do about it."""

    NORMAL = 1000  # the client asked to go
    GOING_AWAY = 1001  # server shutting down: reconnect (to another node) and resume
    MESSAGE_TOO_BIG = 1009  # a frame exceeded the size limit: fix the client
    SERVICE_RESTART = 1012  # server restarting: reconnect after a pause and resume
    RESUME = 4000  # the subscriber fell behind: reconnect and resume from last seq
    BAD_FRAME = 4002  # malformed JSON, unknown frame type or invalid fields: do not retry
    UNEXPECTED_FRAME = 4003  # a valid frame at the wrong time (a second subscribe)
    SUBSCRIBE_TIMEOUT = 4008  # no subscribe frame in time after the handshake


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=type_required)

    @model_validator(mode="before")
    @classmethod
    def _type_on_the_wire(cls, data: Any, info: ValidationInfo) -> Any:
        # Code may build a frame without naming its type; a frame read off the wire
        # must name it, as the schema says.
        if info.mode == "json" and isinstance(data, dict) and "type" not in data:
            raise PydanticCustomError("missing_type", "every frame needs a 'type' field")
        return data


class Subscribe(_Frame):
    """Client -> server: start the stream after `since` (absent: from a snapshot)."""

    type: Literal["subscribe"] = "subscribe"
    since: Seq | None = Field(default=None, description="Last seq the client applied.")
    batch: StrictInt | None = Field(
        default=None,
        ge=1,
        le=MAX_BATCH_EVENTS,
        description="The most events this client takes in one 'events' frame; absent or 1: "
        "one 'event' frame per event.",
    )


class Snapshot(_Frame):
    """Server -> client: the whole picture at `state.seq`; events after it follow."""

    type: Literal["snapshot"] = "snapshot"
    reason: SnapshotReason
    state: DispatchState


class SnapshotPart(_Frame):
    """Server -> client: part `part` of `parts` of the picture at `seq`.

    Each part's `state` holds some of the incidents and units, with the picture's `seq`,
    `log_day` and `log_number`; together the parts hold them all, each once. The client
    replaces its picture only when the last part has arrived, so it never shows a
    half-loaded one; a connection cut between parts leaves the old picture as it was.
    """

    type: Literal["snapshot_part"] = "snapshot_part"
    reason: SnapshotReason
    seq: StrictInt = Field(ge=0, description="Seq of the picture the parts make up.")
    part: StrictInt = Field(ge=1, description="This part's number, from 1.")
    parts: StrictInt = Field(ge=2, description="How many parts make up the picture.")
    state: DispatchState


class EventFrame(_Frame):
    """Server -> client: one event, replayed or live."""

    type: Literal["event"] = "event"
    event: Event


class EventBatch(_Frame):
    """Server -> client: consecutive events in seq order, to a client that asked at
    subscribe; applied one by one exactly as if each had come in its own `EventFrame`."""

    type: Literal["events"] = "events"
    events: list[Event] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)


class CaughtUp(_Frame):
    """Server -> client: replay is done; what follows is live."""

    type: Literal["caught_up"] = "caught_up"
    seq: StrictInt


class Heartbeat(_Frame):
    """Server -> client: still here; `seq` is the server's head."""

    type: Literal["heartbeat"] = "heartbeat"
    seq: StrictInt
    at: AwareDatetime
    interval: float = HEARTBEAT_INTERVAL


class ErrorFrame(_Frame):
    """Server -> client: something the client sent was wrong; a close follows."""

    type: Literal["error"] = "error"
    code: str
    detail: str


ClientFrame = Subscribe
ServerFrame = Annotated[
    Snapshot | SnapshotPart | EventFrame | EventBatch | CaughtUp | Heartbeat | ErrorFrame,
    Field(discriminator="type"),
]

CLIENT_FRAME_ADAPTER: TypeAdapter[Subscribe] = TypeAdapter(Subscribe)
SERVER_FRAME_ADAPTER: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)

_EVENT_PREFIX = '{"type":"event","event":'
_EVENTS_PREFIX = '{"type":"events","events":['
_EVENTS_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(
    Annotated[list[Event], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]
)

# The adapters' core validators, called with their defaults as the adapters would: the
# adapters' own wrappers cost a sixth of an event's validation.
_validate_event = EVENT_ADAPTER.validator.validate_json
_validate_events = _EVENTS_ADAPTER.validator.validate_json


def read_events(raw: str | bytes) -> list[Event] | None:
    """The events of an ``event`` or ``events`` frame, validated as strictly as
    `SERVER_FRAME_ADAPTER` would; None for any other frame, or one that does not
    validate (read it with `SERVER_FRAME_ADAPTER`, which says what is wrong with it).

    The fast way in for the frames a client gets most: a frame in the server's own
    compact form is the envelope's fixed text around the event (or the list of events),
    so only that is validated, straight from its JSON. A frame whose envelope is written
    any other way (spaces, other key order) just takes the general way.
    """
    if not isinstance(raw, str):
        return None
    try:
        if raw.startswith(_EVENT_PREFIX) and raw.endswith("}"):
            # Anything after the event but the closing brace makes the text between
            # them more than one JSON value, which does not validate.
            return [_validate_event(raw[len(_EVENT_PREFIX) : -1])]
        if raw.startswith(_EVENTS_PREFIX) and raw.endswith("]}"):
            return _validate_events(raw[len(_EVENTS_PREFIX) - 1 : -1])
    except ValidationError:
        return None
    return None
