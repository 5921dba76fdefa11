"""A backend that goes silent (hung, or its link black-holed) is left for the next one.

A live link that breaks resumes on the same backend first, which suits a blip; but a
backend that stopped talking would only hold the handshake of that retry until its
timeout. Silence, and a server going away or restarting, move the console on.
"""

from __future__ import annotations

from conftest import Backend
from faultproxy import FaultProxy
from test_journal import DISPATCHER, FAST, TIMEOUT
from waiting import until

from cadterm.client import DispatchClient
from cadterm.client.link import LinkRules, Resume
from cadterm.client.store import LocalStore
from cadterm.client.stream import LinkState
from cadterm.protocol.frames import CloseCode


def test_silence_and_a_server_leaving_say_try_elsewhere() -> None:
    rules = LinkRules(LocalStore(), silence_after=1.0)
    (silent,) = rules.tick(rules.deadline() + 0.1)
    assert isinstance(silent, Resume) and silent.elsewhere
    for code in (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART):
        (leaving,) = rules.closed(code, "bye")
        assert isinstance(leaving, Resume) and leaving.elsewhere
    (behind,) = rules.closed(CloseCode.RESUME, "fell behind")
    assert isinstance(behind, Resume) and not behind.elsewhere


async def test_a_silent_backend_is_left_for_the_next(backend: Backend) -> None:
    async with (
        FaultProxy("127.0.0.1", backend.port) as hung,
        FaultProxy("127.0.0.1", backend.port) as healthy,
    ):
        client = DispatchClient(
            [hung.url, healthy.url], DISPATCHER, backoff=FAST, silence_after=1.0
        )
        # A handshake with the silent one would wait this long: longer than the test.
        client.subscription.open_timeout = 120.0
        async with client:
            await client.wait_live(TIMEOUT)
            assert client.status.url.startswith(hung.url.replace("http", "ws"))
            tried = hung.accepted
            hung.blackhole(True)
            await until(
                lambda: (
                    client.status.state == LinkState.LIVE
                    and client.status.url.startswith(healthy.url.replace("http", "ws"))
                ),
                timeout=TIMEOUT,
                what="live again on the other backend",
            )
            # It went straight to the other one: no handshake was tried on the silent
            # backend, which would only have waited out its timeout.
            assert hung.accepted == tried
