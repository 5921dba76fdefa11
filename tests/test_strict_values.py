"""Strict at the door: every value a reader cannot use is refused before it is stored.

Each class of ill-formed value is sent to a real server on a loopback port. Each gets its
documented typed error naming the field, the head seq does not move, and the server
still serves afterwards.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from conftest import Backend
from test_security import TIMEOUT, assert_problem, assert_still_serves, http, subscribed, ws

from cadterm.protocol.commands import COMMAND_TYPES
from cadterm.protocol.domain import Role
from cadterm.protocol.frames import CloseCode

WORKSTATION = "ws-test"
#: A time within the week the server takes fixes and back-entries from, on whole seconds.
HOUR_AGO = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)


def command(kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "idempotency_key": uuid.uuid4().hex,
        "workstation": WORKSTATION,
        **fields,
    }


async def head(client: httpx.AsyncClient) -> int:
    return (await client.get("/v1/health")).json()["seq"]


async def refused(backend: Backend, body: dict[str, Any], field: str) -> dict[str, Any]:
    """Post `body`; assert a 422 naming `field`, with the log unchanged."""
    async with http(backend) as client:
        before = await head(client)
        reply = await client.post("/v1/commands", json=body)
        problem = assert_problem(reply, 422, "invalid_command")
        assert problem["field"] == field, problem
        assert await head(client) == before
    await assert_still_serves(backend)
    return problem


async def book_on(backend: Backend, callsign: str = "AB12") -> None:
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands", json=command("book_on", callsign=callsign, unit_type="patrol_car")
        )
        assert reply.status_code == 200, reply.text


# --- times -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixed_at", "says"),
    [
        ("2026-11-27T09:18:58", "offset"),  # the value that took every console down
        ("2026-11-27", "RFC 3339"),
        ("2026-11-27 09:18:58Z", "RFC 3339"),
        ("1764235138", "RFC 3339"),
        (1764235138, "not a number"),
        (1764235138.5, "not a number"),
        (True, "not a number"),
        ("yesterday", "RFC 3339"),
    ],
)
async def test_times_without_an_offset_or_as_numbers_are_refused(
    backend: Backend, fixed_at: object, says: str
) -> None:
    await book_on(backend)
    body = command(
        "locate_unit", callsign="AB12", position={"lat": 52.03, "lon": -1.15}, fixed_at=fixed_at
    )
    problem = await refused(backend, body, "fixed_at")
    assert says in problem["detail"]


async def test_a_time_with_an_offset_is_stored_in_utc(backend: Backend) -> None:
    await book_on(backend)
    body = command(
        "locate_unit",
        callsign="AB12",
        position={"lat": 52.03, "lon": -1.15},
        fixed_at=HOUR_AGO.astimezone(timezone(timedelta(hours=1))).isoformat(),
    )
    utc = f"{HOUR_AGO:%Y-%m-%dT%H:%M:%S}Z"
    async with http(backend) as client:
        reply = await client.post("/v1/commands", json=body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["event"]["fixed_at"] == utc
        unit = (await client.get("/v1/units/AB12")).json()
        assert unit["position_at"] == utc


@pytest.mark.parametrize(
    "value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "9999-12-31T23:30:00-00:45"]
)
@pytest.mark.parametrize(
    ("kind", "fields", "field"),
    [
        ("locate_unit", {"callsign": "AB12", "position": {"lat": 52, "lon": -1}}, "fixed_at"),
        ("set_unit_state", {"callsign": "AB12", "state": 6}, "taken_at"),
    ],
)
async def test_a_time_with_no_utc_equivalent_is_refused_not_a_500(
    backend: Backend, value: str, kind: str, fields: dict[str, Any], field: str
) -> None:
    """Shifting 0001-01-01T00:00+01:00 to UTC leaves the calendar: a 422, never a 500."""
    await book_on(backend)
    problem = await refused(backend, command(kind, **fields, **{field: value}), field)
    assert "years 1-9999" in problem["detail"]


@pytest.mark.parametrize(
    ("fixed_at", "says"),
    [(timedelta(minutes=5), "in the future"), (-timedelta(days=8), "more than 7 days ago")],
)
async def test_a_fix_from_the_future_or_long_ago_is_refused(
    backend: Backend, fixed_at: timedelta, says: str
) -> None:
    """A fix ahead of the server would hold off the unit's officer-safety check."""
    await book_on(backend)
    when = (datetime.now(UTC) + fixed_at).isoformat()
    body = command("locate_unit", callsign="AB12", position={"lat": 52, "lon": -1}, fixed_at=when)
    async with http(backend) as client:
        problem = assert_problem(
            await client.post("/v1/commands", json=body), 422, "fix_time_out_of_range"
        )
        assert problem["field"] == "fixed_at" and says in problem["detail"]


