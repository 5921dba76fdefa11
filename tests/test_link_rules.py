"""The link's rules without a network: seq checks, heartbeats, silence, closes, refusals.

`LinkRules` is pure, so these run in microseconds: single rules first, then a hypothesis
state machine over random interleavings of frames (good, lost, doubled, reordered),
heartbeats, cuts, server closes and the passing of time.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from cadterm.client.link import BATCH_EVENTS, Applied, LinkRules, Live, Resume, Send, Stop
from cadterm.client.store import LocalStore
from cadterm.protocol.events import UnitBookedOn
from cadterm.protocol.fold import DispatchState, fold
from cadterm.protocol.frames import (
    CaughtUp,
    CloseCode,
    ErrorFrame,
    EventFrame,
    Heartbeat,
    Snapshot,
    SnapshotPart,
)

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def booked(seq: int) -> str:
    event = UnitBookedOn(
        seq=seq, at=AT, operator="op", workstation="ws", callsign=f"U{seq}", unit_type="van"
    )
    return EventFrame(event=event).model_dump_json()


def beat(seq: int, interval: float = 5.0) -> str:
    return Heartbeat(seq=seq, at=AT, interval=interval).model_dump_json()


def caught_up(seq: int) -> str:
    return CaughtUp(seq=seq).model_dump_json()


def picture(seq: int) -> DispatchState:
    """The server's picture after `seq` events: units U1..U<seq>."""
    return fold(
        UnitBookedOn(
            seq=n, at=AT, operator="op", workstation="ws", callsign=f"U{n}", unit_type="van"
        )
        for n in range(1, seq + 1)
    )


def parts_of(state: DispatchState, parts: int) -> list[str]:
    """The picture as `parts` snapshot parts, its units dealt out in turn."""
    callsigns = sorted(state.units)
    return [
        SnapshotPart(
            reason="requested",
            seq=state.seq,
            part=number,
            parts=parts,
            state=DispatchState(
                seq=state.seq,
                units={c: state.units[c] for c in callsigns[number - 1 :: parts]},
            ),
        ).model_dump_json()
        for number in range(1, parts + 1)
    ]


@pytest.fixture
def rules() -> LinkRules:
    link = LinkRules(LocalStore())
    link.opened(0.0)
    return link


def test_opening_subscribes_from_a_snapshot_then_from_the_last_seq() -> None:
    store = LocalStore()
    rules = LinkRules(store)
    (send,) = rules.opened(0.0)
    assert isinstance(send, Send)
    assert json.loads(send.text) == {"type": "subscribe", "batch": BATCH_EVENTS}
    assert rules.received(booked(1), 0.1) == [Applied()]
    (send,) = rules.opened(1.0)
    assert json.loads(send.text) == {"type": "subscribe", "since": 1, "batch": BATCH_EVENTS}


def test_a_gap_resumes_and_is_not_applied(rules: LinkRules) -> None:
    assert rules.received(booked(1), 0.0) == [Applied()]
    (effect,) = rules.received(booked(3), 0.1)
    assert isinstance(effect, Resume) and "gap" in effect.reason
    assert rules.store.seq == 1


