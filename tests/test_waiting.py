"""The shared waiting helper: a falsy result waits, an error fails at once, time is bounded."""

from __future__ import annotations

import time

import pytest
from waiting import WaitTimeout, until, wait_for


async def test_until_returns_the_first_truthy_value() -> None:
    calls = iter([None, False, 0, "", "here"])
    assert await until(lambda: next(calls), 5, "the value") == "here"


async def test_an_error_in_the_predicate_fails_at_once_saying_what_was_awaited() -> None:
    calls = 0

    def broken() -> bool:
        nonlocal calls
        calls += 1
        raise AssertionError("the row shows grade 3")

    started = time.monotonic()
    with pytest.raises(AssertionError, match="grade 3") as raised:
        await until(broken, 30, "the grade on screen")
    assert calls == 1 and time.monotonic() - started < 1
    assert not isinstance(raised.value, WaitTimeout)
    assert "the grade on screen" in "".join(raised.value.__notes__)


async def test_a_timeout_names_what_was_awaited_and_the_last_result() -> None:
    with pytest.raises(
        WaitTimeout, match=r"after 0\.05 s waiting for the banner \(last result 0\)"
    ):
        await until(lambda: 0, 0.05, "the banner")


def test_without_a_name_the_message_quotes_the_predicate() -> None:
    with pytest.raises(WaitTimeout, match="lambda: None"):
        wait_for(lambda: None, 0.05, step=0.01)


def test_a_name_given_as_a_function_is_read_only_on_failure() -> None:
    seen: list[str] = []

    def describe() -> str:
        seen.append("asked")
        return "state at the end"

    assert wait_for(lambda: True, 1, describe)
    assert seen == []
    with pytest.raises(WaitTimeout, match="state at the end"):
        wait_for(lambda: False, 0.05, describe, step=0.01)
