"""Reopening an incident closed so long ago that it was archived out of the picture.

The `incident_reopened` event carries the incident as the history held it, so every
node and console puts it back at the same seq. First the fold's rules for that; then a
real `DispatchService` over SQLite and over PostgreSQL (skipped, saying why, when no
PostgreSQL answers) with the history beside it; then a real server and a real client.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENS, Backend, make_config
from pg import pg_url  # noqa: F401
from test_terminal import Tmux, tmux, wait_for  # noqa: F401
from waiting import until

from cadterm.client import DispatchClient
from cadterm.protocol.commands import COMMAND_ADAPTER
from cadterm.protocol.domain import Incident, IncidentStatus, Operator, Role
from cadterm.protocol.events import (
    EVENT_ADAPTER,
    IncidentClosed,
    IncidentCreated,
    IncidentReopened,
    IncidentsArchived,
)
from cadterm.protocol.fold import InconsistentEvent, apply, fold
from cadterm.server.archive import Archivist
from cadterm.server.config import Limits
from cadterm.server.service import DispatchService
from cadterm.server.store.location import DbLocation, open_history, open_store
from cadterm.tui.incident_queue import short_reference

TIMEOUT = 10.0
WINDOW = 3600.0
SUPERVISOR = Operator(id="sup1", name="Test supervisor", role=Role.SUPERVISOR)
AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
COMMON = {"at": AT, "operator": "disp1", "workstation": "ws-1"}
REF = "0001-27NOV26"


# --- the fold -------------------------------------------------------------------------------


def archived_picture():
    """A picture whose one incident was closed and archived; and that incident."""
    created = IncidentCreated(
        seq=1,
        reference=REF,
        grade=3,
        incident_type="THEFT",
        location={"address": "1 High Street"},
        source="999",
        **COMMON,
    )
    closed = IncidentClosed(seq=2, reference=REF, closing_code="NFA", **COMMON)
    before = fold([created, closed])
    incident = before.incidents[REF].model_copy(deep=True)
    apply(before, IncidentsArchived(seq=3, references=[REF], **COMMON))
    return before, incident


def test_the_fold_puts_an_archived_incident_back_and_reopens_it() -> None:
    state, incident = archived_picture()
    event = IncidentReopened(
        seq=4, reference=REF, reason="Caller rang back", archived=incident, **COMMON
    )
    # As every console receives it: through JSON and strict validation.
    event = EVENT_ADAPTER.validate_json(event.model_dump_json())
    changes = apply(state, event)
    back = state.incidents[REF]
    assert back.status == IncidentStatus.OPEN and back.closing_code is None
    assert back.chronology[-1].text == "Reopened: Caller rang back"
    assert changes.incidents == {REF}
    # The picture's incident is its own: changing it leaves the event's copy as it was.
    assert event.archived is not None and event.archived.status == IncidentStatus.CLOSED


def test_the_fold_refuses_to_restore_an_incident_it_holds_or_one_not_closed() -> None:
    state, incident = archived_picture()
    apply(state, IncidentReopened(seq=4, reference=REF, reason="back", archived=incident, **COMMON))
    before = state.model_copy(deep=True)
    again = IncidentReopened(seq=5, reference=REF, reason="twice", archived=incident, **COMMON)
    with pytest.raises(InconsistentEvent, match="is in the picture"):
        apply(state, again)
    assert state == before
    fresh, _ = archived_picture()
    open_one = incident.model_copy(update={"status": IncidentStatus.OPEN})
    with pytest.raises(InconsistentEvent, match="not closed incident"):
        apply(
            fresh, IncidentReopened(seq=4, reference=REF, reason="x", archived=open_one, **COMMON)
        )
    other = incident.model_copy(update={"reference": "0002-27NOV26"})
    with pytest.raises(InconsistentEvent, match="not closed incident"):
        apply(fresh, IncidentReopened(seq=4, reference=REF, reason="x", archived=other, **COMMON))
    assert REF not in fresh.incidents


# --- the service, on SQLite and on PostgreSQL --------------------------------------------


class Clock:
    """The server's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = AT

    def __call__(self) -> datetime:
        return self.now


