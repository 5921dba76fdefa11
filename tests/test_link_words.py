"""The link says why in plain words, and a stopped link starts again when asked."""

from __future__ import annotations

import errno
import socket

import pytest
from test_console import open_console

from cadterm.client import DispatchClient, LinkState
from cadterm.client.stream import outage


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), "nothing is answering"),
        (socket.gaierror(-2, "Name or service not known"), "cannot be found"),
        (TimeoutError(), "no answer from cad-a:8740 in time"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "the network cannot reach"),
        (ConnectionResetError(errno.ECONNRESET, "reset"), "was cut"),
    ],
)
def test_outages_are_said_in_plain_words_with_the_detail_after(error, words) -> None:
    said = outage(error, "http://cad-a:8740")
    assert words in said
    assert said.endswith("]")  # the technical error, for the log's reader


async def test_waiting_for_an_unreachable_backend_says_why(refused_url: str) -> None:
    async with DispatchClient([refused_url], "token", workstation="ws-test") as client:
        with pytest.raises(TimeoutError, match="not live after 1 s: nothing is answering"):
            await client.wait_live(timeout=1)


async def test_a_stopped_link_starts_again_on_ctrl_r(backend, tmp_path) -> None:
    async with open_console(backend.url, tmp_path) as console:
        client = console.client
        await client.subscription.stop()  # stands in for a stop the backend caused
        await console.until(lambda: client.status.state == LinkState.STOPPED, what="stopped")
        await console.shows("Ctrl+R tries again")
        await console.keys.press("ctrl+r")
        await console.until(lambda: client.status.live, timeout=10, what="live again")
        await console.keys.press("ctrl+r")
        assert console.said == "the link is live: nothing to do"