def test_a_duplicate_resumes_and_is_not_applied_twice(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    (effect,) = rules.received(booked(1), 0.1)
    assert isinstance(effect, Resume) and "duplicate" in effect.reason
    assert len(rules.store.units) == 1


def test_one_heartbeat_ahead_is_tolerated(rules: LinkRules) -> None:
    # The heartbeat may overtake an event that is still on its way.
    rules.received(booked(1), 0.0)
    assert rules.received(beat(2), 0.1) == []
    rules.received(booked(2), 0.2)
    assert rules.received(beat(2), 0.3) == []
    assert rules.store.seq == 2


def test_two_heartbeats_ahead_with_nothing_applied_between_resume(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    rules.received(beat(2), 0.1)
    (effect,) = rules.received(beat(2), 5.1)
    assert isinstance(effect, Resume) and "no event arrived between two heartbeats" in effect.reason


def test_a_heartbeat_behind_the_client_resumes(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    rules.received(booked(2), 0.0)
    (effect,) = rules.received(beat(1), 0.1)
    assert isinstance(effect, Resume) and "behind" in effect.reason


def test_caught_up_must_name_the_seq_held(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    (effect,) = rules.received(caught_up(2), 0.1)
    assert isinstance(effect, Resume)
    assert not rules.live
    assert rules.received(caught_up(1), 0.2) == [Live()]
    assert rules.live


def test_silence_for_three_intervals_resumes_and_heartbeats_set_the_interval(
    rules: LinkRules,
) -> None:
    assert rules.deadline() == 15.0
    assert rules.tick(14.9) == []
    (effect,) = rules.tick(15.0)
    assert isinstance(effect, Resume) and "15 s" in effect.reason
    rules.received(beat(0, interval=1.0), 20.0)
    assert rules.deadline() == 23.0
    assert rules.tick(22.0) == []
    assert rules.tick(23.0)


def test_a_snapshot_replaces_the_picture(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    snapshot = Snapshot(reason="requested", state=DispatchState(seq=7)).model_dump_json()
    assert rules.received(snapshot, 0.1) == [Applied()]
    assert rules.store.seq == 7 and not rules.store.units


def test_a_snapshot_in_parts_replaces_the_picture_only_at_its_last_part(
    rules: LinkRules,
) -> None:
    rules.received(booked(1), 0.0)
    *first, last = parts_of(picture(9), 3)
    for frame in first:
        assert rules.received(frame, 0.1) == []
        assert rules.store.seq == 1 and sorted(rules.store.units) == ["U1"]
    assert rules.received(last, 0.2) == [Applied()]
    assert rules.store.state == picture(9)
    assert rules.received(caught_up(9), 0.3) == [Live()]


def test_a_cut_mid_snapshot_keeps_the_old_picture_and_starts_again(rules: LinkRules) -> None:
    rules.received(booked(1), 0.0)
    frames = parts_of(picture(6), 3)
    rules.received(frames[0], 0.1)
    (effect,) = rules.closed(None)
    assert isinstance(effect, Resume)
    assert rules.store.seq == 1 and sorted(rules.store.units) == ["U1"]
    (send,) = rules.opened(1.0)
    assert json.loads(send.text) == {"type": "subscribe", "since": 1, "batch": BATCH_EVENTS}
    # The new connection's parts stand on their own; nothing of the cut one is kept.
    for frame in parts_of(picture(7), 2):
        rules.received(frame, 1.1)
    assert rules.store.state == picture(7)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda mine, other: mine[2],  # part 3 straight after part 1
        lambda mine, other: mine[0],  # part 1 again
        lambda mine, other: other[1],  # part 2 of a picture at another seq
        lambda mine, other: booked(1),  # an event before the last part
        lambda mine, other: caught_up(4),
        lambda mine, other: beat(4),
    ],
    ids=["part-skipped", "part-repeated", "other-seq", "event", "caught-up", "heartbeat"],
)
def test_anything_but_the_next_part_resumes_and_keeps_the_old_picture(
    rules: LinkRules, wrong
) -> None:
    mine = parts_of(picture(4), 3)
    other = parts_of(picture(5), 3)
    assert rules.received(mine[0], 0.0) == []
    (effect,) = rules.received(wrong(mine, other), 0.1)
    assert isinstance(effect, Resume) and effect.reason
    assert rules.store.seq == 0 and not rules.store.units
    # The next connection's snapshot starts from nothing gathered.
    rules.opened(1.0)
    for frame in mine:
        rules.received(frame, 1.1)
    assert rules.store.state == picture(4)


@pytest.mark.parametrize(
    ("code", "stops"),
    [
        (CloseCode.BAD_FRAME, True),
        (CloseCode.UNEXPECTED_FRAME, True),
        (CloseCode.MESSAGE_TOO_BIG, True),
        (CloseCode.RESUME, False),
        (CloseCode.GOING_AWAY, False),
        (CloseCode.SERVICE_RESTART, False),
        (1006, False),
        (None, False),
    ],
)
def test_closes_that_retrying_cannot_fix_stop_the_rest_resume(
    rules: LinkRules, code: int | None, stops: bool
) -> None:
    (effect,) = rules.closed(code, "why")
    assert isinstance(effect, Stop if stops else Resume)


@pytest.mark.parametrize(("status", "stops"), [(400, True), (401, True), (403, True), (503, False)])
def test_handshake_refusals(rules: LinkRules, status: int, stops: bool) -> None:
    (effect,) = rules.refused(status, "detail")
    assert isinstance(effect, Stop if stops else Resume)
    assert str(status) in effect.reason


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        '{"type": "event"}',
        '{"type": "party"}',
        json.dumps({"type": "heartbeat", "seq": True, "at": "2026-11-27T09:00:00Z"}),
        json.dumps({"type": "heartbeat", "seq": 1, "at": "2026-11-27T09:00:00"}),
    ],
)
def test_an_unreadable_frame_stops_with_the_reason(rules: LinkRules, raw: str) -> None:
    (effect,) = rules.received(raw, 0.0)
    assert isinstance(effect, Stop) and "unreadable frame" in effect.reason
    assert ": :" not in effect.reason  # a frame wrong as a whole names no empty field


def test_an_unreadable_field_is_named(rules: LinkRules) -> None:
    raw = json.dumps({"type": "heartbeat", "seq": True, "at": "2026-11-27T09:00:00Z"})
    (effect,) = rules.received(raw, 0.0)
    assert isinstance(effect, Stop) and "server: heartbeat.seq: " in effect.reason


def test_an_error_frame_stops(rules: LinkRules) -> None:
    frame = ErrorFrame(code="bad_frame", detail="since: must be an integer").model_dump_json()
    (effect,) = rules.received(frame, 0.0)
    assert isinstance(effect, Stop) and "since" in effect.reason


# --- random interleavings ------------------------------------------------------------------


class LinkMachine(RuleBasedStateMachine):
    """A server log that only grows, a link that sees some of it in some order.

    Invariants: the picture never holds an event twice or skips one (its units are
    exactly U1..U<seq>); every resume or stop carries a reason; "live" is only ever
    claimed at the seq the server said it had caught up to, on the connection in use;
    every new connection subscribes after the last event applied (a resumed link
    neither repeats nor skips); silence ends a connection exactly when it has lasted the
    limit, so a slow link is never taken for a dead one (the end-to-end fault tests
    show the same over real sockets for a few cases).
    """

    @initialize()
    def start(self) -> None:
        self.rules = LinkRules(LocalStore())
        self.head = 0  # the server's log
        self.now = 0.0
        self.connected = False
        self.ended = False
        self.live_at: int | None = None
        self.connect()

    def connect(self) -> None:
        (send,) = self.rules.opened(self.now)
        assert isinstance(send, Send)
        store = self.rules.store
        assert json.loads(send.text).get("since") == (store.seq if store.synced else None)
        self.connected, self.ended = True, False
        self.last_frame = self.now
        self.live_at = None  # "live" must be earned again on every connection
        self.sent = self.rules.store.seq  # what this connection has delivered so far
        self.lost = False  # an event of this connection never arrived

    @property
    def listening(self) -> bool:
        return self.connected and not self.ended

    def feed(self, raw: str) -> None:
        if not self.connected or self.ended:
            return
        self.last_frame = self.now
        for effect in self.rules.received(raw, self.now):
            assert not isinstance(effect, Send)
            if isinstance(effect, Resume | Stop):
                assert effect.reason
                self.ended = True
            if isinstance(effect, Live):
                assert self.rules.store.seq == self.head
                self.live_at = self.rules.store.seq

    @rule(n=st.integers(1, 3))
    def server_appends(self, n: int) -> None:
        self.head += n

    @rule()
    def next_event_arrives(self) -> None:
        if self.sent < self.head and self.listening:
            self.sent += 1
            self.feed(booked(self.sent))
            if self.lost:
                assert self.ended, "an event after a lost one must resume"

    @rule()
    def an_event_is_lost(self) -> None:
        if self.sent < self.head:
            self.sent += 1
            self.lost = True

    @rule()
    def an_event_comes_twice(self) -> None:
        if self.sent >= 1 and self.listening and self.rules.store.seq >= 1:
            self.feed(booked(self.rules.store.seq))
            assert self.ended, "a duplicate must resume"

    @rule()
    def heartbeat(self) -> None:
        self.feed(beat(self.head))

    @rule()
    def caught_up(self) -> None:
        if self.sent == self.head:
            self.feed(caught_up(self.head))

    @rule(parts=st.integers(2, 4), cut_after=st.integers(1, 5))
    def snapshot_in_parts(self, parts: int, cut_after: int) -> None:
        """The server sends the picture at its head in parts; the link may be cut."""
        if not self.listening or self.sent != self.rules.store.seq or self.lost:
            return
        before = self.rules.store.state.model_copy(deep=True)
        frames = parts_of(picture(self.head), parts)
        for number, frame in enumerate(frames, start=1):
            if number > cut_after:  # cut between parts: nothing of them is applied
                self.rules.closed(None)
                self.ended = True
                assert self.rules.store.state == before
                return
            self.feed(frame)
            if number < parts:
                assert not self.ended and self.rules.store.state == before
        self.sent = self.head
        assert self.rules.store.state == picture(self.head)

    @rule(seconds=st.floats(0, 20))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds
        if self.connected and not self.ended:
            effects = self.rules.tick(self.now)
            silent_for = self.now - self.last_frame
            assert bool(effects) == (silent_for >= self.rules.silence_limit), silent_for
            for effect in effects:
                assert isinstance(effect, Resume)
                self.ended = True

    @rule(code=st.sampled_from([None, 1000, 1001, 1012, 4000, 4002]))
    def server_closes(self, code: int | None) -> None:
        if self.connected and not self.ended:
            for effect in self.rules.closed(code, "closing"):
                assert isinstance(effect, Resume | Stop)
            self.ended = True

    @rule()
    def reconnect(self) -> None:
        if self.ended:
            self.connect()

    @invariant()
    def picture_is_a_prefix_of_the_log(self) -> None:
        store = self.rules.store
        assert store.seq <= self.head
        assert sorted(store.units) == sorted(f"U{n}" for n in range(1, store.seq + 1))

    @invariant()
    def live_only_where_caught_up(self) -> None:
        if self.rules.live:
            assert self.live_at is not None and self.live_at <= self.rules.store.seq


LinkMachine.TestCase.settings = settings(max_examples=80, stateful_step_count=30, deadline=None)
test_link_rules_hold_under_random_interleavings = LinkMachine.TestCase
