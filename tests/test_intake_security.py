"""The intake API at the edge: its role, its token, its limits, and the public's text.

A real backend on loopback (the test config has an `intake` login, "web1"), real httpx
and websockets clients; every refusal is checked exactly, and then that nothing was
stored and the server still serves.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import Backend, make_config
from test_security import assert_problem, assert_still_serves, book_on, http, refused_handshake, ws

from cadterm.protocol.commands import MAX_REPORT_CHARACTERS
from cadterm.protocol.domain import Report, Role
from cadterm.server.config import Limits
from cadterm.tui.triage_queue import report_line, report_text

INTAKE = "/v1/intake/reports"
HOSTILE = "Bike stolen \x1b[2J\x1b]52;c;QUFBQQ==\x07 [@click=app.quit]x[/] [bold]now\u202e"


def report(**fields: Any) -> dict[str, Any]:
    body = {
        "type": "submit_report",
        "idempotency_key": uuid.uuid4().hex,
        "workstation": "website",
        "channel": "web_form",
        "text": "My bike was taken from outside the library",
    }
    return {**body, **fields}


async def head(backend: Backend) -> int:
    async with http(backend, Role.SUPERVISOR) as client:
        return (await client.get("/v1/state")).json()["seq"]


async def test_an_intake_login_puts_a_report_in_the_queue(backend: Backend) -> None:
    async with http(backend, Role.INTAKE) as website:
        reply = await website.post(INTAKE, json=report(website_reference="WEB-1"))
    assert reply.status_code == 200, reply.text
    event = reply.json()["event"]
    assert (event["type"], event["operator"], event["report"]) == (
        "report_received",
        "web1",
        f"R{event['seq']}",
    )
    async with http(backend, Role.DISPATCHER) as dispatcher:
        waiting = (await dispatcher.get("/v1/state")).json()["reports"]
    assert list(waiting) == [event["report"]]
    assert waiting[event["report"]]["website_reference"] == "WEB-1"


async def test_no_token_is_refused(backend: Backend) -> None:
    async with http(backend, role=None) as anonymous:
        assert_problem(await anonymous.post(INTAKE, json=report()), 401, "unauthenticated")
    async with http(backend, role=None, headers={"Authorization": "Bearer nope"}) as wrong:
        assert_problem(await wrong.post(INTAKE, json=report()), 401, "unauthenticated")
    assert await head(backend) == 0


@pytest.mark.parametrize("role", [Role.DISPATCHER, Role.SUPERVISOR, Role.READ_ONLY])
async def test_no_other_role_may_submit_a_report(backend: Backend, role: Role) -> None:
    async with http(backend, role) as client:
        body = assert_problem(await client.post(INTAKE, json=report()), 403, "forbidden")
        assert "submit_report" in body["detail"]
        # Nor as a command.
        command = await client.post("/v1/commands", json=report())
        assert_problem(command, 403, "forbidden")
    assert await head(backend) == 0


async def test_an_intake_login_may_do_nothing_else(backend: Backend) -> None:
    async with http(backend, Role.INTAKE) as website:
        assert (await website.get("/v1/whoami")).json()["role"] == "intake"
        for method, path, body in (
            ("POST", "/v1/commands", book_on()),
            ("POST", "/v1/commands", report()),
            ("GET", "/v1/state", None),
            ("GET", "/v1/incidents", None),
            ("GET", "/v1/events", None),
            ("GET", "/v1/units", None),
            ("GET", "/v1/history/search?q=bike", None),
        ):
            reply = await website.request(method, path, json=body)
            problem = assert_problem(reply, 403, "forbidden")
            assert "may only submit reports" in problem["detail"], path
    status, problem = await refused_handshake(ws(backend, Role.INTAKE))
    assert (status, problem["code"]) == (403, "forbidden")
    assert await head(backend) == 0
    await assert_still_serves(backend)


async def test_over_size_reports_are_refused(backend_factory) -> None:
    # A body limit above the report's own, so each bound is met on its own.
    backend = backend_factory(make_config(limits=Limits(max_body_bytes=256 * 1024)))
    async with http(backend, Role.INTAKE) as website:
        too_long = report(text="x" * (MAX_REPORT_CHARACTERS + 1))
        problem = assert_problem(await website.post(INTAKE, json=too_long), 422, "invalid_command")
        assert problem["field"] == "text"
        lines = [{"sender": "public", "text": "y" * 3000} for _ in range(7)]
        over_total = report(channel="chat", text="", transcript=lines)
        problem = assert_problem(
            await website.post(INTAKE, json=over_total), 422, "report_too_long"
        )
        assert f"at most {MAX_REPORT_CHARACTERS}" in problem["detail"]
        many = [{"sender": "public", "text": "hi"} for _ in range(201)]
        problem = assert_problem(
            await website.post(INTAKE, json=report(channel="chat", text="", transcript=many)),
            422,
            "invalid_command",
        )
        assert problem["field"] == "transcript"
        empty = report(text="   ")
        problem = assert_problem(await website.post(INTAKE, json=empty), 422, "report_incomplete")
        assert problem["field"] == "text"
        both = report(transcript=[{"sender": "public", "text": "hi"}])
        assert_problem(await website.post(INTAKE, json=both), 422, "report_incomplete")
        # Past the guard's body limit nothing is read at all.
        huge = report(text="z" * (300 * 1024))
        assert_problem(await website.post(INTAKE, json=huge), 413, "body_too_large")
    assert await head(backend) == 0
    await assert_still_serves(backend)


async def test_reports_over_the_intake_rate_get_429(backend_factory) -> None:
    limits = Limits(intake_rate=1, intake_burst=3)
    backend = backend_factory(make_config(limits=limits))
    async with http(backend, Role.INTAKE) as website:
        for _ in range(3):  # the burst
            assert (await website.post(INTAKE, json=report())).status_code == 200
        limited = None
        for _ in range(10):  # refills at 1/s: quick posts must run dry
            reply = await website.post(INTAKE, json=report())
            if reply.status_code == 429:
                limited = reply
                break
            assert reply.status_code == 200, reply.text
        assert limited is not None, "no 429 after the burst"
        problem = assert_problem(limited, 429, "rate_limited")
        assert "reports a second from web1" in problem["detail"]
        assert 1 <= int(limited.headers["Retry-After"]) <= 2
    # The website's budget is its own: dispatch commands are not held up by it.
    async with http(backend, Role.DISPATCHER) as dispatcher:
        assert (await dispatcher.post("/v1/commands", json=book_on())).status_code == 200


async def test_hostile_text_is_stored_as_sent_and_shown_neutralised(backend: Backend) -> None:
    transcript = [{"sender": "public\x1b[8m", "text": HOSTILE}]
    async with http(backend, Role.INTAKE) as website:
        web = await website.post(INTAKE, json=report(text=HOSTILE, location="[red]Hi\x1b[0m"))
        chat = await website.post(
            INTAKE, json=report(channel="chat", text="", transcript=transcript)
        )
    assert web.status_code == chat.status_code == 200, (web.text, chat.text)
    async with http(backend, Role.DISPATCHER) as dispatcher:
        waiting = (await dispatcher.get("/v1/state")).json()["reports"]
    stored = {r["channel"]: Report.model_validate(r) for r in waiting.values()}
    # Stored exactly as the website sent it.
    assert stored["web_form"].text == HOSTILE
    assert stored["web_form"].location == "[red]Hi\x1b[0m"
    assert stored["chat"].transcript[0].text == HOSTILE
    assert stored["chat"].transcript[0].sender == "public\x1b[8m"
    # Shown with every control character as a visible stand-in and markup as typed.
    now = datetime.now(UTC)
    for shown in [report_text(r, now) for r in stored.values()] + [
        report_line(r, now, 160) for r in stored.values()
    ]:
        assert not any(ord(ch) < 0x20 and ch != "\n" for ch in shown.plain), shown.plain
        assert "\u202e" not in shown.plain and "\x9b" not in shown.plain
        assert "\u241b[2J" in shown.plain  # ESC [2J, drawn, not obeyed
        assert all(span.style in ("bold", "") for span in shown.spans)  # no markup styles
    full = report_text(stored["web_form"], now).plain
    assert "[@click=app.quit]x[/] [bold]now" in full
    assert "\u241b]52;c;QUFBQQ==\u2407" in full
    assert "[red]Hi\u241b[0m" in full


async def test_a_report_is_triaged_once(backend: Backend) -> None:
    async with http(backend, Role.INTAKE) as website:
        first = (await website.post(INTAKE, json=report())).json()["event"]["report"]
    triage = {
        "type": "triage_report",
        "workstation": "ws-test",
        "report": first,
        "outcome": "created_incident",
        "grade": 3,
        "incident_type": "THEFT",
        "location": {"address": "Central Library"},
    }
    async with http(backend, Role.DISPATCHER) as one, http(backend, Role.SUPERVISOR) as two:
        answers = await asyncio.gather(
            one.post("/v1/commands", json={**triage, "idempotency_key": uuid.uuid4().hex}),
            two.post(
                "/v1/commands",
                json={
                    **triage,
                    "idempotency_key": uuid.uuid4().hex,
                    "outcome": "closed",
                    "reason": "dealt with",
                    "grade": None,
                    "incident_type": None,
                    "location": None,
                },
            ),
        )
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200, 404], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 404)
        assert_problem(loser, 404, "unknown_report")
        state = (await one.get("/v1/state")).json()
    assert state["reports"] == {}
    winner = next(a for a in answers if a.status_code == 200).json()["event"]
    if winner["outcome"] == "created_incident":
        incident = state["incidents"][winner["reference"]]
        assert incident["source"] == "online"
        assert incident["description"] == "My bike was taken from outside the library"
        assert f"from report {first}" in incident["chronology"][0]["text"]
    else:
        assert state["incidents"] == {}


def test_openapi_describes_the_intake_api(backend: Backend) -> None:
    spec = httpx.get(f"{backend.url}/openapi.json", trust_env=False).json()
    operation = spec["paths"][INTAKE]["post"]
    assert operation["operationId"] == "submit_report"
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body["$ref"].endswith("/SubmitReport")
    assert {"200", "401", "403", "413", "422", "429", "503"} <= set(operation["responses"])
    schema = spec["components"]["schemas"]["SubmitReport"]
    assert schema["required"][0] == "type"
    assert {"channel", "text", "transcript", "reporter", "location"} <= set(schema["properties"])


@pytest.mark.parametrize("at", [0, 1764234000, "2026-11-27T09:00:00", "2026-11-27", True], ids=repr)
async def test_a_chat_line_time_must_have_an_offset(backend, at) -> None:
    """A chat line's time is held to the door's rule for every time: RFC 3339 with an
    offset, never a number (which pydantic alone would read as seconds since 1970)."""
    async with http(backend, Role.INTAKE) as website:
        chat = report(
            channel="chat", text="", transcript=[{"sender": "public", "at": at, "text": "hi"}]
        )
        problem = assert_problem(await website.post(INTAKE, json=chat), 422, "invalid_command")
        assert problem["field"] == "transcript.0.at"
        assert "offset" in problem["detail"]
    assert await head(backend) == 0
    await assert_still_serves(backend)


async def test_a_chat_line_time_with_an_offset_is_kept_in_utc(backend) -> None:
    line = {"sender": "public", "at": "2026-11-27T10:00:00+01:00", "text": "hi"}
    async with http(backend, Role.INTAKE) as website:
        reply = await website.post(INTAKE, json=report(channel="chat", text="", transcript=[line]))
        assert reply.status_code == 200, reply.text
        assert reply.json()["event"]["transcript"][0]["at"] == "2026-11-27T09:00:00Z"
