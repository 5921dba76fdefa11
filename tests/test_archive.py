"""Archiving: closed incidents leave the live picture by an event, and stay findable.

First the archivist on a real `DispatchService` and SQLite file with a clock the test
moves (nothing is archived inside the window, everything closed before it is, and an
incident reopened while its copy is being written stays in the picture); then the fold
of `incidents_archived`; then a real server and a real client, where an incident closed
longer than the window leaves both pictures at the same seq and is still found by
reference, by closing time and by text.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENS, Backend, make_config
from waiting import until

from cadterm.client import DispatchClient
from cadterm.protocol.commands import COMMAND_ADAPTER
from cadterm.protocol.domain import Incident, IncidentStatus, Operator, Role
from cadterm.protocol.events import IncidentClosed, IncidentCreated, IncidentsArchived
from cadterm.protocol.fold import InconsistentEvent, apply, fold
from cadterm.server.archive import Archivist
from cadterm.server.config import Limits
from cadterm.server.service import DispatchService
from cadterm.server.store import SQLiteEventStore
from cadterm.server.store.history import IncidentHistory

TIMEOUT = 10.0
WINDOW = 3600.0
SUPERVISOR = Operator(id="sup1", name="Test supervisor", role=Role.SUPERVISOR)


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def command(kind: str, **fields: Any):
    return COMMAND_ADAPTER.validate_python(
        {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-test", **fields}
    )


async def do(service: DispatchService, kind: str, **fields: Any) -> str | None:
    """Execute a command as the supervisor; return the reference it touched, if any."""
    outcome = await service.execute(command(kind, **fields), SUPERVISOR)
    assert outcome.status == 200, outcome.body
    return json.loads(outcome.body)["event"].get("reference")


async def open_and_close(service: DispatchService, what: str) -> str:
    reference = await do(
        service,
        "create_incident",
        grade=3,
        incident_type="THEFT",
        location={"address": f"{what} Street"},
        description=f"{what} taken from a garden",
    )
    await do(service, "add_note", reference=reference, text=f"Caller says the {what} was red")
    await do(service, "close_incident", reference=reference, closing_code="RESOLVED")
    return reference


@pytest.fixture
async def archive_setup(tmp_path: Path):
    clock = Clock()
    store = SQLiteEventStore(tmp_path / "cad.db")
    service = DispatchService(store, make_config(), clock=clock)
    history = IncidentHistory(tmp_path / "cad.db")
    archivist = Archivist(service, history, window=WINDOW, interval=60)
    yield clock, service, history, archivist
    history.close()
    await service.close()


async def test_only_incidents_closed_before_the_window_are_archived(archive_setup) -> None:
    clock, service, history, archivist = archive_setup
    wheelbarrow = await open_and_close(service, "wheelbarrow")
    clock.advance(600)
    bicycle = await open_and_close(service, "bicycle")
    still_open = await do(
        service, "create_incident", grade=2, incident_type="RTC", location={"address": "A1"}
    )
    clock.advance(WINDOW - 601)  # the wheelbarrow closed 59:59 ago: not yet
    assert await archivist.archive_due() == 0
    assert wheelbarrow in service.state.incidents

    clock.advance(2)
    head = service.head
    assert await archivist.archive_due() == 1
    assert service.head == head + 1
    (event,) = service.store.read(head, 10)
    assert isinstance(event, IncidentsArchived) and event.references == [wheelbarrow]
    assert wheelbarrow not in service.state.incidents
    assert {bicycle, still_open} <= set(service.state.incidents)
    archived = Incident.model_validate_json(history.find(wheelbarrow))
    assert archived.status == IncidentStatus.CLOSED and archived.closing_code == "RESOLVED"

    clock.advance(600)
    assert await archivist.archive_due() == 1
    assert set(service.state.incidents) == {still_open}
    assert await archivist.archive_due() == 0  # nothing left to do, no event recorded
    assert service.head == head + 2

    # What the archivist kept is what the history searches (the queries themselves are
    # tested in test_history_contract.py): the chronology's words find the wheelbarrow.
    found = history.search("RED wheelbarrow")
    assert [Incident.model_validate_json(i).reference for i in found.incidents] == [wheelbarrow]

    # A restart rebuilds the same picture: the archive event is in the log.
    rebuilt = fold(service.store.events_after(0))
    assert rebuilt.model_dump() == service.state.model_dump()


class HeldHistory(IncidentHistory):
    """An `IncidentHistory` whose `keep` waits, after writing, until the test lets go."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written = threading.Event()
        self.release = threading.Event()

    def keep(self, rows) -> int:
        count = super().keep(rows)
        self.written.set()
        assert self.release.wait(TIMEOUT)
        return count


