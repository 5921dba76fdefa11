"""A unit's history: read from a real server's event log, and shown by the console.

The server's answer is checked entry by entry against what was done to the unit (and
what was not: other units' events stay out), including the clearing that closing an
incident does without naming the unit, the `since` bound, pruned logs and refusals.
The console shows it for `uh AB12` and for Enter on the unit's row.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import make_config
from console_helpers import post_command
from test_console import book_on, create, open_console
from waiting import wait_for

from cadterm.protocol.answers import UnitHistory


def post(backend, kind: str, **fields: Any) -> dict:
    return post_command(backend, type=kind, **fields)


def history(backend, callsign: str, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{backend.url}/v1/history/units/{callsign}",
        params=params,
        headers=backend.headers(),
        timeout=10,
    )


def a_shift(backend) -> tuple[str, str]:
    """AB12 on two incidents (the first closed under it), CD34 busy alongside."""
    book_on(backend, "AB12")
    book_on(backend, "CD34")
    first = create(backend, "12 High Street")
    second = create(backend, "4 Mill Road", incident_type="DOMESTIC")
    post(backend, "assign_unit", reference=first, callsign="AB12")
    post(backend, "assign_unit", reference=first, callsign="CD34")
    post(backend, "set_unit_state", callsign="AB12", state=6)
    post(backend, "locate_unit", callsign="AB12", position={"lat": 53.81, "lon": -1.56})
    post(backend, "check_in_unit", callsign="AB12", note="all fine")
    post(backend, "add_note", reference=first, text="Driver breathalysed")
    post(backend, "close_incident", reference=first, closing_code="RESOLVED")
    post(backend, "assign_unit", reference=second, callsign="AB12")
    post(backend, "unassign_unit", reference=second, callsign="AB12", reason="Not needed")
    post(backend, "book_off", callsign="AB12")
    return first, second


def test_history_tells_states_positions_incidents_and_check_ins(backend) -> None:
    first, second = a_shift(backend)
    response = history(backend, "ab12")
    assert response.status_code == 200, response.text
    shift = UnitHistory.model_validate_json(response.content)
    assert shift.callsign == "AB12"
    assert [(e.kind, e.text) for e in shift.entries] == [
        ("booked_on", "booked on, available on patrol"),
        ("assigned", f"assigned to {first}"),
        ("state", "6 at scene"),
        ("located", "fix 53.81000,-1.56000"),
        ("checked_in", "checked in safe: all fine"),
        ("cleared", f"cleared: {first} closed RESOLVED"),
        ("assigned", f"assigned to {second}"),
        ("unassigned", f"stood down from {second}: Not needed"),
        ("booked_off", "booked off"),
    ]
    assert shift.incidents == [first, second]
    assert [e.reference for e in shift.entries[1:6]] == [first] * 5
    assert shift.entries[0].position is not None  # booked on with a fix
    assert shift.entries[3].position.lat == pytest.approx(53.81)
    assert shift.entries[2].state == 6 and shift.entries[-1].state == 11
    seqs = [e.seq for e in shift.entries]
    assert seqs == sorted(seqs)
    assert shift.complete_from is None and shift.truncated is False
    # CD34's own events are not in AB12's history, and AB12's are not in CD34's.
    other = UnitHistory.model_validate_json(history(backend, "CD34").content)
    assert [e.kind for e in other.entries] == ["booked_on", "assigned", "cleared"]


def test_history_starts_at_since(backend) -> None:
    a_shift(backend)
    shift = UnitHistory.model_validate_json(history(backend, "AB12").content)
    middle = shift.entries[4].at
    later = UnitHistory.model_validate_json(
        history(backend, "AB12", since=middle.isoformat()).content
    )
    assert [e.seq for e in later.entries] == [e.seq for e in shift.entries if e.at >= middle]
    future = (datetime.now(middle.tzinfo) + timedelta(hours=1)).isoformat()
    assert (
        UnitHistory.model_validate_json(history(backend, "AB12", since=future).content).entries
        == []
    )


def test_history_refuses_unknown_units_and_bad_times(backend) -> None:
    response = history(backend, "ZZ99")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_callsign"
    book_on(backend, "AB12")
    naive = history(backend, "AB12", since="2026-11-27T09:00:00")
    assert naive.status_code == 422 and naive.json()["code"] == "invalid_query"
    nonsense = history(backend, "AB12", since="yesterday")
    assert nonsense.status_code == 422
    anonymous = httpx.get(f"{backend.url}/v1/history/units/AB12", timeout=10)
    assert anonymous.status_code == 401


def test_history_says_where_a_pruned_log_starts(backend_factory) -> None:
    server = backend_factory(make_config(snapshot_every=5, retain_events=3))
    book_on(server, "AB12")
    for state in (6, 7, 6, 7, 6, 7, 6):
        post(server, "set_unit_state", callsign="AB12", state=state)

    def pruned() -> UnitHistory | None:
        shift = UnitHistory.model_validate_json(
            history(server, "AB12", since="2000-01-01T00:00:00Z").content
        )
        return shift if shift.complete_from is not None else None

    shift = wait_for(pruned, 10, "the snapshot that prunes the log")
    assert shift.entries and shift.entries[0].at >= shift.complete_from
    assert "booked_on" not in [e.kind for e in shift.entries]


# --- the console ----------------------------------------------------------------------------


async def test_uh_and_enter_on_a_unit_row_show_the_shift(backend, tmp_path) -> None:
    book_on(backend, "AB12")
    book_on(backend, "CD34")
    reference = create(backend, "12 High Street")
    post(backend, "assign_unit", reference=reference, callsign="AB12")
    post(backend, "set_unit_state", callsign="AB12", state=6)
    for lat in (53.801, 53.802, 53.803):
        post(backend, "locate_unit", callsign="AB12", position={"lat": lat, "lon": -1.55})
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: "AB12" in console.client.state.units)
        await console.line("uh ab12")
        await console.until(lambda: "Unit history AB12" in console.detail, what="the history")
        text = console.detail
        assert "(now 6 at scene on " + reference + ")" in text
        assert f"Incidents: {reference}" in text
        assert f"assigned to {reference}" in text and "6 at scene" in text
        assert "3 fixes, last 53.80300,-1.55000" in text  # a run of fixes is one line
        assert console.said == "unit history AB12: 6 entries, 1 incidents"

        await console.line("uh ZZ99")
        assert "unknown callsign" in await console.refused()

        console.app.action_focus_units()
        await console.until(lambda: console.app.units.cursor_key, what="a unit selected")
        console.app.units.move_cursor_to("CD34")
        await console.keys.press("enter")
        await console.until(lambda: "Unit history CD34" in console.detail, what="CD34's history")
        assert "booked on, available on patrol" in console.detail


async def test_uh_with_the_server_gone_shows_what_the_picture_knows(backend_factory, tmp_path):
    server = backend_factory()
    book_on(server, "AB12")
    reference = create(server, "12 High Street")
    post(server, "assign_unit", reference=reference, callsign="AB12")
    post(server, "set_unit_state", callsign="AB12", state=6)
    async with open_console(server.url, tmp_path) as console:
        await console.until(
            lambda: console.client.state.units["AB12"].state == 6, what="AB12 at scene"
        )
        backend_factory.stop(server)
        await console.line("uh AB12")
        await console.until(
            lambda: "from this console's picture" in console.detail, 15, what="the fallback"
        )
        assert "not reachable" in console.detail
        lines = console.detail.splitlines()
        assert any(line.endswith("AB12 assigned, en route") for line in lines)
        assert any(line.endswith("AB12 at scene") for line in lines)
        assert "unit history AB12: GET /v1/history/units/AB12" in console.said