async def test_a_fix_older_than_the_one_held_never_moves_the_unit_back(backend: Backend) -> None:
    await book_on(backend)
    now = datetime.now(UTC)
    here, there = {"lat": 52.0, "lon": -1.0}, {"lat": 53.0, "lon": -2.0}
    newer = command("locate_unit", callsign="AB12", position=here, fixed_at=now.isoformat())
    older = command(
        "locate_unit",
        callsign="AB12",
        position=there,
        fixed_at=(now - timedelta(minutes=2)).isoformat(),
    )
    async with http(backend) as client:
        assert (await client.post("/v1/commands", json=newer)).status_code == 200
        problem = assert_problem(await client.post("/v1/commands", json=older), 409, "stale_fix")
        assert problem["field"] == "fixed_at"
        assert (await client.get("/v1/units/AB12")).json()["position"] == here


# --- numbers -----------------------------------------------------------------------------


@pytest.mark.parametrize("grade", [True, "1", 1.5, "\u0661", 2.0])
async def test_a_grade_must_be_a_json_integer(backend: Backend, grade: object) -> None:
    """A grade is a choice: `2.0` means a client computed it, so it is refused too."""
    body = command(
        "create_incident", grade=grade, incident_type="RTC", location={"address": "1 High St"}
    )
    await refused(backend, body, "grade")


async def test_a_whole_number_written_with_a_point_is_a_count(backend: Backend) -> None:
    """JSON has one number type and JSON Schema counts 3.0 as an integer: so does cadterm,
    for counts (`expected_version`, `since`)."""
    await book_on(backend)
    async with http(backend) as client:
        version = (await client.get("/v1/units/AB12")).json()["version"]
        body = command("set_unit_state", callsign="AB12", state=6, expected_version=float(version))
        reply = await client.post("/v1/commands", json=body)
        assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("state", ["\u0666", "\uff16", True, 6.5, "66", 6.0, 0.0])
async def test_a_unit_state_is_an_ascii_number_or_a_word(backend: Backend, state: object) -> None:
    await book_on(backend)
    await refused(backend, command("set_unit_state", callsign="AB12", state=state), "state")


async def test_a_number_too_small_for_a_float_is_not_state_zero(backend: Backend) -> None:
    """`1e-400` reads as 0.0: it must never mean state 0, an emergency."""
    await book_on(backend)
    body = json.dumps(command("set_unit_state", callsign="AB12", state=6)).replace(
        '"state": 6', '"state": 1e-400'
    )
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands", content=body, headers={"Content-Type": "application/json"}
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["field"] == "state"
        unit = (await client.get("/v1/units/AB12")).json()
        assert unit["state"] != 0


@pytest.mark.parametrize("lat", [True, "52.0", None])
async def test_coordinates_are_json_numbers(backend: Backend, lat: object) -> None:
    body = command(
        "book_on", callsign="AB12", unit_type="patrol_car", position={"lat": lat, "lon": 0}
    )
    await refused(backend, body, "position.lat")


@pytest.mark.parametrize("version", [True, "3", -1, 2**53, 2.5])
async def test_expected_version_is_a_non_negative_integer(
    backend: Backend, version: object
) -> None:
    await book_on(backend)
    body = command("set_unit_state", callsign="AB12", state=6, expected_version=version)
    await refused(backend, body, "expected_version")