async def test_an_incident_reopened_while_it_is_archived_stays_in_the_picture(
    tmp_path: Path,
) -> None:
    clock = Clock()
    service = DispatchService(SQLiteEventStore(tmp_path / "cad.db"), make_config(), clock=clock)
    history = HeldHistory(tmp_path / "cad.db")
    try:
        archivist = Archivist(service, history, window=WINDOW, interval=60)
        reopened = await open_and_close(service, "ladder")
        archived = await open_and_close(service, "mower")
        clock.advance(WINDOW + 1)
        task = asyncio.create_task(archivist.archive_due())
        await asyncio.wait_for(asyncio.to_thread(history.written.wait), TIMEOUT)
        # The copies are on disk; before the event is recorded, the ladder is reopened.
        await do(service, "reopen_incident", reference=reopened, reason="Ladder found again")
        history.release.set()
        assert await asyncio.wait_for(task, TIMEOUT) == 1
        assert reopened in service.state.incidents and archived not in service.state.incidents
        assert service.state.incidents[reopened].status == IncidentStatus.OPEN
        # Its stale copy is gone from the history, so no query finds it closed.
        assert history.find(reopened) is None and history.find(archived) is not None
    finally:
        history.release.set()
        history.close()
        await service.close()


def test_the_fold_archives_only_closed_incidents_and_all_or_nothing() -> None:
    at = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    common = {"at": at, "operator": "disp1", "workstation": "ws-1"}
    created = [
        IncidentCreated(
            seq=n,
            reference=f"000{n}-27NOV26",
            grade=3,
            incident_type="THEFT",
            location={"address": "1 High Street"},
            source="999",
            **common,
        )
        for n in (1, 2)
    ]
    state = fold(
        [*created, IncidentClosed(seq=3, reference="0001-27NOV26", closing_code="NFA", **common)]
    )
    both = IncidentsArchived(
        seq=4,
        references=["0001-27NOV26", "0002-27NOV26"],
        operator="server",
        at=at,
        workstation="server",
    )
    before = state.model_copy(deep=True)
    with pytest.raises(InconsistentEvent, match="not closed"):
        apply(state, both)
    assert state == before  # the closed one was not dropped either
    one = IncidentsArchived(
        seq=4, references=["0001-27NOV26"], operator="server", at=at, workstation="server"
    )
    changes = apply(state, one)
    assert set(state.incidents) == {"0002-27NOV26"} and changes.incidents == {"0001-27NOV26"}


# --- end to end -----------------------------------------------------------------------------


async def test_server_and_client_drop_an_archived_incident_at_the_same_seq(
    backend_factory,
) -> None:
    limits = Limits(closed_window=0.5, archive_interval=0.05)
    backend: Backend = backend_factory(make_config(limits=limits))
    headers = {"Authorization": f"Bearer {TOKENS[Role.SUPERVISOR]}"}
    async with (
        httpx.AsyncClient(
            base_url=backend.url, headers=headers, timeout=TIMEOUT, trust_env=False
        ) as http,
        DispatchClient([backend.url], TOKENS[Role.DISPATCHER], workstation="ws-1") as client,
    ):
        await client.wait_live(TIMEOUT)

        async def post(kind: str, **fields: Any) -> dict:
            body = {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-1"}
            reply = await http.post("/v1/commands", json=body | fields)
            assert reply.status_code == 200, reply.text
            return reply.json()

        opened = await post(
            "create_incident",
            grade=2,
            incident_type="BURGLARY",
            location={"address": "7 Quarry Lane"},
            description="Shed broken into, strimmer taken",
        )
        reference = opened["event"]["reference"]
        kept = (
            await post(
                "create_incident", grade=1, incident_type="RTC", location={"address": "M62 J27"}
            )
        )["event"]["reference"]
        closed = await post("close_incident", reference=reference, closing_code="RESOLVED")
        await until(lambda: client.seq >= closed["seq"] and reference in client.incidents, TIMEOUT)
        closed_at = datetime.fromisoformat(closed["event"]["at"])

        await until(lambda: reference not in client.incidents, TIMEOUT)
        events = (await http.get("/v1/events", params={"after": closed["seq"]})).json()
        (archive,) = [e for e in events if e["type"] == "incidents_archived"]
        assert archive["references"] == [reference]
        assert client.seq >= archive["seq"]
        server = (await http.get("/v1/state")).json()
        assert server["seq"] >= archive["seq"]
        assert reference not in server["incidents"] and kept in server["incidents"]
        assert kept in client.incidents

        by_reference = await http.get(f"/v1/incidents/{reference.lower()}")
        assert by_reference.status_code == 200
        assert by_reference.json()["status"] == "closed"
        window = {
            "closed_from": (closed_at - timedelta(seconds=1)).isoformat(),
            "closed_to": (closed_at + timedelta(seconds=1)).isoformat(),
        }
        in_range = (await http.get("/v1/history/incidents", params=window)).json()
        assert [i["reference"] for i in in_range["incidents"]] == [reference]
        assert in_range["next_after"] is None
        by_text = (await http.get("/v1/history/search", params={"q": "strimmer"})).json()
        assert [i["reference"] for i in by_text["incidents"]] == [reference]
        refused = await http.get("/v1/history/search", params={"q": "x", "after": "nonsense"})
        assert refused.status_code == 422 and refused.json()["code"] == "invalid_query"
        missing = await http.get("/v1/incidents/9999-01JAN20")
        assert missing.status_code == 404