def command(kind: str, **fields: Any):
    return COMMAND_ADAPTER.validate_python(
        {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-test", **fields}
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple]:
    if request.param == "sqlite":
        location = DbLocation(path=tmp_path / "cad.db")
    else:
        location = DbLocation(url=request.getfixturevalue("pg_url"))
    clock = Clock()
    store = open_store(location, retain_events=10_000)
    history = open_history(store)
    service = DispatchService(store, make_config(), clock=clock)
    service.archive = history  # as the app wires it (server.history_routes)
    try:
        yield clock, service, history, location
    finally:
        await service.close()
        history.close()


async def test_reopening_an_archived_incident_brings_it_back_at_one_seq(served) -> None:
    clock, service, history, location = served

    async def do(kind: str, **fields: Any) -> dict:
        outcome = await service.execute(command(kind, **fields), SUPERVISOR)
        assert outcome.status == 200, outcome.body
        return json.loads(outcome.body)

    created = await do(
        "create_incident",
        grade=3,
        incident_type="THEFT",
        location={"address": "9 Orchard Way"},
        description="Ladder taken from a garden",
    )
    reference = created["event"]["reference"]
    await do("add_note", reference=reference, text="Caller says the ladder was blue")
    await do("close_incident", reference=reference, closing_code="RESOLVED")
    clock.now += timedelta(seconds=WINDOW + 1)
    archivist = Archivist(service, history, window=WINDOW, interval=60)
    assert await archivist.archive_due() == 1
    assert reference not in service.state.incidents
    kept = Incident.model_validate_json(history.find(reference))

    reopened = await do("reopen_incident", reference=reference.lower(), reason="Ladder seen")
    event = reopened["event"]
    assert event["type"] == "incident_reopened" and event["reference"] == reference
    assert Incident.model_validate(event["archived"]) == kept
    incident = service.state.incidents[reference]
    assert incident.status == IncidentStatus.OPEN
    assert [entry.text for entry in incident.chronology][-2:] == [
        "Closed RESOLVED",
        "Reopened: Ladder seen",
    ]
    assert incident.version == kept.version + 1
    # Back in the picture, so no longer in the history's queries.
    assert history.find(reference) is None
    assert history.search("ladder").incidents == []
    # A second reopen of it is an ordinary refusal: it is open now.
    refused = await service.execute(
        command("reopen_incident", reference=reference, reason="again"), SUPERVISOR
    )
    assert refused.status == 409 and "not closed" in refused.body
    # A restart (or another node) folding the log gets the same picture.
    with open_store(location, retain_events=10_000) as reread:
        rebuilt = fold(reread.events_after(0))
    assert rebuilt.model_dump() == service.state.model_dump()


async def test_a_reference_in_neither_place_is_still_unknown(served) -> None:
    _clock, service, _history, _location = served
    outcome = await service.execute(
        command("reopen_incident", reference="0042-01JAN20", reason="never was"), SUPERVISOR
    )
    assert outcome.status == 404 and "no incident" in outcome.body


# --- end to end -----------------------------------------------------------------------------


async def test_server_and_client_take_a_reopened_archived_incident_back_at_the_same_seq(
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

        async def post(kind: str, **fields: Any) -> httpx.Response:
            body = {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-1"}
            return await http.post("/v1/commands", json=body | fields)

        opened = await post(
            "create_incident", grade=2, incident_type="BURGLARY", location={"address": "7 Mill"}
        )
        reference = opened.json()["event"]["reference"]
        await post("close_incident", reference=reference, closing_code="RESOLVED")
        await until(lambda: reference in client.incidents, TIMEOUT)
        await until(lambda: reference not in client.incidents, TIMEOUT)  # archived

        reopened = await post("reopen_incident", reference=reference, reason="Shed hit again")
        assert reopened.status_code == 200, reopened.text
        seq = reopened.json()["seq"]
        await until(lambda: client.seq >= seq, TIMEOUT)
        assert client.incidents[reference].status == IncidentStatus.OPEN
        server = (await http.get("/v1/state")).json()
        assert server["incidents"][reference] == client.incidents[reference].model_dump(mode="json")
        assert (await http.get(f"/v1/incidents/{reference}")).json()["status"] == "open"
        found = (await http.get("/v1/history/search", params={"q": "Mill"})).json()
        assert found["incidents"] == []


# --- from the console's command line ----------------------------------------------------


def test_reopen_on_the_command_line_brings_an_archived_incident_back_to_the_queue(
    backend_factory,
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    limits = Limits(closed_window=0.5, archive_interval=0.05)
    backend: Backend = backend_factory(make_config(limits=limits))
    headers = {"Authorization": f"Bearer {TOKENS[Role.SUPERVISOR]}"}

    def post(kind: str, **fields: Any) -> dict:
        body = {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-test"}
        reply = httpx.post(
            f"{backend.url}/v1/commands", json=body | fields, headers=headers, timeout=TIMEOUT
        )
        assert reply.status_code == 200, reply.text
        return reply.json()

    reference = post(
        "create_incident", grade=3, incident_type="THEFT", location={"address": "5 Quarry Lane"}
    )["event"]["reference"]
    post("close_incident", reference=reference, closing_code="RESOLVED")
    wait_for(
        lambda: (
            reference
            not in httpx.get(f"{backend.url}/v1/state", headers=headers).json()["incidents"]
        ),
        10,
        "the incident to be archived",
    )
    env = f"CADTERM_DATA_DIR={tmp_path / 'data'} CADTERM_CONFIG_DIR={tmp_path / 'conf'}"
    cadterm = Path(sys.executable).parent / "cadterm"
    tmux.start(
        f"env {env} TERM=xterm-256color {cadterm} console {backend.url}"
        f" --token {TOKENS[Role.SUPERVISOR]} --workstation ws-test"
    )
    wait_for(lambda: "| LIVE |" in tmux.screen(), 20, "the console to go live")
    assert "5 Quarry Lane" not in tmux.screen()  # archived: not on the queue

    tmux.type(f"ro {reference} caller rang back")
    wait_for(lambda: f"done: reopen {reference}" in tmux.screen(), 10, "the reopen")
    wait_for(lambda: "5 Quarry Lane" in tmux.screen(), 10, "the incident back on the queue")
    (row,) = [line for line in tmux.screen().splitlines() if "5 Quarry Lane" in line]
    assert short_reference(reference) in row and "OPEN" in row

    tmux.key("C-q")
    wait_for(lambda: not tmux.alive(), 10, "the console to quit")
