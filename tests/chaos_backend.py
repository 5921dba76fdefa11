"""A misbehaving backend for the chaos test: a real WebSocket server on loopback.

`ChaosBackend` speaks just enough of the protocol to be a console's backend
(``GET /v1/whoami`` and the ``/v1/stream`` subscription) and misbehaves on purpose, in
an order drawn from a seeded `random.Random`. It keeps its own truth, folded with the
protocol's own `fold`, so every event it calls valid is one the real server could send,
and a test can compare the console's picture with it.

Each connection plays one `Episode`: the picture (a snapshot, whole or in parts, or a
replay after the subscriber's ``since``), ``caught_up``, a run of live frames (events, odd but
schema-valid values, heartbeats, huge texts), then an `Ending`: a fault such as an
abrupt close, a seq gap or repeat, invalid JSON or an unknown frame type. The test
paces it: the backend stops at two checkpoints per episode (``live`` after the
picture, ``ended`` after the fault) and holds the next connection's handshake until
the test releases the next episode, so the console's screen can be checked while the
link is in the state the fault put it in.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from cadterm.client import LinkState
from cadterm.protocol.fold import DispatchState, apply
from cadterm.protocol.frames import SERVER_FRAME_ADAPTER, SUBPROTOCOL, CloseCode

__all__ = ["ENDINGS", "ChaosBackend", "Ending", "Episode"]


@dataclass(frozen=True)
class Ending:
    """How a connection ends, and what the console must then say about its link."""

    name: str
    state: LinkState
    #: The start of the reason the console must give (on screen and in its log).
    reason: str


ENDINGS = {
    ending.name: ending
    for ending in (
        Ending("abort", LinkState.RECONNECTING, "connection lost without a close frame"),
        Ending("going_away", LinkState.RECONNECTING, "server closed the stream (1001 draining)"),
        Ending("resume", LinkState.RECONNECTING, "server cut the stream off: fell behind"),
        Ending("gap", LinkState.RECONNECTING, "sequence gap: expected seq"),
        Ending("repeat", LinkState.RECONNECTING, "sequence duplicate: expected seq"),
        Ending("unknown_incident", LinkState.RECONNECTING, "unknown incident ZZ999"),
        Ending("parts_cut", LinkState.RECONNECTING, "connection lost without a close frame"),
        Ending("invalid_json", LinkState.STOPPED, "unreadable frame from the server"),
        Ending("unknown_type", LinkState.STOPPED, "unreadable frame from the server"),
        Ending("address_too_long", LinkState.STOPPED, "unreadable frame from the server"),
        Ending("error_frame", LinkState.STOPPED, "server reported bad_frame: chaos"),
        Ending("bad_frame_close", LinkState.STOPPED, "the server rejected a frame from this"),
    )
}


@dataclass(frozen=True)
class Episode:
    """What the backend does on one connection."""

    number: int
    live_frames: int  # frames sent after caught_up, before the ending
    replay: bool  # answer a `since` with the events after it, not a snapshot
    ending: Ending | None  # None: stay live until the test is done


# Text a caller or an operator might type, and text no one should: scripts, wide
# characters, combining accents (NFD), bidi overrides, C1 controls.
_ODD_TEXTS = (
    "東京都千代田区 1-1",
    "Cafe\u0301 de l'E\u0301glise",  # NFD: combining accents
    "🚓🚑 outside №7",
    "\uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 road",  # fullwidth
    "abc\u202edcba\u202c reversed",
    "zero\u200bwidth\u200djoin",
    "C1 \x9b31m control",
    "'; DROP TABLE incidents; --",
    "[bold red]not markup[/]",
)


class ChaosBackend:
    """A loopback backend that misbehaves in a seeded random order."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.truth = DispatchState()
        self.events: list[dict[str, Any]] = []  # every event applied to the truth, as sent
        self.frames_sent = 0
        self.connections = 0
        self.pictures: Counter[str] = Counter()  # how each connection got its picture
        self.checkpoints: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        self._episodes: asyncio.Queue[Episode] = asyncio.Queue()
        self._proceed = asyncio.Event()
        self._server: Server | None = None
        self._closing = False
        self._clock = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        self._incident_numbers = iter(range(1, 10**6))
        self._unit_numbers = iter(range(10, 10**6))

    # --- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on a free loopback port, with a small picture to start from."""
        for _ in range(6):
            self._commit(self._booked_on())
        for _ in range(4):
            self._commit(self._created())
        self._server = await serve(
            self._stream,
            "127.0.0.1",
            0,
            subprotocols=[SUBPROTOCOL],
            process_request=self._http,
            max_size=None,
            ping_interval=None,
            close_timeout=1.0,
        )

    async def close(self) -> None:
        """Close every connection and stop listening."""
        self._closing = True
        self._proceed.set()  # no handler may wait for a test that has finished
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        """The backend's HTTP base URL."""
        assert self._server is not None
        host, port = next(iter(self._server.sockets)).getsockname()[:2]
        return f"http://{host}:{port}"

    def plan(self, episodes: int) -> list[Episode]:
        """`episodes` episodes in a seeded random order; the last one stays live."""
        endings = list(ENDINGS.values())
        plan = [
            Episode(n, self.rng.randint(60, 160), self.rng.random() < 0.5, self.rng.choice(endings))
            for n in range(episodes - 1)
        ]
        # Every kind of ending at least once, whatever the seed draws.
        for n, ending in enumerate(endings):
            if n < len(plan):
                plan[n] = Episode(n, plan[n].live_frames, plan[n].replay, ending)
        self.rng.shuffle(plan)
        plan.append(Episode(episodes - 1, 40, True, None))
        return [Episode(n, e.live_frames, e.replay, e.ending) for n, e in enumerate(plan)]

    def release(self, episode: Episode) -> None:
        """Let the next connection in, to play `episode`."""
        self._episodes.put_nowait(episode)

    def proceed(self) -> None:
        """Let the episode at a checkpoint carry on."""
        self._proceed.set()

    # --- HTTP ------------------------------------------------------------------------------

    async def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/v1/whoami":
            body = {"id": "disp1", "name": "Chaos Dispatcher", "role": "dispatcher"}
            return connection.respond(200, json.dumps(body))
        if request.path != "/v1/stream":
            return connection.respond(404, "not here")
        # Hold the handshake until the test lets the next episode in: meanwhile the
        # console's link stays in the state the last fault left it in.
        episode = await self._episodes.get()
        self._playing = episode
        return None

    # --- the stream ------------------------------------------------------------------------

    async def _stream(self, ws: ServerConnection) -> None:
        episode = self._playing
        self.connections += 1
        subscribe = json.loads(await ws.recv())
        since = subscribe.get("since")
        if episode.ending is not None and episode.ending.name == "parts_cut":
            await self._send(ws, self._part_of_snapshot())
            ws.transport.abort()
            await self._checkpoint(episode, "ended")
            return
        if episode.replay and since is not None and since <= self.truth.seq:
            self.pictures["replay"] += 1
            for event in self.events[since:]:
                await self._send(ws, {"type": "event", "event": event})
        elif self.rng.random() < 0.4:
            self.pictures["parts"] += 1
            for part in self._snapshot_in_parts():
                await self._send(ws, part)
        else:
            self.pictures["snapshot"] += 1
            await self._send(ws, self._snapshot())
        await self._send(ws, {"type": "caught_up", "seq": self.truth.seq})
        await self._checkpoint(episode, "live")
        for _ in range(episode.live_frames):
            await self._send(ws, self._live_frame())
        if episode.ending is None:
            await self._checkpoint(episode, "ended")
            await ws.wait_closed()
            return
        await self._end(ws, episode.ending)
        await self._checkpoint(episode, "ended")
        if episode.ending.name != "abort":
            # The console closes a link it will not use again; wait for that, bounded.
            async with asyncio.timeout(5):
                await ws.wait_closed()

    async def _checkpoint(self, episode: Episode, what: str) -> None:
        if self._closing:
            return
        self._proceed.clear()
        await self.checkpoints.put((episode.number, what))
        await self._proceed.wait()

    async def _send(self, ws: ServerConnection, frame: dict[str, Any] | str) -> None:
        await ws.send(frame if isinstance(frame, str) else json.dumps(frame))
        self.frames_sent += 1

    async def _end(self, ws: ServerConnection, ending: Ending) -> None:
        name = ending.name
        if name == "abort":
            ws.transport.abort()
        elif name == "going_away":
            await ws.close(CloseCode.GOING_AWAY, "draining")
        elif name == "resume":
            await ws.close(CloseCode.RESUME, "fell behind")
        elif name == "bad_frame_close":
            await ws.close(CloseCode.BAD_FRAME, "chaos")
        elif name == "gap":
            await self._send(ws, {"type": "event", "event": self._note(seq=self.truth.seq + 2)})
        elif name == "repeat":
            await self._send(ws, {"type": "event", "event": self.events[-1]})
        elif name == "unknown_incident":
            event = self._note(seq=self.truth.seq + 1) | {"reference": "ZZ999"}
            await self._send(ws, {"type": "event", "event": event})
        elif name == "invalid_json":
            await self._send(ws, '{"type": "event", "event": {"seq": ')
        elif name == "unknown_type":
            await self._send(ws, {"type": "gossip", "seq": self.truth.seq})
        elif name == "address_too_long":
            event = self._created(address="X" * 200_000)  # over the 500 allowed
            await self._send(ws, {"type": "event", "event": event})
        elif name == "error_frame":
            await self._send(ws, {"type": "error", "code": "bad_frame", "detail": "chaos"})
        else:
            raise AssertionError(f"no ending {name!r}")

    # --- frames ------------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        state = self.truth.model_dump(mode="json")
        return {"type": "snapshot", "reason": "requested", "state": state}

    def _snapshot_in_parts(self) -> list[dict[str, Any]]:
        """The picture as three `snapshot_part` frames: two halves of the incidents, then
        the units (as a server sends a picture too large for one frame)."""
        state = self.truth.model_dump(mode="json")
        incidents = list(state["incidents"].items())
        half = len(incidents) // 2
        pieces = [
            {"incidents": dict(incidents[:half]), "units": {}},
            {"incidents": dict(incidents[half:]), "units": {}},
            {"incidents": {}, "units": state["units"]},
        ]
        seq = self.truth.seq
        return [
            {
                "type": "snapshot_part",
                "reason": "requested",
                "seq": seq,
                "part": n,
                "parts": len(pieces),
                "state": state | piece,
            }
            for n, piece in enumerate(pieces, start=1)
        ]

    def _part_of_snapshot(self) -> dict[str, Any]:
        """Part 1 of 3 of the picture (the connection is then cut before the rest)."""
        state = self.truth.model_dump(mode="json") | {"units": {}}
        seq = self.truth.seq
        return {
            "type": "snapshot_part",
            "reason": "requested",
            "seq": seq,
            "part": 1,
            "parts": 3,
            "state": state,
        }

    def _live_frame(self) -> dict[str, Any]:
        roll = self.rng.random()
        if roll < 0.08:
            return {
                "type": "heartbeat",
                "seq": self.truth.seq,
                "at": self._now(),
                "interval": 5.0,
            }
        if roll < 0.11:
            event = self._note(text=self.rng.choice(_ODD_TEXTS) * self.rng.randint(500, 3000))
        elif roll < 0.16 or not self.truth.incidents:
            event = self._created()
        elif roll < 0.20 and len(self.truth.units) < 30:
            event = self._booked_on()
        elif roll < 0.40:
            event = self._graded()
        elif roll < 0.60:
            event = self._unit_state()
        elif roll < 0.75:
            event = self._located()
        else:
            event = self._note()
        self._commit(event)
        return {"type": "event", "event": event}

    def _commit(self, event: dict[str, Any]) -> None:
        """Apply `event` to the truth (so it is one the real fold accepts) and keep it."""
        frame = {"type": "event", "event": event}
        parsed = SERVER_FRAME_ADAPTER.validate_json(json.dumps(frame))
        apply(self.truth, parsed.event)
        self.events.append(event)

    def _base(self, kind: str, seq: int | None = None) -> dict[str, Any]:
        self._clock += timedelta(seconds=self.rng.randint(0, 30))
        return {
            "seq": self.truth.seq + 1 if seq is None else seq,
            "at": self._now(),
            "operator": "disp.chaos",
            "workstation": "CR1-WS04",
            "type": kind,
        }

    def _now(self) -> str:
        # Offsets other than Z are valid RFC 3339: the console must read them alike.
        offset = self.rng.choice(("Z", "+14:00", "-12:00", "+05:30"))
        local = self._clock if offset == "Z" else self._clock.astimezone(_zone(offset))
        text = local.isoformat()
        return text.replace("+00:00", "Z") if offset == "Z" else text

    def _created(self, address: str | None = None) -> dict[str, Any]:
        number = next(self._incident_numbers)
        position = self.rng.choice(
            (
                None,
                {"lat": 90.0, "lon": -180.0},
                {"lat": -90.0, "lon": 180.0},
                {"lat": 53.8, "lon": -1.55},
            )
        )
        location: dict[str, Any] = {
            "address": address or self.rng.choice((*_ODD_TEXTS, "12 High Street"))[:500]
        }
        if position is not None:
            location["position"] = position
        return self._base("incident_created") | {
            "reference": f"{number:04d}-27NOV26",
            "log_day": "2026-11-27",
            "grade": self.rng.choice((1, 2, 2, 3, 4)),
            "incident_type": self.rng.choice(("ASSAULT", "CONCERN", "RTC", "ALARM")),
            "description": self.rng.choice(("", "x" * 4000, *_ODD_TEXTS)),
            "location": location,
            "source": self.rng.choice(("999", "101", "online", "officer")),
        }

    def _booked_on(self) -> dict[str, Any]:
        callsign = f"CH{next(self._unit_numbers)}"
        return self._base("unit_booked_on") | {
            "callsign": callsign,
            "unit_type": self.rng.choice(("patrol_car", "van", "dog", "armed_response")),
            "home_sector": self.rng.choice(("LS1", "LS2", "city")),
            "position": {"lat": 53.8, "lon": -1.55},
        }

    def _reference(self) -> str:
        return self.rng.choice(list(self.truth.incidents))

    def _callsign(self) -> str:
        return self.rng.choice(list(self.truth.units))

    def _graded(self) -> dict[str, Any]:
        return self._base("incident_graded") | {
            "reference": self._reference(),
            "grade": self.rng.choice((1, 2, 3, 4)),
            "reason": self.rng.choice((None, *_ODD_TEXTS)),
        }

    def _unit_state(self) -> dict[str, Any]:
        callsign = self._callsign()
        unit = self.truth.units[callsign]
        # Only states that need no incident: an assigned unit is left alone.
        states = (0, 1, 2, 6, 7, 8) if unit.incident is None else (0,)
        return self._base("unit_state_changed") | {
            "callsign": callsign,
            "state": self.rng.choice(states),
        }

    def _located(self) -> dict[str, Any]:
        base = self._base("unit_located")
        # A fix taken long before the event, or in its future: odd, and valid.
        fixed = self._clock + timedelta(minutes=self.rng.choice((-600, -1, 0, 30)))
        return base | {
            "callsign": self._callsign(),
            "position": {
                "lat": self.rng.uniform(-90, 90),
                "lon": self.rng.uniform(-180, 180),
            },
            "fixed_at": fixed.isoformat(),
        }

    def _note(self, seq: int | None = None, text: str | None = None) -> dict[str, Any]:
        return self._base("note_added", seq) | {
            "reference": self._reference(),
            "text": text if text is not None else self.rng.choice(_ODD_TEXTS),
        }


def _zone(offset: str) -> timezone:
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    return timezone(sign * timedelta(hours=hours, minutes=minutes))
