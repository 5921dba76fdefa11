"""Bounded waits for the tests: poll a condition until it holds, fail at once on an error.

    await until(lambda: client.seq >= head, 5, "the client to catch up")
    wait_for(lambda: "LIVE" in tmux.screen(), 20, "the console to go live")

The predicate is called until it returns something truthy, which is returned. A falsy
result (False, None, 0, empty) means "not yet". Anything the predicate raises fails the
wait at once, with a note saying what was awaited: an assertion inside a predicate is a
real failure, and a test that swallowed it would only report a timeout long after the
cause. A predicate that cannot be evaluated yet (no row on screen, no incident on the
server) says so by returning None rather than raising.

`what` names what is awaited in the failure message; it may be a function, called only
when the wait fails (for a message that shows the state at that moment). Without it the
message quotes the predicate's source line.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["WaitTimeout", "until", "wait_for"]

T = TypeVar("T")
Described = str | Callable[[], str]


class WaitTimeout(AssertionError):
    """The awaited condition did not hold in time."""


def _describe(what: Described, predicate: Callable[[], object]) -> str:
    if callable(what):
        return what()
    if what:
        return what
    try:
        return inspect.getsource(predicate).strip()
    except (OSError, TypeError):
        return repr(predicate)


def _timed_out(
    timeout: float, what: Described, predicate: Callable[[], object], last: object
) -> WaitTimeout:
    return WaitTimeout(
        f"timed out after {timeout:g} s waiting for {_describe(what, predicate)}"
        f" (last result {last!r})"
    )


def _check(predicate: Callable[[], T], what: Described) -> T:
    try:
        return predicate()
    except Exception as error:
        error.add_note(f"(raised while waiting for {_describe(what, predicate)})")
        raise


async def until(
    predicate: Callable[[], T],
    timeout: float,
    what: Described = "",
    *,
    step: float = 0.01,
    pause: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T:
    """Await `pause(step)` between calls of `predicate` until it is truthy; bounded by
    `timeout` seconds. `pause` lets a console test give the app its turn (`pilot.pause`)."""
    deadline = time.monotonic() + timeout
    while True:
        value = _check(predicate, what)
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, predicate, value)
        await pause(step)


def wait_for(
    predicate: Callable[[], T], timeout: float, what: Described = "", *, step: float = 0.05
) -> T:
    """`until` for code without an event loop: sleeps `step` between calls."""
    deadline = time.monotonic() + timeout
    while True:
        value = _check(predicate, what)
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(timeout, what, predicate, value)
        time.sleep(step)