@pytest.mark.parametrize("since", [True, "31647", 1.5, -1, 2**53])
async def test_subscribe_since_must_be_an_integer(backend: Backend, since: object) -> None:
    async with asyncio.timeout(TIMEOUT), ws(backend) as conn:
        await conn.send(json.dumps({"type": "subscribe", "since": since}))
        error = json.loads(await conn.recv())
        assert error["type"] == "error"
        assert "since" in error["detail"]
        await conn.wait_closed()
        assert conn.close_code == CloseCode.BAD_FRAME
    await assert_still_serves(backend)


# --- type --------------------------------------------------------------------------------


async def test_a_command_without_type_is_refused(backend: Backend) -> None:
    async with http(backend) as client:
        before = await head(client)
        body = command("book_on", callsign="AB12", unit_type="patrol_car")
        del body["type"]
        problem = assert_problem(
            await client.post("/v1/commands", json=body), 422, "invalid_command"
        )
        assert "type" in problem["detail"]
        assert await head(client) == before


async def test_a_frame_without_type_is_refused(backend: Backend) -> None:
    async with asyncio.timeout(TIMEOUT), ws(backend) as conn:
        await conn.send(json.dumps({"since": 0}))
        error = json.loads(await conn.recv())
        assert error["type"] == "error"
        assert "type" in error["detail"]
        await conn.wait_closed()
        assert conn.close_code == CloseCode.BAD_FRAME


async def test_openapi_and_schemas_mark_type_required(backend: Backend) -> None:
    async with http(backend) as client:
        schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    for name, schema in schemas.items():
        if "type" in schema.get("properties", {}):
            assert "type" in schema.get("required", []), name
    for kind, model in COMMAND_TYPES.items():
        assert "type" in model.model_json_schema()["required"], kind


# --- identifiers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("callsign", "says"),
    [
        ("   ", "empty"),
        ("", "empty"),
        ("ß" * 40, "ASCII"),
        ("AB/12", "found U+002F"),
        ("AB\x0012", "U+0000"),
        ("A" * 41, "at most 40"),
        ("-AB12", "start and end"),
        ("AB\u202e12", "U+202E"),
        # Python's str.split() takes these for whitespace: they are refused, not spaced.
        ("AB\x8512", "U+0085"),
        ("AB\n12", "U+000A"),
        ("AB\r12", "U+000D"),
        ("AB\u202812", "U+2028"),
        ("AB\x1c12", "U+001C"),
    ],
)
async def test_callsigns_must_be_typeable(backend: Backend, callsign: str, says: str) -> None:
    body = command("book_on", callsign=callsign, unit_type="patrol_car")
    problem = await refused(backend, body, "callsign")
    assert says in problem["detail"]


async def test_a_callsign_is_normalised_before_it_is_checked(backend: Backend) -> None:
    await book_on(backend, "  arv   1 ")
    async with http(backend) as client:
        unit = (await client.get("/v1/units/ARV 1")).json()
        assert unit["callsign"] == "ARV 1"
        # Read back by the same rule it was written by.
        again = (await client.get("/v1/units/arv%20%201")).json()
        assert again["callsign"] == "ARV 1"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            command("create_incident", grade=1, incident_type="R/TC", location={"address": "x"}),
            "incident_type",
        ),
        (
            command(
                "create_incident",
                grade=1,
                incident_type="RTC",
                location={"address": "x", "sector": "North\x00"},
            ),
            "location.sector",
        ),
        (command("close_incident", reference="0001-01JAN26", closing_code=" "), "closing_code"),
        (command("add_note", reference="../etc", text="x"), "reference"),
        (
            {**command("book_on", callsign="AB12", unit_type="patrol_car"), "workstation": "a/b"},
            "workstation",
        ),
    ],
)
async def test_references_codes_sectors_and_workstations_follow_the_pattern(
    backend: Backend, body: dict[str, Any], field: str
) -> None:
    await refused(backend, body, field)


