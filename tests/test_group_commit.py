"""Group commit, idempotency pruning and snapshots off the command path.

Each test drives a real `DispatchService` over a real SQLite file on its own event
loop, then reopens the file with a fresh store to see what is durable.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import OPERATOR_IDS, make_config

from cadterm.protocol.commands import BookOn, Command, LocateUnit
from cadterm.protocol.domain import Operator, Role, UnitType
from cadterm.protocol.fold import fold
from cadterm.server.config import Limits, ServerConfig
from cadterm.server.service import DispatchService
from cadterm.server.store.base import Accepted, StoredCommand, StoreError
from cadterm.server.store.sqlite import SQLiteEventStore

DISPATCHER = Operator(id=OPERATOR_IDS[Role.DISPATCHER], name="Test", role=Role.DISPATCHER)
SUPERVISOR = Operator(id=OPERATOR_IDS[Role.SUPERVISOR], name="Test", role=Role.SUPERVISOR)
TIMEOUT = 30.0  # seconds any one test may wait for its commands


class CountingStore(SQLiteEventStore):
    """The real store, noting the size of every batch it commits."""

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.batches: list[int] = []

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        super().commit(accepted, refused, at)
        self.batches.append(len(accepted) + len(refused))


def _config(**overrides) -> ServerConfig:
    return make_config(limits=Limits(**overrides.pop("limits", {})), **overrides)


def book_on(callsign: str, key: str) -> BookOn:
    return BookOn(
        idempotency_key=key, workstation="ws", callsign=callsign, unit_type=UnitType.PATROL_CAR
    )


def locate(callsign: str, key: str, lat: float = 52.48) -> LocateUnit:
    return LocateUnit(
        idempotency_key=key,
        workstation="ws",
        callsign=callsign,
        position={"lat": lat, "lon": -1.89},
    )


async def _send(service: DispatchService, commands: list[tuple[Command, Operator]]):
    """Send every command at once, as concurrent senders would, and collect the answers."""
    return await asyncio.wait_for(
        asyncio.gather(*(service.execute(cmd, op) for cmd, op in commands)), TIMEOUT
    )


def test_concurrent_senders_share_commits_and_every_answer_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    store = CountingStore(path)
    service = DispatchService(store, _config())
    units = [f"BX{n:02d}" for n in range(40)]

    async def scenario():
        return await _send(service, [(book_on(cs, f"book-{cs}-0001"), DISPATCHER) for cs in units])

    answers = asyncio.run(scenario())
    assert [a.status for a in answers] == [200] * len(units)
    seqs = sorted(json.loads(a.body)["seq"] for a in answers)
    assert seqs == list(range(1, len(units) + 1))  # gap-free, one each
    # Arriving together, they were written in fewer transactions than commands.
    assert sum(store.batches) == len(units)
    assert len(store.batches) < len(units)
    # Not closed cleanly: a fresh reopen of the file must show every answered command.
    with SQLiteEventStore(path) as reopened:
        events = list(reopened.events_after(0))
        assert [e.seq for e in events] == seqs
        assert set(fold(events).units) == set(units)
        for cs in units:
            assert reopened.find_command(DISPATCHER.id, f"book-{cs}-0001") is not None
    store.close()


def test_retries_inside_and_across_batches_get_the_first_answer(tmp_path: Path) -> None:
    service = DispatchService(SQLiteEventStore(tmp_path / "log.db"), _config())
    first = book_on("BX01", "retry-key-0001")

    async def scenario():
        # The same command three times in one batch, then again once that is durable.
        inside = await _send(service, [(first, DISPATCHER)] * 3)
        across = await _send(service, [(first, DISPATCHER)])
        # The same key from another operator is that operator's own command.
        other = await _send(service, [(book_on("BX02", "retry-key-0001"), SUPERVISOR)])
        reused = await _send(service, [(book_on("BX03", "retry-key-0001"), DISPATCHER)])
        await service.close()
        return inside, across, other, reused

    inside, across, other, reused = asyncio.run(scenario())
    bodies = [json.loads(a.body) for a in inside + across]
    assert [a.status for a in inside + across] == [200] * 4
    assert {b["seq"] for b in bodies} == {1}
    assert [b["replayed"] for b in bodies] == [False, True, True, True]
    assert json.loads(other[0].body)["seq"] == 2
    assert json.loads(reused[0].body)["type"] == "/problems/idempotency-key-reused"
    with SQLiteEventStore(tmp_path / "log.db") as reopened:
        assert reopened.head() == 2


def test_a_refused_command_in_a_batch_leaves_the_others_alone(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "log.db")
    service = DispatchService(store, _config())

    async def scenario():
        await _send(service, [(book_on("BX01", "setup-key-0001"), DISPATCHER)])
        mixed = [
            (locate("BX01", f"mixed-key-{n:04d}", 52.0 + n / 100), DISPATCHER)
            if n % 2 == 0
            else (locate("NOSUCH", f"mixed-key-{n:04d}"), DISPATCHER)
            for n in range(20)
        ]
        answers = await _send(service, mixed)
        retried = await _send(service, [(mixed[1][0], DISPATCHER)])
        await service.close()
        return answers, retried

    answers, retried = asyncio.run(scenario())
    assert [a.status for a in answers] == [200, 404] * 10
    assert sorted(json.loads(a.body)["seq"] for a in answers[::2]) == list(range(2, 12))
    # A refusal is remembered like an acceptance: the retry gets the same answer.
    assert (retried[0].status, retried[0].body) == (answers[1].status, answers[1].body)
    assert max(store.batches) > 1
    with SQLiteEventStore(tmp_path / "log.db") as reopened:
        assert [e.seq for e in reopened.events_after(0)] == list(range(1, 12))


def test_answers_older_than_the_window_are_pruned(tmp_path: Path) -> None:
    now = [datetime.now(UTC)]
    config = _config(limits={"idempotency_window": 3600.0})
    service = DispatchService(SQLiteEventStore(tmp_path / "log.db"), config, clock=lambda: now[0])
    old, recent = locate("BX01", "old-key-0001"), locate("BX01", "new-key-0001", 52.5)

    async def scenario():
        loop = asyncio.get_running_loop()
        await _send(service, [(book_on("BX01", "book-key-0001"), DISPATCHER), (old, DISPATCHER)])
        # Two hours on, the first answers are past the one-hour window; the new one is not.
        now[0] += timedelta(hours=2)
        await _send(service, [(recent, DISPATCHER)])
        await loop.run_in_executor(None, service._tidy)
        gone = service.store.find_command(DISPATCHER.id, "old-key-0001")
        kept = service.store.find_command(DISPATCHER.id, "new-key-0001")
        retried = await _send(service, [(old, DISPATCHER), (recent, DISPATCHER)])
        await service.close()
        return gone, kept, retried

    gone, kept, retried = asyncio.run(scenario())
    assert gone is None
    assert kept is not None and kept.seq == 3
    # Past the window the key is forgotten: the same command is carried out anew.
    forgotten, remembered = (json.loads(a.body) for a in retried)
    assert (forgotten["seq"], forgotten["replayed"]) == (4, False)
    assert (remembered["seq"], remembered["replayed"]) == (3, True)


class HeldSnapshotStore(SQLiteEventStore):
    """The real store, with snapshot writes held open until the test lets them go."""

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.writing = threading.Event()
        self.release = threading.Event()

    def save_snapshot_json(self, seq: int, body: str) -> None:
        self.writing.set()
        if not self.release.wait(TIMEOUT):
            raise TimeoutError("the test never released the snapshot")
        super().save_snapshot_json(seq, body)


def test_a_command_completes_while_a_snapshot_write_is_held_open(tmp_path: Path) -> None:
    store = HeldSnapshotStore(tmp_path / "log.db")
    service = DispatchService(store, _config(snapshot_every=1))

    async def scenario():
        loop = asyncio.get_running_loop()
        await _send(service, [(book_on("BX01", "snap-key-0001"), DISPATCHER)])
        # The first event triggered a snapshot; wait until its write is under way.
        assert await loop.run_in_executor(None, store.writing.wait, TIMEOUT)
        later = await _send(
            service, [(locate("BX01", f"snap-key-{n:04d}"), DISPATCHER) for n in range(2, 6)]
        )
        still_held = not store.release.is_set()
        store.release.set()
        await service.close()
        return later, still_held

    later, still_held = asyncio.run(scenario())
    assert still_held
    assert [a.status for a in later] == [200] * 4
    with SQLiteEventStore(tmp_path / "log.db") as reopened:
        assert reopened.head() == 5
        snapshot = reopened.load_snapshot()
        assert snapshot is not None and snapshot.seq >= 1


class FailingOnceStore(SQLiteEventStore):
    """The real store, whose next commit fails as a full disk would."""

    fail_next = False

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        super().commit(accepted, refused, at)


def test_a_failed_commit_applies_nothing_and_the_next_one_carries_on(tmp_path: Path) -> None:
    store = FailingOnceStore(tmp_path / "log.db")
    service = DispatchService(store, _config())

    async def scenario():
        await _send(service, [(book_on("BX01", "fail-key-0001"), DISPATCHER)])
        store.fail_next = True
        failed = await _send(
            service, [(locate("BX01", f"fail-key-{n:04d}"), DISPATCHER) for n in range(2, 6)]
        )
        head_after_failure = service.head
        retried = await _send(service, [(locate("BX01", "fail-key-0002"), DISPATCHER)])
        await service.close()
        return failed, head_after_failure, retried

    failed, head_after_failure, retried = asyncio.run(scenario())
    assert [a.status for a in failed] == [500] * 4
    assert head_after_failure == 1  # nothing of the failed batch reached the picture
    # Nothing was stored either, so the retry is carried out, at the next seq.
    assert json.loads(retried[0].body)["seq"] == 2
    with SQLiteEventStore(tmp_path / "log.db") as reopened:
        assert [e.seq for e in reopened.events_after(0)] == [1, 2]


class SnapshotCountingStore(SQLiteEventStore):
    """The real store, noting the seq and size of every snapshot it writes."""

    def __init__(self, path: Path, **kwargs) -> None:
        super().__init__(path, **kwargs)
        self.snapshots: list[tuple[int, int]] = []

    def save_snapshot_json(self, seq: int, body: str) -> None:
        super().save_snapshot_json(seq, body)
        self.snapshots.append((seq, len(body)))


def test_a_snapshot_by_event_count_waits_for_a_share_of_the_picture_in_log(
    tmp_path: Path,
) -> None:
    # Forty units make a picture far larger than one AVL fix: with `snapshot_every=1`
    # and a share of 1.0, the next snapshot waits until the fixes written since add up
    # to the size of the last snapshot, not for one event.
    store = SnapshotCountingStore(tmp_path / "log.db")
    service = DispatchService(store, _config(snapshot_every=1, limits={"snapshot_log_share": 1.0}))
    units = [f"BX{n:02d}" for n in range(40)]

    async def upkeep_done():
        for _ in range(1000):
            if not service._upkeep_busy():
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("the snapshot was never written")

    async def scenario():
        await _send(service, [(book_on(cs, f"book-{cs}-0001"), DISPATCHER) for cs in units])
        await _send(service, [(locate("BX00", "fix-first-0001"), DISPATCHER)])
        await upkeep_done()
        first = list(store.snapshots)
        fixes = 0
        for n in range(2, 2000):
            await _send(service, [(locate("BX00", f"fix-{n:05d}", 52.48 + n / 1e5), DISPATCHER)])
            fixes += 1
            await upkeep_done()
            if len(store.snapshots) > len(first):
                break
        await service.close()
        return first, fixes

    first, fixes = asyncio.run(scenario())
    assert len(first) == 1, first
    (first_seq, picture_bytes), (second_seq, _) = store.snapshots[:2]
    with SQLiteEventStore(tmp_path / "log.db") as reopened:
        logged = [len(e.model_dump_json()) for e in reopened.events_after(first_seq)]
    # Not before the fixes since the first snapshot came to its size, and not long after.
    written = sum(logged[: second_seq - first_seq])
    assert written >= picture_bytes > written - max(logged)
    assert fixes > 10, (fixes, picture_bytes)
