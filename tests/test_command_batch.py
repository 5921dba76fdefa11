"""`POST /v1/commands/batch`: several commands a request, each answered as if sent alone.

Against a real backend on a loopback port with its own SQLite file: commands are decided
in the order sent (a later one sees an earlier one's effect), one refusal leaves the
others alone, every command keeps its own idempotency key, a malformed batch is refused
whole, and the rate limit counts every command. Then the client's `send_many` and
`execute_many` over the same route.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from conftest import TOKENS, make_config

from cadterm.client import Backoff, CommandSender, DispatchClient
from cadterm.client.errors import BackendUnavailable, CommandRejected, InvalidCommand
from cadterm.protocol.commands import MAX_BATCH_COMMANDS, BatchResult, CommandResult, LocateUnit
from cadterm.protocol.domain import Position, Role
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.server.config import Limits

SCENE = {"address": "12 High Street, Anytown", "position": {"lat": 52.2, "lon": -1.5}}
FAST = Backoff(base=0.01, cap=0.02)


def command(kind: str, key: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "idempotency_key": key or uuid.uuid4().hex,
        "workstation": "ws-test",
    } | fields


def book_on(callsign: str, **fields: Any) -> dict[str, Any]:
    return command("book_on", callsign=callsign, unit_type="patrol_car", **fields)


def locate(callsign: str, lat: float = 52.2, **fields: Any) -> dict[str, Any]:
    return command("locate_unit", callsign=callsign, position={"lat": lat, "lon": -1.5}, **fields)


@pytest.fixture
def server(backend_factory):
    return backend_factory(make_config(limits=Limits(command_rate=1000, command_burst=1000)))


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=10) as client:
        yield client


def head(http: httpx.Client) -> int:
    return http.get("/v1/health").json()["seq"]


def post_batch(http: httpx.Client, commands: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reply = http.post("/v1/commands/batch", json={"commands": commands})
    assert reply.status_code == 200, reply.text
    BatchResult.model_validate_json(reply.content)  # the documented shape, exactly
    answers = reply.json()["answers"]
    assert len(answers) == len(commands)
    return answers


def test_commands_are_decided_in_order_each_seeing_the_last(http) -> None:
    """A unit booked on, an incident opened and the unit sent to it, in one request."""
    answers = post_batch(
        http,
        [
            book_on("AB12"),
            command("create_incident", grade=1, incident_type="RTC", location=SCENE),
            locate("AB12", 52.21),
        ],
    )
    assert [a["status"] for a in answers] == [200, 200, 200]
    seqs = [a["body"]["seq"] for a in answers]
    assert seqs == [1, 2, 3]
    reference = answers[1]["body"]["event"]["reference"]
    assigned = post_batch(http, [command("assign_unit", reference=reference, callsign="AB12")])
    assert assigned[0]["body"]["event"]["type"] == "unit_assigned"
    events = http.get("/v1/events").json()
    assert [e["type"] for e in events] == [
        "unit_booked_on",
        "incident_created",
        "unit_located",
        "unit_assigned",
    ]
    # Each answer is the one the command alone would have had: the event as stored.
    assert [a["body"]["event"] for a in answers] == events[:3]


def test_a_refusal_leaves_the_commands_around_it_alone(http) -> None:
    answers = post_batch(http, [book_on("AB12"), locate("ZZ99"), locate("AB12", 52.3)])
    assert [a["status"] for a in answers] == [200, 404, 200]
    problem = Problem.model_validate(answers[1]["body"])
    assert problem.code == ProblemCode.UNKNOWN_CALLSIGN and "ZZ99" in problem.detail
    assert [a["body"]["seq"] for a in (answers[0], answers[2])] == [1, 2]
    assert head(http) == 2


def test_a_retried_batch_is_replayed_command_by_command(http) -> None:
    batch = [book_on("AB12"), locate("ZZ99"), locate("AB12", 52.3)]
    first = post_batch(http, batch)
    again = post_batch(http, batch)
    assert head(http) == 2
    assert [a["status"] for a in again] == [200, 404, 200]
    assert [a["body"]["replayed"] for a in (again[0], again[2])] == [True, True]
    assert again[0]["body"]["event"] == first[0]["body"]["event"]
    assert again[1]["body"] == first[1]["body"]


def test_a_key_used_twice_in_one_batch(http) -> None:
    """The same command twice is done once; another command under the key is refused."""
    same = book_on("AB12", key="key-twice-0001")
    answers = post_batch(http, [same, same, locate("AB12", key="key-twice-0001")])
    assert [a["status"] for a in answers] == [200, 200, 422]
    assert answers[1]["body"]["replayed"] is True
    assert answers[2]["body"]["code"] == "idempotency_key_reused"
    assert head(http) == 1


@pytest.mark.parametrize(
    ("commands", "field"),
    [
        ([], "commands"),
        ([{"type": "book_on"}], "commands.0.idempotency_key"),
        ([locate("AB12"), locate("AB12", taken_at="2026-11-27T09:00:00")], "commands.1.taken_at"),
        ([locate("AB12", lat="52.2")], "commands.0.position.lat"),
        ([locate("AB12")] * (MAX_BATCH_COMMANDS + 1), "commands"),
    ],
    ids=["empty", "incomplete", "naive-time", "latitude-as-text", "too-many"],
)
def test_a_malformed_batch_is_refused_whole(http, commands, field) -> None:
    post_batch(http, [book_on("AB12")])
    reply = http.post("/v1/commands/batch", json={"commands": commands})
    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert problem["code"] == "invalid_command"
    assert problem["field"] == field, problem
    assert head(http) == 1  # nothing of it was applied, not even the good commands


def test_a_body_that_is_not_a_batch_is_refused(http) -> None:
    for body in ({"commands": "book_on"}, book_on("AB12"), {"commands": [], "extra": 1}):
        reply = http.post("/v1/commands/batch", json=body)
        assert reply.status_code == 422, reply.text
    assert head(http) == 0


def test_roles_are_checked_command_by_command(server) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers(Role.READ_ONLY)) as viewer:
        answers = post_batch(viewer, [book_on("AB12")])
    assert answers[0]["status"] == 403 and answers[0]["body"]["code"] == "forbidden"
    with httpx.Client(base_url=server.url, headers=server.headers(Role.INTAKE)) as intake:
        reply = intake.post("/v1/commands/batch", json={"commands": [book_on("AB12")]})
    assert reply.status_code == 403


def test_every_command_counts_against_the_rate_limit(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(command_rate=0.001, command_burst=5)))
    with httpx.Client(base_url=backend.url, headers=backend.headers()) as http:
        over = http.post(
            "/v1/commands/batch", json={"commands": [book_on(f"AB{i}") for i in range(6)]}
        )
        assert over.status_code == 422 and over.json()["code"] == "batch_over_burst"
        assert "5" in over.json()["detail"]
        assert [a["status"] for a in post_batch(http, [book_on("AB1"), book_on("AB2")])] == [
            200,
            200,
        ]
        # Three tokens left: a batch of four is refused whole, one of three is taken.
        four = [locate("AB1"), locate("AB2"), locate("AB1"), locate("AB2")]
        refused = http.post("/v1/commands/batch", json={"commands": four})
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        assert head(http) == 2
        assert len(post_batch(http, four[:3])) == 3
        assert head(http) == 5


def test_batches_sent_together_keep_their_own_order(server) -> None:
    """Two operators' batches interleave in the log, but each one's order holds."""

    async def run() -> list[list[int]]:
        async with httpx.AsyncClient(base_url=server.url, headers=server.headers()) as http:
            await http.post("/v1/commands/batch", json={"commands": [book_on("AB1")]})

            async def one(lat: float) -> list[int]:
                body = {"commands": [locate("AB1", lat + i / 1000) for i in range(20)]}
                reply = await http.post("/v1/commands/batch", json=body)
                return [a["body"]["seq"] for a in reply.json()["answers"]]

            return await asyncio.gather(*(one(52.0 + n / 10) for n in range(4)))

    for seqs in asyncio.run(run()):
        assert seqs == sorted(seqs) and len(set(seqs)) == 20


# --- the client ------------------------------------------------------------------------


async def test_send_many_gives_each_command_its_result_or_error(server) -> None:
    sender = CommandSender([server.url], TOKENS[Role.DISPATCHER], backoff=FAST)
    try:
        client = DispatchClient([server.url], TOKENS[Role.DISPATCHER], workstation="ws-test")
        commands = [
            client.command("book_on", callsign="AB12", unit_type="van"),
            client.command("locate_unit", callsign="ZZ99", position=Position(lat=52, lon=-1)),
            client.command("locate_unit", callsign="AB12", position=Position(lat=52, lon=-1)),
        ]
        answers = await sender.send_many(commands)
    finally:
        await sender.aclose()
    assert isinstance(answers[0], CommandResult) and answers[0].seq == 1
    assert isinstance(answers[1], CommandRejected)
    assert answers[1].code == ProblemCode.UNKNOWN_CALLSIGN
    assert isinstance(answers[2], CommandResult) and answers[2].seq == 2


async def test_send_many_splits_a_long_feed_into_batches_in_order(server) -> None:
    sender = CommandSender([server.url], TOKENS[Role.DISPATCHER], backoff=FAST)
    commands = [
        LocateUnit(
            idempotency_key=f"feed-{n:06d}",
            workstation="ws-test",
            callsign="AB12",
            position=Position(lat=52 + n / 10_000, lon=-1.5),
        )
        for n in range(MAX_BATCH_COMMANDS * 2 + 5)
    ]
    try:
        client = DispatchClient([server.url], TOKENS[Role.DISPATCHER], workstation="ws-test")
        await sender.send(client.command("book_on", callsign="AB12", unit_type="van"))
        answers = await sender.send_many(commands)
    finally:
        await sender.aclose()
    seqs = [answer.seq for answer in answers if isinstance(answer, CommandResult)]
    assert seqs == list(range(2, 2 + len(commands)))


async def test_send_many_sends_again_only_what_was_not_decided(server) -> None:
    """A command answered 503 (its store failed) is sent again with its key; the ones
    already decided are not. The fault: the first request loses its second command on
    the way, and the proxy answers for it as a failing backend would."""

    class LosesTheSecond(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.real = httpx.AsyncHTTPTransport()
            self.sent: list[list[str]] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            commands = json.loads(request.content)["commands"]
            self.sent.append([c["idempotency_key"] for c in commands])
            if len(self.sent) > 1:
                return await self.real.handle_async_request(request)
            lost = commands.pop(1)
            headers = {k: v for k, v in request.headers.items() if k != "content-length"}
            forwarded = httpx.Request(
                "POST", request.url, headers=headers, json={"commands": commands}
            )
            reply = await self.real.handle_async_request(forwarded)
            await reply.aread()
            answers = json.loads(reply.content)["answers"]
            problem = Problem.of(ProblemCode.STORE_UNAVAILABLE, f"{lost['type']} not stored")
            answers.insert(1, {"status": 503, "body": problem.model_dump(exclude_none=True)})
            return httpx.Response(200, json={"answers": answers})

    transport = LosesTheSecond()
    sender = CommandSender([server.url], TOKENS[Role.DISPATCHER], transport=transport, backoff=FAST)
    keys = ["undecided-0001", "undecided-0002", "undecided-0003"]
    try:
        answers = await sender.send_many(
            [
                LocateUnit(
                    idempotency_key=key,
                    workstation="ws-test",
                    callsign="ZZ99",
                    position=Position(lat=52, lon=-1),
                )
                for key in keys
            ]
        )
    finally:
        await sender.aclose()
    assert transport.sent == [keys, ["undecided-0002"]]
    assert all(isinstance(answer, CommandRejected) for answer in answers)


async def test_send_many_says_which_commands_no_backend_decided(refused_url: str) -> None:
    sender = CommandSender([refused_url], TOKENS[Role.DISPATCHER], attempts=2, backoff=FAST)
    try:
        with pytest.raises(BackendUnavailable, match="1 commands not delivered"):
            await sender.send_many(
                [
                    LocateUnit(
                        idempotency_key="nobody-home-1",
                        workstation="ws-test",
                        callsign="AB12",
                        position=Position(lat=52, lon=-1),
                    )
                ]
            )
    finally:
        await sender.aclose()


async def test_execute_many_waits_until_the_picture_shows_every_command(server) -> None:
    client = DispatchClient(
        [server.url], TOKENS[Role.DISPATCHER], workstation="ws-test", backoff=FAST
    )
    async with client:
        await client.wait_live(10)
        answers = await client.execute_many(
            [client.command("book_on", callsign=f"AB{n}", unit_type="van") for n in range(1, 31)]
            + [client.command("book_on", callsign="AB1", unit_type="van")]
        )
        assert all(isinstance(answer, CommandResult) for answer in answers[:30])
        assert isinstance(answers[30], CommandRejected)  # already on duty
        assert answers[30].code == ProblemCode.UNIT_ON_DUTY
        # Read-your-writes, as `execute` gives: no waiting after it returns.
        assert {f"AB{n}" for n in range(1, 31)} <= set(client.state.units)
        assert await client.execute_many([]) == []


# `model_copy` skips validation, so it can make the naive time a buggy client might send
# (pydantic warns as it dumps it).
@pytest.mark.filterwarnings("ignore:Pydantic serializer warnings")
async def test_execute_many_raises_when_the_whole_batch_is_refused(server) -> None:
    """One command the door refuses (a naive time) refuses the batch: nothing is done."""
    async with DispatchClient(
        [server.url], TOKENS[Role.DISPATCHER], workstation="ws-test"
    ) as client:
        await client.wait_live(10)
        good = client.command("book_on", callsign="AB12", unit_type="van")
        bad = good.model_copy(
            update={"idempotency_key": "naive-time-0001", "taken_at": "2026-11-27T09:00:00"}
        )
        with pytest.raises(InvalidCommand, match="taken_at"):
            await client.execute_many([good, bad], wait=False)
        assert client.state.seq == 0


async def test_send_many_keeps_each_request_within_the_servers_body_limit(server) -> None:
    """Forty 4,000-character notes are 160 KB: more than one body of the default 64 KiB
    holds, so they go in several requests, in order, none refused as too large."""
    sender = CommandSender([server.url], TOKENS[Role.DISPATCHER], backoff=FAST)
    client = DispatchClient([server.url], TOKENS[Role.DISPATCHER], workstation="ws-test")
    try:
        opened = await sender.send(
            client.command("create_incident", grade=1, incident_type="RTC", location=SCENE)
        )
        reference = opened.event.reference
        notes = [
            client.command("add_note", reference=reference, text=f"{n:02d} " + "é" * 3996)
            for n in range(40)
        ]
        answers = await sender.send_many(notes)
    finally:
        await sender.aclose()
    assert [answer.seq for answer in answers] == list(range(2, 42))
