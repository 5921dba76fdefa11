"""`DispatchClient` against a real backend: the live picture, commands, errors, the link.

Every test starts a real uvicorn server on a loopback port with its own SQLite file
(`backend`, `backend_factory`) and drives it through the public client API only, then
checks what the server itself says (`/v1/state`, `/v1/events`) where that matters.
The last tests run `examples/dispatch_flow.py` as a user would and check that the
example in `docs/client.md` is that same file.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import waiting
from conftest import TOKENS, Backend, make_config
from pydantic import ValidationError

from cadterm.client import (
    BackendUnavailable,
    Backoff,
    ClientError,
    CommandConflict,
    CommandError,
    CommandRejected,
    DispatchClient,
    InvalidCommand,
    LinkState,
    LinkStatus,
    NotAuthorised,
    RateLimited,
    StreamStopped,
)
from cadterm.client.commands import CommandSender
from cadterm.client.queries import (
    Queries,
    QueryError,
    fetch_events,
    fetch_head,
    fetch_health,
    fetch_state,
    fetch_units,
)
from cadterm.protocol.commands import BookOn, CreateIncident
from cadterm.protocol.domain import (
    Grade,
    IncidentStatus,
    Location,
    Position,
    Role,
    UnitState,
    UnitType,
)
from cadterm.protocol.drafts import draft, draft_of
from cadterm.protocol.fold import Changes
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.server.config import Limits

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "dispatch_flow.py"
DOCS = ROOT / "docs" / "client.md"

DISPATCHER = TOKENS[Role.DISPATCHER]
FAST = Backoff(base=0.02, cap=0.1)  # reconnect and retry quickly: tests wait on it
TIMEOUT = 10.0
SCENE = Location(address="12 High Street, Anytown", position=Position(lat=52.2, lon=-1.5))


# --- helpers -----------------------------------------------------------------------------


def client_for(backend: Backend | str, token: str = DISPATCHER, **options: Any) -> DispatchClient:
    url = backend if isinstance(backend, str) else backend.url
    options.setdefault("backoff", FAST)
    return DispatchClient([url], token, workstation="ws-test", **options)


@contextlib.asynccontextmanager
async def live(backend: Backend | str, **options: Any) -> AsyncIterator[DispatchClient]:
    """A started client that is live on `backend`; closed on the way out."""
    async with client_for(backend, **options) as client:
        await client.wait_live(TIMEOUT)
        assert client.status.live, client.status
        yield client


async def until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll `condition` until it holds; fail at once if it raises (`waiting.until`)."""
    await waiting.until(condition, timeout)


