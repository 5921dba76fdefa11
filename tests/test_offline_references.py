"""A console holds reserved references while live and uses them for incidents opened offline.

Real backend, real client: the block is topped up while live; an incident opened with
no backend gets its final reference at once, keeps it when CAD returns, and no other
incident (offline or online, here or on another console) is given it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import Backend
from test_journal import DISPATCHER, FAST, TIMEOUT
from waiting import until

from cadterm.client import DispatchClient
from cadterm.protocol.drafts import draft


def new_incident(address: str):
    return draft("create_incident", grade=1, incident_type="RTC", location={"address": address})


def console(backend: Backend, tmp_path: Path) -> DispatchClient:
    return DispatchClient(
        [backend.url],
        DISPATCHER,
        workstation="ws-test",
        journal_path=tmp_path / "journal.db",
        picture_path=tmp_path / "picture.json",
        backoff=FAST,
        reserve=4,
    )


async def test_an_incident_opened_offline_keeps_its_reserved_reference(
    backend: Backend, backend_factory, tmp_path: Path
) -> None:
    async with console(backend, tmp_path) as client:
        await client.wait_live(TIMEOUT)
        await until(lambda: len(client.reserved_references) == 4, timeout=TIMEOUT)
        block = list(client.reserved_references)
    backend_factory.stop(backend)

    # CAD is down: a console started now still holds its block (from its picture on
    # disk) and gives the next reference to the incident opened.
    offline = console(backend, tmp_path)
    async with offline:
        reference = offline.claim_reserved_reference()
        assert reference == block[0]
        command = new_incident("14 Gasworks Lane").model_copy(update={"reference": reference})
        issued = await offline.issue(command)
        assert issued.queued
    # Restarted, still down: the claimed reference is not given out again.
    again = console(backend, tmp_path)
    async with again:
        assert again.claim_reserved_reference() == block[1]

    backend.start()
    async with console(backend, tmp_path) as back:
        await back.wait_live(TIMEOUT)
        await until(lambda: reference in back.incidents, timeout=TIMEOUT)
        assert back.incidents[reference].location.address == "14 Gasworks Lane"
        # An incident opened online now gets a fresh number, never one of the block.
        result = await back.execute(new_incident("2 High Street"))
        assert result.event.reference not in block
        # Topped up again once half the block was gone.
        await until(lambda: len(back.reserved_references) >= 2, timeout=TIMEOUT)


class CountingTransport(httpx.AsyncHTTPTransport):
    """The stock transport, counting the commands it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.commands = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/commands":
            self.commands += 1
        return await super().handle_async_request(request)


async def test_a_refused_reservation_is_not_asked_again_for_every_event(
    backend: Backend, tmp_path: Path
) -> None:
    # A desk the server does not know is refused its references. The console then
    # waits before asking again, however many events arrive meanwhile.
    transport = CountingTransport()
    unknown = DispatchClient(
        [backend.url],
        DISPATCHER,
        workstation="ws-unregistered",
        transport=transport,
        backoff=FAST,
        reserve=4,
    )
    async with unknown, console(backend, tmp_path) as other:
        await unknown.wait_live(TIMEOUT)
        await until(lambda: transport.commands >= 1, timeout=TIMEOUT)
        await other.wait_live(TIMEOUT)
        for n in range(20):
            result = await other.execute(new_incident(f"{n + 1} Gasworks Lane"))
        await until(lambda: unknown.store.seq >= result.seq, timeout=TIMEOUT)
        assert transport.commands == 1
        assert unknown.reserved_references == []
