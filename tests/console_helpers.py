"""Helpers for the console tests: bounded waits, typing, keystroke counts, the server's view.

Every wait is bounded (`until`): a console test that hangs tells nobody anything. Typing
goes through `Keys`, which presses one key at a time (type-ahead, as a dispatcher types)
and counts every key, so the tests can say how many keystrokes a flow takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import waiting
from conftest import TOKENS, Backend
from textual.pilot import Pilot
from textual.widgets import Static

from cadterm.protocol.domain import Role

__all__ = [
    "Keys",
    "body_text",
    "feedback",
    "post_command",
    "screen_line",
    "screen_text",
    "server_incident",
    "server_state",
    "server_unit",
    "until",
]

_SPECIAL = {" ": "space"}


async def until(
    pilot: Pilot,
    predicate: Callable[[], Any],
    timeout: float = 5.0,
    step: float = 0.02,
    what: str = "",
) -> Any:
    """Let the app run in small steps until `predicate()` is truthy; fail after `timeout`.

    Returns the predicate's value. An exception from the predicate fails at once (see
    `waiting`): a predicate over something not there yet returns None instead.
    """
    return await waiting.until(
        predicate, timeout, what or repr(predicate), step=step, pause=pilot.pause
    )


class Keys:
    """Presses keys in a running app, one at a time, and counts them."""

    def __init__(self, pilot: Pilot) -> None:
        self.pilot = pilot
        self.count = 0

    async def press(self, *keys: str) -> None:
        """Press named keys (``"tab"``, ``"enter"``, ``"f4"``)."""
        for key in keys:
            await self.pilot.press(key)
            self.count += 1

    async def type(self, text: str) -> None:
        """Type `text` character by character."""
        for char in text:
            await self.pilot.press(_SPECIAL.get(char, char))
            self.count += 1

    async def line(self, text: str) -> None:
        """Type a whole command line and press Enter."""
        await self.type(text)
        await self.press("enter")

    def take(self) -> int:
        """Keys pressed since the last `take` (and start counting again)."""
        count, self.count = self.count, 0
        return count


def feedback(app) -> Static:
    """The line under the command field."""
    return app.query_one("#command-feedback", Static)


def body_text(widget: Static) -> str:
    """The plain text a `Static` shows (what the terminal would show, without styles)."""
    return str(widget.render())


# --- the server's own view ---------------------------------------------------------------


def _headers(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def server_state(backend: Backend) -> dict[str, Any]:
    """``GET /v1/state`` as JSON."""
    response = httpx.get(f"{backend.url}/v1/state", headers=_headers(Role.DISPATCHER), timeout=5)
    response.raise_for_status()
    return response.json()


def server_incident(backend: Backend, reference: str) -> dict[str, Any]:
    """One incident as the server holds it (KeyError if it has none)."""
    return server_state(backend)["incidents"][reference]


def server_unit(backend: Backend, callsign: str) -> dict[str, Any]:
    """One unit as the server holds it (KeyError if it has none)."""
    return server_state(backend)["units"][callsign]


_keys = iter(range(10**9))


def post_command(backend: Backend, role: Role = Role.DISPATCHER, **fields: Any) -> dict:
    """Send one command over HTTP, as another console would; returns the result JSON."""
    body = {"idempotency_key": f"helper-{time.time_ns()}-{next(_keys)}", "workstation": "other"}
    body.update(fields)
    response = httpx.post(
        f"{backend.url}/v1/commands", json=body, headers=_headers(role), timeout=5
    )
    assert response.status_code == 200, response.text
    return response.json()


def screen_text(app) -> str:
    """What the terminal shows right now, one line per screen row, without styles."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


def screen_line(app, needle: str) -> str | None:
    """The first screen row holding `needle`, if any."""
    return next((line for line in screen_text(app).splitlines() if needle in line), None)
