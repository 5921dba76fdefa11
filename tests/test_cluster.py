"""Several `cadterm server` nodes on one PostgreSQL log: one truth, nothing lost.

Real processes on loopback ports, real PostgreSQL, console-like subscribers that fail
over between nodes, writers sending through the client library (which retries with the
same idempotency key on the next node). The faults are seeded: which node dies, and
when, is the same on every run.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cluster import (
    Cluster,
    Subscriber,
    Writer,
    health,
    table_events,
    table_head,
    wait_caught_up,
)
from pg import in_schema, pg_url  # noqa: F401
from private_postgres import PrivatePostgres, why_no_private_postgres
from waiting import until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cadterm.protocol.events import EVENT_ADAPTER
from cadterm.protocol.fold import DispatchState, fold
from cadterm.protocol.frames import SUBPROTOCOL


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:  # noqa: F811
    running = Cluster(pg_url, tmp_path, size=3)
    try:
        yield running.start()
    finally:
        running.close()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    reason = why_no_private_postgres()
    if reason:
        pytest.skip(reason)
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


def check_one_truth(
    cluster: Cluster, subscribers: list[Subscriber], writers: list[Writer]
) -> list[tuple[int, str]]:
    """Everything every node, subscriber and writer saw agrees with the table."""
    table = table_events(cluster.db_url)
    assert [seq for seq, _ in table] == list(range(1, len(table) + 1)), "the log is gap-free"
    expected = [(seq, json.loads(body)) for seq, body in table]
    for subscriber in subscribers:
        got = [(seq, json.loads(body)) for seq, body in subscriber.received]
        assert got == expected, "every subscriber got the identical gap-free sequence"
    # Each acknowledged command was applied exactly once, as the event it was told of.
    created = Counter()
    seq_of = {}
    for seq, body in expected:
        if body["type"] == "incident_created":
            created[body["description"]] += 1
            seq_of[body["description"]] = seq
    for writer in writers:
        for key, seq in writer.acknowledged.items():
            assert created[key] == 1, f"{key} applied {created[key]} times"
            assert seq_of[key] == seq, f"{key} acknowledged as {seq}, stored as {seq_of[key]}"
    assert all(count == 1 for count in created.values()), "no command applied twice"
    return table


async def check_pictures(cluster: Cluster, table: list[tuple[int, str]]) -> None:
    """The picture on every node is the fold of the table."""
    folded = fold([EVENT_ADAPTER.validate_json(body) for _, body in table]).model_dump()
    headers = {"Authorization": f"Bearer {cluster.tokens.dispatcher}"}
    async with httpx.AsyncClient(timeout=10, trust_env=False, headers=headers) as http:
        for node in cluster.nodes:
            # A node folds others' events when woken: ask until it has the head.
            for _ in range(100):
                reply = await http.get(f"{node.url}/v1/state")
                state = DispatchState.model_validate_json(reply.content)
                if state.seq == len(table):
                    break
                await asyncio.sleep(0.05)
            assert state.model_dump() == folded, f"{node.name}'s picture is the fold"


async def subscribe_close_code(url: str, tokens) -> int | None:
    """Subscribe with nothing and return the close code the node ends the stream with."""
    async with connect(
        url.replace("http://", "ws://") + "/v1/stream",
        subprotocols=[SUBPROTOCOL],
        additional_headers={"Authorization": f"Bearer {tokens.dispatcher}"},
        proxy=None,
        open_timeout=5,
        ping_interval=None,
    ) as conn:
        await conn.send(json.dumps({"type": "subscribe"}))
        try:
            async with asyncio.timeout(15):
                while True:
                    await conn.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


async def health_until(url: str, status: str, attempts: int = 200) -> dict:
    """The node's health answer once it says `status` (asked every 50 ms, bounded)."""
    answer = None
    for _ in range(attempts):
        answer = await health(url)
        if answer is not None and answer["status"] == status:
            return answer
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never said {status!r}: last {answer}")


async def run_load(
    cluster: Cluster, seconds: float, faults=None
) -> tuple[list[Subscriber], list[Writer]]:
    # Two stops: the writers end first; each subscriber keeps its one task, which
    # records every event it is given, until it has caught up with the table.
    writing_done, reading_done = asyncio.Event(), asyncio.Event()
    token = cluster.tokens.dispatcher
    urls = cluster.urls
    subscribers = [Subscriber(urls[i:] + urls[:i], token) for i in range(len(urls))]
    writers = [Writer(f"w{i}", urls, token) for i in range(8)]
    reading = [asyncio.create_task(s.run(reading_done)) for s in subscribers]
    try:
        # Every subscriber is live before the first command, so each must see every event.
        await until(lambda: all(s.ready for s in subscribers), timeout=20)
        writing = [
            asyncio.create_task(w.run(writing_done, random.Random(i)))
            for i, w in enumerate(writers)
        ]
        try:
            if faults is not None:
                await faults(seconds)
            else:
                await asyncio.sleep(seconds)
        finally:
            writing_done.set()
            await asyncio.gather(*writing)
        await wait_caught_up(subscribers, table_head(cluster.db_url), timeout=30)
    finally:
        reading_done.set()
        await asyncio.gather(*reading, return_exceptions=True)
    return subscribers, writers