def streams_running() -> list[asyncio.Task]:
    """The subscription tasks still running on this loop (each a stream that may retry)."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name() == "cadterm-subscription" and not task.done()
    ]


async def server_get(backend: Backend, path: str) -> Any:
    async with httpx.AsyncClient(
        base_url=backend.url, headers=backend.headers(), timeout=TIMEOUT, trust_env=False
    ) as http:
        response = await http.get(path)
        response.raise_for_status()
        return response.json()


async def server_events(backend: Backend, after: int = 0) -> list[dict[str, Any]]:
    return await server_get(backend, f"/v1/events?after={after}&limit=5000")


async def create_incident(client: DispatchClient, **fields: Any) -> str:
    fields = {"grade": Grade.EMERGENCY, "incident_type": "RTC", "location": SCENE} | fields
    result = await client.execute(client.command("create_incident", **fields))
    return result.event.reference


async def book_on(client: DispatchClient, callsign: str, **fields: Any) -> None:
    fields.setdefault("unit_type", UnitType.PATROL_CAR)
    await client.execute(client.command("book_on", callsign=callsign, **fields))


# --- going live --------------------------------------------------------------------------


async def test_goes_live_on_an_empty_backend(backend: Backend) -> None:
    async with live(backend) as client:
        assert client.status.state == LinkState.LIVE
        assert client.status.url == backend.ws_url
        assert client.status.last_frame_at is not None
        assert client.seq == 0
        assert client.incidents == {} and client.units == {}
        # The empty snapshot still replaced the picture, and says so once.
        assert client.take_changes() == Changes(replaced=True)
        assert not client.take_changes()


async def test_goes_live_from_a_snapshot_of_a_busy_backend(backend: Backend) -> None:
    async with live(backend) as first:
        reference = await create_incident(first)
        for callsign in ("AB1", "AB2", "AB3"):
            await book_on(first, callsign)
        await first.execute(first.command("assign_unit", reference=reference, callsign="AB2"))

    async with live(backend) as second:
        server = await server_get(backend, "/v1/state")
        assert second.seq == server["seq"] == 5
        assert second.state.model_dump(mode="json") == server
        assert second.incidents[reference].assigned == ["AB2"]
        assert second.units["AB2"].incident == reference
        # The snapshot touched everything: the first look at the change feed says so.
        assert second.take_changes() == Changes(
            incidents={reference}, units={"AB1", "AB2", "AB3"}, replaced=True
        )


async def test_a_fault_in_the_client_stops_the_link_with_its_reason(backend: Backend) -> None:
    """A bug is not a network blip: the link stops and says so, instead of showing
    RECONNECTING for ever."""
    async with live(backend) as client:

        def broken_fold(event: object) -> None:
            raise TypeError("can't compare offset-naive and offset-aware datetimes")

        client.store.apply = broken_fold  # type: ignore[method-assign]
        async with live(backend) as other:
            await book_on(other, "AB1")
        await until(lambda: client.status.state == LinkState.STOPPED)
        assert "internal error in the client" in (client.status.reason or "")
        assert "offset-naive" in (client.status.reason or "")
        assert client.subscription.resumes == 0


# --- commands ----------------------------------------------------------------------------


async def test_execute_gives_read_your_writes(backend: Backend) -> None:
    async with live(backend) as client:
        result = await client.execute(
            client.command("create_incident", grade=1, incident_type="RTC", location=SCENE)
        )
        reference = result.event.reference
        assert client.seq == result.seq == 1
        assert client.incidents[reference].grade == Grade.EMERGENCY
        assert client.incidents[reference].status == IncidentStatus.OPEN

        await book_on(client, "AB12", position=Position(lat=52.21, lon=-1.49))
        assert client.units["AB12"].state == UnitState.AVAILABLE_ON_PATROL
        assert client.units["AB12"].position == Position(lat=52.21, lon=-1.49)

        assign = client.command("assign_unit", reference=reference, callsign="AB12")
        result = await client.execute(assign)
        assert client.seq == result.seq == 3
        assert client.units["AB12"].incident == reference
        assert client.units["AB12"].state == UnitState.EN_ROUTE
        assert client.incidents[reference].assigned == ["AB12"]
        assert client.incidents[reference].status == IncidentStatus.RESOURCED

        await client.execute(client.command("set_unit_state", callsign="AB12", state="at scene"))
        assert client.incidents[reference].status == IncidentStatus.AT_SCENE

    server = await server_get(backend, "/v1/state")
    assert client.state.model_dump(mode="json") == server


async def test_a_draft_is_keyed_by_the_client_and_pending_until_seen(backend: Backend) -> None:
    """A draft gets a fresh key and the client's workstation; what a backend accepted
    stays pending until the stream shows it, then nothing is pending."""
    async with live(backend) as client:
        unit_draft = draft("book_on", callsign="AB5", unit_type="van")
        first, second = client.keyed(unit_draft), client.keyed(unit_draft)
        assert first.idempotency_key != second.idempotency_key
        assert first.workstation == client.workstation
        assert draft_of(first) == unit_draft

        result = await client.execute(unit_draft, wait=False)
        # Either the stream already showed it, or it is pending until it does.
        assert client.pending.sent == ({result.seq} if client.seq < result.seq else set())
        await client.pending.seen(result.seq, timeout=10)
        assert client.seq >= result.seq and "AB5" in client.units
        assert client.pending.sent == frozenset() and client.pending.count == 0

    assert [e["workstation"] for e in await server_events(backend)] == [client.workstation]


async def test_unknown_callsign_is_rejected_with_code_and_field(backend: Backend) -> None:
    async with live(backend) as client:
        reference = await create_incident(client)
        with pytest.raises(CommandRejected) as refused:
            await client.execute(
                client.command("assign_unit", reference=reference, callsign="NOSUCH1")
            )
        error = refused.value
        assert type(error) is CommandRejected  # not a conflict, not anything else
        assert isinstance(error, CommandError) and isinstance(error, ClientError)
        assert error.code == "unknown_callsign"
        assert error.field == "callsign"
        assert "NOSUCH1" in error.detail
        assert error.problem.status == 404
        assert client.seq == 1  # nothing happened
        assert client.incidents[reference].assigned == []


async def test_stale_expected_version_is_a_conflict_with_what_changed(backend: Backend) -> None:
    async with live(backend) as client:
        reference = await create_incident(client)
        seen = client.incidents[reference].version
        await client.execute(
            client.command("add_note", reference=reference, text="caller now says three cars")
        )
        with pytest.raises(CommandConflict) as refused:
            await client.execute(
                client.command(
                    "grade_incident", reference=reference, grade=2, expected_version=seen
                )
            )
        conflict = refused.value
        assert isinstance(conflict, CommandRejected)
        assert conflict.code == "version_conflict"
        assert conflict.field == "expected_version"
        assert conflict.current is not None
        assert conflict.current["reference"] == reference
        assert conflict.current["version"] == seen + 1 == client.incidents[reference].version
        assert conflict.current["grade"] == 1  # the grade was not changed
        assert len(conflict.changes) == 1
        assert "caller now says three cars" in conflict.changes[0]


async def test_malformed_commands_are_invalid(backend: Backend) -> None:
    async with live(backend) as client:
        with pytest.raises(InvalidCommand) as refused:
            await create_incident(client, incident_type="SPACESHIP")
        assert refused.value.code == "unknown_incident_type"
        assert refused.value.field == "incident_type"

        await book_on(client, "AB1")
        # A refusal that needs no picture is made before anything is sent.
        with pytest.raises(ValidationError, match="off duty with book_off"):
            client.command("set_unit_state", callsign="AB1", state=11)

        # A body that the server's schema refuses (built past the client's own checks).
        bad = CreateIncident.model_construct(
            idempotency_key="malformed-0001",
            workstation="ws-test",
            grade=Grade.EMERGENCY,
            incident_type="RTC",
            location=Location.model_construct(address=""),
        )
        with pytest.raises(InvalidCommand) as refused:
            await client.execute(bad)
        assert refused.value.code == "invalid_command"
        assert refused.value.problem.status == 422
        assert refused.value.field is not None and refused.value.field.endswith("address")
        assert client.seq == 1


async def test_read_only_token_is_not_authorised_to_command(backend: Backend) -> None:
    async with live(backend, token=TOKENS[Role.READ_ONLY]) as viewer:  # may watch
        with pytest.raises(NotAuthorised) as refused:
            await create_incident(viewer)
        assert refused.value.code == "forbidden"
        assert refused.value.problem.status == 403
        assert viewer.seq == 0


async def test_wrong_token_is_not_authorised_to_command(backend: Backend) -> None:
    client = client_for(backend, token="not-a-real-token-0123456789")
    try:
        with pytest.raises(NotAuthorised) as refused:
            await client.execute(client.command("book_on", callsign="AB1", unit_type="van"))
        assert refused.value.code == "unauthenticated"
    finally:
        await client.close()


async def test_rate_limited(backend_factory) -> None:
    backend = backend_factory(config=make_config(limits=Limits(command_rate=0.1, command_burst=1)))
    async with live(backend, command_attempts=1) as client:
        await book_on(client, "AB1")
        with pytest.raises(RateLimited) as refused:
            await book_on(client, "AB2")
        assert refused.value.code == "rate_limited"
        assert refused.value.retry_after >= 1
        assert "AB2" not in client.units
    assert [event["type"] for event in await server_events(backend)] == ["unit_booked_on"]


async def test_backend_unavailable_when_the_only_backend_is_down(refused_url: str) -> None:
    url = refused_url  # nothing listens there
    client = client_for(url, command_attempts=2, backoff=Backoff(base=0.01, cap=0.02))
    started = time.monotonic()
    async with client:
        with pytest.raises(BackendUnavailable) as unavailable:
            await client.execute(client.command("book_on", callsign="AB1", unit_type="van"))
        assert "127.0.0.1" in str(unavailable.value)
        assert isinstance(unavailable.value, ClientError)
        # The stream keeps trying: a backend that is down is transient.
        await until(lambda: client.status.state == LinkState.RECONNECTING)
        assert client.status.reason
    assert time.monotonic() - started < 5


async def test_a_request_timeout_is_retried_with_the_same_key(backend: Backend) -> None:
    """A 408 (the body arrived too slowly, as on a thin link) decided nothing: the sender
    tries again with the same key, and the command is applied once."""

    class SlowOnce(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.real = httpx.AsyncHTTPTransport()
            self.keys: list[str] = []

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            self.keys.append(json.loads(request.content)["idempotency_key"])
            if len(self.keys) == 1:
                problem = Problem.of(ProblemCode.REQUEST_TIMEOUT, "body too slow")
                return httpx.Response(
                    408,
                    content=problem.model_dump_json(exclude_none=True),
                    headers={"Content-Type": "application/problem+json"},
                )
            return await self.real.handle_async_request(request)

    transport = SlowOnce()
    sender = CommandSender(
        [backend.url], DISPATCHER, transport=transport, backoff=Backoff(base=0.01, cap=0.02)
    )
    try:
        command = BookOn(
            idempotency_key="slow-link-0001", workstation="ws-test", callsign="AB1", unit_type="van"
        )
        result = await sender.send(command)
    finally:
        await sender.aclose()
    assert transport.keys == ["slow-link-0001", "slow-link-0001"]
    assert result.event.callsign == "AB1" and not result.replayed
    assert [e["type"] for e in await server_events(backend)] == ["unit_booked_on"]


async def test_same_command_object_twice_is_replayed_not_applied_twice(backend: Backend) -> None:
    async with live(backend) as client:
        command = client.command("book_on", callsign="AB1", unit_type="van")
        first = await client.execute(command)
        again = await client.execute(command)
        assert first.replayed is False
        assert again.replayed is True
        assert again.seq == first.seq == 1
        assert again.event == first.event
        assert client.seq == 1
    assert len(await server_events(backend)) == 1


# --- the change feed ---------------------------------------------------------------------


async def test_take_changes_names_exactly_what_was_touched(backend: Backend) -> None:
    async with live(backend) as client:
        reference = await create_incident(client)
        other = await create_incident(client, incident_type="BURGLARY")
        for callsign in ("AB1", "AB2", "AB3"):
            await book_on(client, callsign)
        # The first look also hears of the going-live snapshot (of an empty picture).
        assert client.take_changes() == Changes(
            incidents={reference, other}, units={"AB1", "AB2", "AB3"}, replaced=True
        )

        await client.execute(client.command("assign_unit", reference=reference, callsign="AB2"))
        assert client.take_changes() == Changes(incidents={reference}, units={"AB2"})
        second = client.take_changes()
        assert not second and second == Changes()

        await client.execute(client.command("set_unit_state", callsign="AB3", state=4))
        assert client.take_changes() == Changes(units={"AB3"})
        await client.execute(client.command("add_note", reference=other, text="dog barking"))
        assert client.take_changes() == Changes(incidents={other})
        assert not client.take_changes()


async def test_watch_yields_batches_of_changes(backend: Backend) -> None:
    async with live(backend) as client:
        batches: list[Changes] = []
        wanted = Changes(units={"AB1", "AB2"})

        async def consume() -> None:
            async with contextlib.aclosing(client.watch()) as feed:
                async for batch in feed:
                    if not (batch.incidents or batch.units):
                        # Only a snapshot that replaced the picture may name nothing.
                        assert batch.replaced, "empty batch"
                        assert client.state.seq == 0 or batches == [], "empty batch"
                        continue
                    batches.append(batch)
                    seen = Changes()
                    for each in batches:
                        seen.update(each)
                    if seen.units >= wanted.units and seen.incidents:
                        return

        consumer = asyncio.create_task(consume())
        await asyncio.sleep(0)  # let the consumer start waiting
        await book_on(client, "AB1")
        await book_on(client, "AB2")
        reference = await create_incident(client)
        await asyncio.wait_for(consumer, TIMEOUT)
        everything = Changes()
        for batch in batches:
            everything.update(batch)
        # (The first batch may also carry the going-live snapshot's `replaced`.)
        assert (everything.incidents, everything.units) == ({reference}, {"AB1", "AB2"})
        assert not client.take_changes()  # watch() consumed them


# --- the link ----------------------------------------------------------------------------


async def test_status_goes_connecting_resyncing_live_then_stopped(backend: Backend) -> None:
    seen: list[LinkStatus] = []
    client = client_for(backend, on_status=seen.append)
    async with client:
        await client.wait_live(TIMEOUT)
        assert [s.state for s in seen] == [
            LinkState.CONNECTING,
            LinkState.RESYNCING,
            LinkState.LIVE,
        ]
        assert all(s.reason is None for s in seen)
        assert seen[-1] == client.status and seen[-1].live
        assert seen[0].since <= seen[1].since <= seen[2].since
    assert [s.state for s in seen][-1] == LinkState.STOPPED
    assert len(seen) == 4
    assert client.status.state == LinkState.STOPPED
    assert client.status.reason == "stopped by the client"
    assert not client.status.live


async def test_wrong_token_stops_the_stream_with_a_reason(backend: Backend) -> None:
    seen: list[LinkStatus] = []
    client = client_for(backend, token="not-a-real-token-0123456789", on_status=seen.append)
    async with client:
        with pytest.raises(StreamStopped) as stopped:
            await client.wait_live(TIMEOUT)
        assert "401" in stopped.value.reason
        assert client.status.state == LinkState.STOPPED
        assert client.status.reason == stopped.value.reason
        # The stream's task has ended, so no retry can follow.
        await until(lambda: not streams_running())
        assert [s.state for s in seen] == [LinkState.CONNECTING, LinkState.STOPPED]
        assert client.subscription.resumes == 0
        assert client.status.attempts == 0


# --- packaging ---------------------------------------------------------------------------


def test_client_imports_and_works_without_textual_or_rich(tmp_path: Path) -> None:
    # With textual and rich made unimportable (an install without the console), the
    # client still imports and builds; httpx then skips its optional CLI, which is the
    # only thing that imports rich when rich happens to be installed.
    code = (
        "import sys\n"
        "sys.modules['textual'] = sys.modules['rich'] = None  # as if not installed\n"
        "import cadterm.client\n"
        "from cadterm.client import DispatchClient\n"
        "client = DispatchClient(['http://127.0.0.1:9'], 'token', journal_path=sys.argv[1])\n"
        "client.journal.close()\n"
        "ui = sorted(m for m, mod in sys.modules.items()\n"
        "            if m.split('.')[0] in ('textual', 'rich') and mod is not None)\n"
        "print(ui)\n"
        "sys.exit(1 if ui else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "journal.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the example in docs/client.md -------------------------------------------------------


def run_example(backend: Backend, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CADTERM_")}
    env |= {
        "CADTERM_URL": backend.url,
        "CADTERM_TOKEN": DISPATCHER,
        "CADTERM_WORKSTATION": "ws-test",
    }
    return subprocess.run(
        [sys.executable, str(EXAMPLE), *argv],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=ROOT,
    )


async def test_example_dispatch_flow_closes_an_incident_on_an_empty_backend(
    backend: Backend,
) -> None:
    done = await asyncio.to_thread(run_example, backend)
    assert done.returncode == 0, done.stdout + done.stderr

    incidents = await server_get(backend, "/v1/incidents")
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["status"] == "closed"
    assert incident["closing_code"] == "RESOLVED"
    assert incident["grade"] == 1
    assert incident["location"]["position"] is not None
    assert incident["reference"] in done.stdout
    events = await server_events(backend)
    assert [e["type"] for e in events] == [
        "unit_booked_on",
        "unit_booked_on",
        "incident_created",
        "unit_assigned",
        "unit_state_changed",
        "note_added",
        "incident_closed",
    ]
    assert events[3]["callsign"] == "OX11"  # the nearer of the two demo units
    assert events[4]["state"] == UnitState.AT_SCENE
    assert "closed " + incident["reference"] in done.stdout


async def test_example_picks_the_nearest_deployable_unit(backend: Backend) -> None:
    near = Position(lat=51.7545, lon=-1.2582)  # next to the example's scene
    async with live(backend) as client:
        elsewhere = await create_incident(client)
        # Nearest of all, but committed to another incident.
        await book_on(client, "BUSY1", position=near)
        await client.execute(client.command("assign_unit", reference=elsewhere, callsign="BUSY1"))
        # Near, but not deployable (prisoner escort), or off duty, or with no position.
        await book_on(client, "ESC1", position=near)
        await client.execute(client.command("set_unit_state", callsign="ESC1", state=9))
        await book_on(client, "OFF1", position=near)
        await client.execute(client.command("book_off", callsign="OFF1"))
        await book_on(client, "NOPOS1")
        # Deployable: one about 1.4 km away (at refreshments), one about 9 km away.
        await book_on(client, "MID1", position=Position(lat=51.7600, lon=-1.2400), state=4)
        await book_on(client, "FAR1", position=Position(lat=51.8300, lon=-1.2000))
        head = client.seq

    done = await asyncio.to_thread(run_example, backend, backend.url)  # URL from argv
    assert done.returncode == 0, done.stdout + done.stderr
    events = await server_events(backend, after=head)
    assert events[0]["type"] == "incident_created"  # no demo units booked on
    assigned = [e for e in events if e["type"] == "unit_assigned"]
    assert [e["callsign"] for e in assigned] == ["MID1"]
    assert "MID1" in done.stdout


async def test_example_without_a_token_says_how_to_run_it(backend: Backend) -> None:
    def run() -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CADTERM_")}
        return subprocess.run(
            [sys.executable, str(EXAMPLE), backend.url],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
        )

    done = await asyncio.to_thread(run)
    assert done.returncode == 2
    assert "CADTERM_TOKEN" in done.stderr


async def test_example_with_a_wrong_token_fails_with_the_reason(backend: Backend) -> None:
    done = await asyncio.to_thread(run_example, backend, backend.url, "wrong-token-0123456789")
    assert done.returncode == 1
    assert "StreamStopped" in done.stderr and "401" in done.stderr


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_docs_example_is_the_example_file() -> None:
    blocks = python_blocks(DOCS.read_text(encoding="utf-8"))
    example = EXAMPLE.read_text(encoding="utf-8")
    assert example in blocks, "docs/client.md must hold examples/dispatch_flow.py verbatim"


def test_every_python_snippet_in_the_docs_compiles() -> None:
    blocks = python_blocks(DOCS.read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    for block in blocks:
        # Snippets may use top-level `await`, as they would in `python -m asyncio`.
        compile(block, "docs/client.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


# --- the read side: cadterm.client.queries ---------------------------------------------------


async def test_queries_read_what_the_server_stored(backend: Backend) -> None:
    async with live(backend) as client:
        for callsign in ("Q1", "Q2", "Q3"):
            await book_on(client, callsign)
        reference = await create_incident(client)
        await client.execute(client.command("assign_unit", reference=reference, callsign="Q2"))
        async with Queries(backend.url, DISPATCHER) as queries:
            head = await queries.head()
            assert head == client.seq == 5
            await client.subscription.wait_for_seq(head, timeout=TIMEOUT)
            assert await queries.state() == client.state
            stored = await server_events(backend)
            events = await queries.events()
            assert [e.model_dump(mode="json") for e in events] == stored
            assert await queries.events(after=2, limit=2) == events[2:4]
            assert await queries.all_events(page=2) == events  # three pages of two
            assert await queries.all_events(after=4, page=2) == events[4:]
            units = await queries.units()
            assert sorted(u.callsign for u in units) == ["Q1", "Q2", "Q3"]
            assert {u.callsign: u for u in units} == client.units
            health = await queries.health()
            assert (health.status, health.seq) == ("ok", 5)
            assert health.subscribers >= 1


async def test_blocking_queries_answer_as_the_async_ones(backend: Backend) -> None:
    async with live(backend) as client:
        await book_on(client, "Q1")
        await create_incident(client)
        async with Queries(backend.url, DISPATCHER) as queries:
            state, events, units = (
                await queries.state(),
                await queries.events(),
                await queries.units(),
            )
    url = backend.url
    assert await asyncio.to_thread(fetch_state, url, DISPATCHER) == state
    assert await asyncio.to_thread(fetch_events, url, DISPATCHER, 0, 1) == events[:1]
    assert await asyncio.to_thread(fetch_units, url, DISPATCHER) == units
    assert await asyncio.to_thread(fetch_head, url) == state.seq == 2  # no token needed
    assert (await asyncio.to_thread(fetch_health, url)).seq == 2


async def test_a_refused_or_unanswered_query_raises_query_error(
    backend: Backend, refused_url: str
) -> None:
    async with Queries(backend.url, "wrong-token-0123456789") as queries:
        with pytest.raises(QueryError, match=r"GET /v1/state: HTTP 401: ") as refused:
            await queries.state()
        assert refused.value.status == 401
        assert isinstance(refused.value, ClientError)
        assert (await queries.health()).seq == 0  # health needs no token
    with pytest.raises(QueryError, match="HTTP 422") as invalid:
        await asyncio.to_thread(fetch_events, backend.url, DISPATCHER, -1)
    assert invalid.value.status == 422
    nowhere = refused_url
    with pytest.raises(QueryError, match="not reachable") as unreachable:
        await asyncio.to_thread(fetch_state, nowhere, DISPATCHER, timeout=2)
    assert unreachable.value.status is None
    async with Queries(nowhere, DISPATCHER, timeout=2) as queries:
        with pytest.raises(QueryError, match=f"backend at {nowhere} not reachable"):
            await queries.head()
