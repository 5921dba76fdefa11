"""Stream frames: what travels over the WebSocket.

The socket speaks the subprotocol named by `SUBPROTOCOL`. The client sends one
`Subscribe`; the server answers with either a `Snapshot` or a replay of `EventFrame`s,
then `CaughtUp`, then live `EventFrame`s and a `Heartbeat` every
`HEARTBEAT_INTERVAL` seconds when nothing else is sent. When the server cannot go on
it closes the socket with one of the `CloseCode`s and a reason.
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
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .events import Event
from .fold import DispatchState
from .types import Seq, type_required

__all__ = [
    "CLIENT_FRAME_ADAPTER",
    "HEARTBEAT_INTERVAL",
    "SERVER_FRAME_ADAPTER",
    "SUBPROTOCOL",
    "CaughtUp",
    "ClientFrame",
    "CloseCode",
    "ErrorFrame",
    "EventFrame",
    "Heartbeat",
    "ServerFrame",
    "Snapshot",
    "Subscribe",
]

#: WebSocket subprotocol naming version 1 of this protocol.
SUBPROTOCOL = "cadterm.v1"
#: Seconds between heartbeats on an otherwise quiet stream. A client that hears nothing
#: for three intervals should treat the connection as dead and resume.
HEARTBEAT_INTERVAL = 5.0


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


class Snapshot(_Frame):
    """Server -> client: the whole picture at `state.seq`; events after it follow."""

    type: Literal["snapshot"] = "snapshot"
    reason: Literal["requested", "older_than_retention", "ahead_of_server"]
    state: DispatchState


class EventFrame(_Frame):
    """Server -> client: one event, replayed or live."""

    type: Literal["event"] = "event"
    event: Event


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
    Snapshot | EventFrame | CaughtUp | Heartbeat | ErrorFrame, Field(discriminator="type")
]

CLIENT_FRAME_ADAPTER: TypeAdapter[Subscribe] = TypeAdapter(Subscribe)
SERVER_FRAME_ADAPTER: TypeAdapter[ServerFrame] = TypeAdapter(ServerFrame)