async def test_three_nodes_share_one_gap_free_log(cluster: Cluster) -> None:
    subscribers, writers = await run_load(cluster, seconds=6)
    acknowledged = sum(len(w.acknowledged) for w in writers)
    assert acknowledged > 100, "the writers got through"
    assert all(not w.unanswered for w in writers)
    table = check_one_truth(cluster, subscribers, writers)
    assert len(table) == acknowledged
    await check_pictures(cluster, table)
    for node in cluster.nodes:
        answer = await health(node.url)
        assert answer is not None and answer["status"] == "ok"
        assert answer["node"] == node.name and answer["store_seq"] == len(table)


async def test_a_retry_on_another_node_gets_the_first_answer(cluster: Cluster) -> None:
    headers = {"Authorization": f"Bearer {cluster.tokens.dispatcher}"}
    body = {
        "type": "create_incident",
        "idempotency_key": "retry-elsewhere",
        "workstation": "pytest",
        "grade": 2,
        "incident_type": "THEFT",
        "location": {"address": "1 High Street"},
    }
    async with httpx.AsyncClient(timeout=10, trust_env=False, headers=headers) as http:
        first = await http.post(f"{cluster.nodes[0].url}/v1/commands", json=body)
        again = await http.post(f"{cluster.nodes[2].url}/v1/commands", json=body)
    assert first.status_code == again.status_code == 200
    assert again.json()["replayed"] is True
    assert again.json()["seq"] == first.json()["seq"]
    assert [seq for seq, _ in table_events(cluster.db_url)] == [first.json()["seq"]]


async def test_kill_9_of_nodes_under_load_loses_and_doubles_nothing(cluster: Cluster) -> None:
    rng = random.Random(1309)
    kills: list[str] = []

    async def faults(seconds: float) -> None:
        for _ in range(6):
            await asyncio.sleep(0.4 + rng.random() * 0.6)
            node = rng.choice(cluster.nodes)
            node.kill()
            kills.append(node.name)
            await asyncio.sleep(rng.random() * 0.3)
            await asyncio.to_thread(node.start)

    subscribers, writers = await run_load(cluster, seconds=0, faults=faults)
    assert len(kills) == 6
    table = check_one_truth(cluster, subscribers, writers)
    assert sum(len(w.acknowledged) for w in writers) > 50
    await check_pictures(cluster, table)


async def test_postgresql_restarts_refuse_then_recover(
    private_pg: PrivatePostgres, tmp_path: Path
) -> None:
    running = Cluster(private_pg.url, tmp_path, size=2).start()
    try:
        rng = random.Random(2024)
        outage_answers: list[dict] = []

        async def faults(seconds: float) -> None:
            for _ in range(2):
                await asyncio.sleep(0.8 + rng.random() * 0.5)
                await asyncio.to_thread(private_pg.stop, "immediate")
                # Down: every node says so, and commands get a typed 503.
                for node in running.nodes:
                    outage_answers.append(await health_until(node.url, "unavailable"))
                headers = {"Authorization": f"Bearer {running.tokens.dispatcher}"}
                async with httpx.AsyncClient(timeout=10, trust_env=False, headers=headers) as h:
                    refused = await h.post(
                        f"{running.nodes[0].url}/v1/commands",
                        json={
                            "type": "add_note",
                            "idempotency_key": f"outage-{len(outage_answers)}",
                            "workstation": "pytest",
                            "reference": "0001-01JAN26",
                            "text": "during the outage",
                        },
                    )
                    read = await h.get(f"{running.nodes[1].url}/v1/events?after=0")
                assert refused.status_code == 503, refused.text
                assert refused.json()["code"] == "store_unavailable"
                # Reads too: the node says the store is away, not that it failed.
                assert read.status_code == 503, read.text
                assert read.json()["code"] == "store_unavailable"
                assert read.headers["retry-after"] == "1"
                # A console subscribing now is told to come back (1012), not left waiting.
                assert await subscribe_close_code(running.nodes[0].url, running.tokens) == 1012
                await asyncio.to_thread(private_pg.start)

        subscribers, writers = await run_load(running, seconds=0, faults=faults)
        table = check_one_truth(running, subscribers, writers)
        await check_pictures(running, table)
        for node in running.nodes:
            await health_until(node.url, "ok")
        assert all(a["problem"] for a in outage_answers)
    finally:
        running.close()


def test_in_schema_keeps_other_options() -> None:
    url = in_schema("postgresql://u@h/db?sslmode=disable", "s1")
    assert url == "postgresql://u@h/db?sslmode=disable&options=-csearch_path%3Ds1"