# --- free text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "char"),
    [
        (command("add_note", reference="0001-01JAN26", text="ok\x1b[2J"), "text", "U+001B"),
        (command("add_note", reference="0001-01JAN26", text="a\x85b"), "text", "U+0085"),
        (command("add_note", reference="0001-01JAN26", text="a\x7fb"), "text", "U+007F"),
        (command("add_note", reference="0001-01JAN26", text="a\u2028b"), "text", "U+2028"),
        (command("add_note", reference="0001-01JAN26", text="a\u2029b"), "text", "U+2029"),
        (command("add_note", reference="0001-01JAN26", text="AB\u202e21"), "text", "U+202E"),
        (command("add_note", reference="0001-01JAN26", text="a\u2067b"), "text", "U+2067"),
        (command("add_note", reference="0001-01JAN26", text="a\ufdd0b"), "text", "U+FDD0"),
        (command("add_note", reference="0001-01JAN26", text="a\U0010ffffb"), "text", "U+10FFFF"),
        (
            command(
                "create_incident", grade=2, incident_type="RTC", location={"address": "1 High\nSt"}
            ),
            "location.address",
            "U+000A",
        ),
        (
            command(
                "create_incident",
                grade=2,
                incident_type="RTC",
                location={"address": "1 High St"},
                caller={"name": "Jo\x07"},
            ),
            "caller.name",
            "U+0007",
        ),
    ],
)
async def test_control_characters_are_refused_naming_field_and_character(
    backend: Backend, body: dict[str, Any], field: str, char: str
) -> None:
    problem = await refused(backend, body, field)
    assert char in problem["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (command("add_note", reference="0001-01JAN26", text="   "), "text"),
        (command("add_note", reference="0001-01JAN26", text="\n\t "), "text"),
        (
            command("create_incident", grade=2, incident_type="RTC", location={"address": "  "}),
            "location.address",
        ),
        (command("reopen_incident", reference="0001-01JAN26", reason=" "), "reason"),
        (command("grade_incident", reference="0001-01JAN26", grade=2, reason=" "), "reason"),
    ],
)
async def test_required_text_that_says_nothing_is_refused(
    backend: Backend, body: dict[str, Any], field: str
) -> None:
    problem = await refused(backend, body, field)
    assert "empty or only spaces" in problem["detail"]


async def test_printable_unicode_and_newlines_in_notes_are_kept(backend: Backend) -> None:
    # Joiners and variation selectors stay: the family emoji and names need them.
    text = "émigré 北京 🚓 [bold]x[/]\nsecond line\twith a tab 👩\u200d👩\u200d👧 ❤\ufe0f"
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands",
            json=command(
                "create_incident",
                grade=2,
                incident_type="rtc",
                location={"address": "Rue de l'Église", "sector": "City Centre"},
                description=text,
            ),
        )
        assert reply.status_code == 200, reply.text
        event = reply.json()["event"]
        assert event["description"] == text
        assert event["incident_type"] == "RTC"
        assert event["location"]["sector"] == "City Centre"


async def test_every_refusal_leaves_a_subscriber_undisturbed(backend: Backend) -> None:
    """A refused value never reaches the stream: the next frame is the next good event."""
    async with asyncio.timeout(TIMEOUT), ws(backend, Role.DISPATCHER) as conn:
        await subscribed(conn)
        async with http(backend) as client:
            bad = command("book_on", callsign="", unit_type="patrol_car")
            assert (await client.post("/v1/commands", json=bad)).status_code == 422
            good = command("book_on", callsign="AB99", unit_type="patrol_car")
            assert (await client.post("/v1/commands", json=good)).status_code == 200
        frame = json.loads(await conn.recv())
        assert frame["type"] == "event"
        assert frame["event"]["callsign"] == "AB99"


# --- times in queries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/v1/history/units/AB12", "since"),
        ("/v1/history/incidents?closed_to=2026-11-28T00:00:00Z", "closed_from"),
        ("/v1/history/incidents?closed_from=2026-11-27T00:00:00Z", "closed_to"),
    ],
)
@pytest.mark.parametrize("value", ["-7645367841.193925", "1764235138", "2026-11-27T09:18:58"])
async def test_a_time_in_a_query_is_an_rfc3339_string_with_an_offset(
    backend: Backend, path: str, name: str, value: str
) -> None:
    await book_on(backend)
    async with http(backend) as client:
        joined = "&" if "?" in path else "?"
        reply = await client.get(f"{path}{joined}{name}={value}")
    assert reply.status_code == 422, reply.text
    problem = reply.json()
    assert "RFC 3339" in problem["detail"] and name in reply.text
