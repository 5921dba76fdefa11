"""Every command type against a real backend over HTTP: what it does and how it is refused.

Each test talks to a real uvicorn server on a loopback port with its own SQLite file,
through a plain `httpx.Client`. The `Console` helper checks on every command what must
always hold: an accepted command's reply carries the seq of the one event it caused,
which is exactly one past the previous head; a refusal is a problem document and does
not move the head.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from conftest import make_config

from cadterm.protocol.codes import CLOSING_CODES
from cadterm.protocol.commands import COMMAND_TYPES
from cadterm.protocol.domain import Role
from cadterm.server.config import Limits

PROBLEM_JSON = "application/problem+json"
REFERENCE = re.compile(r"^(\d{4})-(\d{2}[A-Z]{3}\d{2})$")
SCENE = {"address": "12 High Street, Anytown", "position": {"lat": 52.2, "lon": -1.5}}


def new_key() -> str:
    """A fresh idempotency key, as a console generates for each command."""
    return uuid.uuid4().hex


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """Check `response` is the RFC 9457 problem document for `code` and return it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    problem = response.json()
    assert {"type", "title", "status", "code", "detail"} <= problem.keys()
    assert problem["status"] == status
    assert problem["code"] == code
    assert problem["type"] == "/problems/" + code.replace("_", "-")
    assert isinstance(problem["detail"], str) and problem["detail"]
    return problem


class Console:
    """An operator's view of the backend: posts commands and reads the picture back."""

    def __init__(self, backend, role: Role = Role.DISPATCHER) -> None:
        self.client = httpx.Client(base_url=backend.url, headers=backend.headers(role), timeout=10)

    def close(self) -> None:
        self.client.close()

    # --- commands ---------------------------------------------------------------------

    def post(self, kind: str, *, key: str | None = None, **fields: Any) -> httpx.Response:
        body = {"type": kind, "idempotency_key": key or new_key(), "workstation": "ws-test"}
        return self.client.post("/v1/commands", json=body | fields)

    def ok(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Post a command that must be accepted; return the reply."""
        before = self.head()
        response = self.post(kind, **fields)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("application/json")
        reply = response.json()
        assert reply["replayed"] is False
        assert reply["seq"] == reply["event"]["seq"] == before + 1
        assert self.head() == reply["seq"]
        return reply

    def refused(self, kind: str, status: int, code: str, **fields: Any) -> dict[str, Any]:
        """Post a command that must be refused with `code`; return the problem."""
        before = self.head()
        problem = assert_problem(self.post(kind, **fields), status, code)
        assert self.head() == before, "a refusal must not consume a seq"
        return problem

    # --- queries ----------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        response = self.client.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def head(self) -> int:
        return self.get("/v1/health")["seq"]

    def state(self) -> dict[str, Any]:
        return self.get("/v1/state")

    def incident(self, reference: str) -> dict[str, Any]:
        return self.get(f"/v1/incidents/{reference}")

    def unit(self, callsign: str) -> dict[str, Any]:
        return self.get(f"/v1/units/{callsign}")

    def events(self, after: int = 0) -> list[dict[str, Any]]:
        return self.get("/v1/events", after=after)

    # --- set-up shorthands ------------------------------------------------------------

    def book_on(self, callsign: str, unit_type: str = "patrol_car", **fields: Any) -> dict:
        self.ok("book_on", callsign=callsign, unit_type=unit_type, **fields)
        return self.unit(callsign)

    def create_incident(self, grade: int = 1, incident_type: str = "RTC", **fields: Any) -> str:
        fields.setdefault("location", SCENE)
        reply = self.ok("create_incident", grade=grade, incident_type=incident_type, **fields)
        return reply["event"]["reference"]

    def assign(self, reference: str, callsign: str, **fields: Any) -> dict[str, Any]:
        return self.ok("assign_unit", reference=reference, callsign=callsign, **fields)

    def close_incident(self, reference: str, code: str = "RESOLVED") -> dict[str, Any]:
        return self.ok("close_incident", reference=reference, closing_code=code)

    def last_entry(self, reference: str) -> dict[str, Any]:
        return self.incident(reference)["chronology"][-1]


@pytest.fixture
def server(backend_factory):
    """A backend whose rate limit never gets in the way of a test."""
    return backend_factory(make_config(limits=Limits(command_rate=1000, command_burst=1000)))


@pytest.fixture
def cad(server) -> Iterator[Console]:
    """A dispatcher's console."""
    console = Console(server)
    yield console
    console.close()


@pytest.fixture
def supervisor(server) -> Iterator[Console]:
    console = Console(server, Role.SUPERVISOR)
    yield console
    console.close()


@pytest.fixture
def viewer(server) -> Iterator[Console]:
    """A read-only operator's console."""
    console = Console(server, Role.READ_ONLY)
    yield console
    console.close()


# --- create_incident --------------------------------------------------------------------


class TestCreateIncident:
    def test_reference_is_a_daily_log_number_that_increments(self, cad):
        first = cad.ok(
            "create_incident",
            grade=1,
            incident_type="RTC",
            location=SCENE,
            description="Two cars, one on its roof",
            caller={"name": "A Caller", "phone": "07700 900123"},
        )
        second = cad.ok("create_incident", grade=3, incident_type="theft", location=SCENE)
        refs = [first["event"]["reference"], second["event"]["reference"]]
        for ref, reply in zip(refs, (first, second), strict=True):
            match = REFERENCE.match(ref)
            assert match, ref
            day = datetime.fromisoformat(reply["event"]["at"]).strftime("%d%b%y").upper()
            assert match.group(2) == day
        assert [REFERENCE.match(ref).group(1) for ref in refs] == ["0001", "0002"]

        incident = cad.incident(refs[0])
        assert incident["status"] == "open"
        assert incident["grade"] == 1
        assert incident["incident_type"] == "RTC"
        assert incident["location"] == SCENE | {"sector": None}
        assert incident["caller"]["name"] == "A Caller"
        assert incident["version"] == 1
        assert incident["chronology"][0]["kind"] == "incident_created"
        assert incident["chronology"][0]["seq"] == first["seq"]
        assert incident["chronology"][0]["operator"] == "disp1"
        assert incident["chronology"][0]["workstation"] == "ws-test"
        # The incident type is normalised to the configured code.
        assert cad.incident(refs[1])["incident_type"] == "THEFT"
        state = cad.state()
        assert state["seq"] == second["seq"] == 2
        assert set(state["incidents"]) == set(refs)

    def test_unknown_incident_type_is_refused_listing_known_types(self, cad):
        problem = cad.refused(
            "create_incident",
            422,
            "unknown_incident_type",
            grade=2,
            incident_type="ALIENS",
            location=SCENE,
        )
        assert problem["field"] == "incident_type"
        assert "ALIENS" in problem["detail"] and "BURGLARY" in problem["detail"]
        assert cad.state()["incidents"] == {}

    def test_missing_location_names_the_field(self, cad):
        problem = cad.refused(
            "create_incident", 422, "invalid_command", grade=1, incident_type="RTC"
        )
        assert problem["field"] == "location"
        assert problem["errors"][0]["field"] == "location"

    def test_grade_out_of_range_is_invalid(self, cad):
        problem = cad.refused(
            "create_incident", 422, "invalid_command", grade=9, incident_type="RTC", location=SCENE
        )
        assert problem["field"] == "grade"

    def test_a_call_form_call_carries_caller_risk_and_grading_guidance(self, cad):
        reply = cad.ok(
            "create_incident",
            grade=1,
            incident_type="CONCERN",
            location=SCENE,
            caller={"name": "Sam Okoro", "phone": "07700 900456"},
            risk={"threat": "none known", "vulnerability": "lives alone, 84"},
            suggested_grade=2,
            grade_reason="insulin-dependent, no answer for eight hours",
        )
        event = reply["event"]
        assert event["suggested_grade"] == 2
        assert event["grade_reason"] == "insulin-dependent, no answer for eight hours"
        incident = cad.incident(event["reference"])
        assert incident["caller"]["phone"] == "07700 900456"
        assert incident["risk"]["vulnerability"] == "lives alone, 84"
        opening = incident["chronology"][0]["text"]
        assert opening.endswith(
            "; suggested grade 2 overridden: insulin-dependent, no answer for eight hours"
            "; THRIVE: threat, vulnerability"
        )

    def test_a_grade_as_suggested_needs_no_reason_and_says_so(self, cad):
        ref = cad.create_incident(grade=2, suggested_grade=2)
        assert "grade as suggested (2)" in cad.incident(ref)["chronology"][0]["text"]
        assert "grade_reason" not in cad.events()[-1]

    @pytest.mark.parametrize("reason", [None, "", "   "])
    def test_overriding_the_suggested_grade_without_a_reason_is_refused(self, cad, reason):
        fields = {} if reason is None else {"grade_reason": reason}
        problem = cad.refused(
            "create_incident",
            422,
            "grade_reason_required",
            grade=1,
            incident_type="RTC",
            location=SCENE,
            suggested_grade=3,
            **fields,
        )
        assert problem["field"] == "grade_reason"
        assert "overrides the suggested grade 3" in problem["detail"]
        assert cad.state()["incidents"] == {}

    def test_a_reason_without_a_suggestion_and_hostile_reasons_are_refused(self, cad):
        problem = cad.refused(
            "create_incident", 422, "grade_reason_required", grade=1, incident_type="RTC",
            location=SCENE, grade_reason="because",
        )  # fmt: skip
        assert problem["field"] == "grade_reason"
        for bad in ("line\nbreak", "esc \x1b[2J", "x" * 1001):
            problem = cad.refused(
                "create_incident", 422, "invalid_command", grade=1, incident_type="RTC",
                location=SCENE, suggested_grade=2, grade_reason=bad,
            )  # fmt: skip
            assert problem["field"] == "grade_reason", bad
        problem = cad.refused(
            "create_incident", 422, "invalid_command", grade=1, incident_type="RTC",
            location=SCENE, suggested_grade=True,
        )  # fmt: skip
        assert problem["field"] == "suggested_grade"
        assert cad.state()["incidents"] == {}


# --- incident edits ---------------------------------------------------------------------


class TestGradeIncident:
    def test_regrade(self, cad):
        ref = cad.create_incident(grade=1)
        reply = cad.ok("grade_incident", reference=ref, grade=2, reason="no injuries")
        assert reply["event"]["type"] == "incident_graded"
        incident = cad.incident(ref)
        assert incident["grade"] == 2
        assert incident["version"] == 2
        assert incident["chronology"][-1]["seq"] == reply["seq"]
        assert "no injuries" in incident["chronology"][-1]["text"]

    def test_same_grade_is_no_change(self, cad):
        ref = cad.create_incident(grade=2)
        problem = cad.refused("grade_incident", 409, "no_change", reference=ref, grade=2)
        assert problem["field"] == "grade"

    def test_closed_incident(self, cad):
        ref = cad.create_incident()
        cad.close_incident(ref)
        cad.refused("grade_incident", 409, "incident_closed", reference=ref, grade=3)

    def test_unknown_incident(self, cad):
        problem = cad.refused(
            "grade_incident", 404, "unknown_incident", reference="9999-01JAN26", grade=3
        )
        assert problem["field"] == "reference"


class TestRetypeIncident:
    def test_retype(self, cad):
        ref = cad.create_incident(incident_type="CONCERN")
        reply = cad.ok("retype_incident", reference=ref, incident_type="missing")
        assert reply["event"]["incident_type"] == "MISSING"
        assert cad.incident(ref)["incident_type"] == "MISSING"

    def test_refusals(self, cad):
        ref = cad.create_incident(incident_type="CONCERN")
        cad.refused("retype_incident", 409, "no_change", reference=ref, incident_type="concern")
        problem = cad.refused(
            "retype_incident", 422, "unknown_incident_type", reference=ref, incident_type="NOPE"
        )
        assert problem["field"] == "incident_type"
        cad.close_incident(ref)
        cad.refused("retype_incident", 409, "incident_closed", reference=ref, incident_type="RTC")


class TestRelocateIncident:
    def test_relocate(self, cad):
        ref = cad.create_incident()
        where = {"address": "Junction 15, M1 northbound", "sector": "NORTH"}
        reply = cad.ok("relocate_incident", reference=ref, location=where)
        assert reply["event"]["location"]["address"] == where["address"]
        incident = cad.incident(ref)
        assert incident["location"]["address"] == where["address"]
        assert incident["location"]["sector"] == "NORTH"
        assert "Junction 15" in incident["chronology"][-1]["text"]

    def test_refusals(self, cad):
        ref = cad.create_incident()
        problem = cad.refused(
            "relocate_incident", 422, "invalid_command", reference=ref, location={"address": ""}
        )
        assert problem["field"] == "location.address"
        cad.refused("relocate_incident", 404, "unknown_incident", reference="NOPE", location=SCENE)
        cad.close_incident(ref)
        cad.refused("relocate_incident", 409, "incident_closed", reference=ref, location=SCENE)


class TestAssessRisk:
    def test_assess(self, cad):
        ref = cad.create_incident()
        risk = {"threat": "driver trapped", "vulnerability": "elderly passenger"}
        reply = cad.ok("assess_risk", reference=ref, risk=risk)
        assert reply["event"]["risk"]["threat"] == "driver trapped"
        incident = cad.incident(ref)
        assert incident["risk"]["threat"] == "driver trapped"
        assert incident["risk"]["vulnerability"] == "elderly passenger"
        assert "threat" in incident["chronology"][-1]["text"]

    def test_refusals(self, cad):
        ref = cad.create_incident()
        cad.refused("assess_risk", 404, "unknown_incident", reference="NOPE", risk={})
        problem = cad.refused(
            "assess_risk", 422, "invalid_command", reference=ref, risk={"colour": "red"}
        )
        assert problem["field"] == "risk.colour"


class TestAddNote:
    def test_note_is_added_to_the_chronology(self, cad):
        ref = cad.create_incident()
        reply = cad.ok("add_note", reference=ref, text="Caller reports smoke from the bonnet")
        entry = cad.last_entry(ref)
        assert entry["kind"] == "note_added"
        assert entry["text"] == "Caller reports smoke from the bonnet"
        assert entry["seq"] == reply["seq"]
        assert entry["version"] == cad.incident(ref)["version"] == 2

    def test_note_on_a_closed_incident(self, cad):
        ref = cad.create_incident()
        cad.close_incident(ref)
        cad.ok("add_note", reference=ref, text="Late call: vehicle recovered")
        incident = cad.incident(ref)
        assert incident["status"] == "closed"
        assert incident["chronology"][-1]["text"] == "Late call: vehicle recovered"

    def test_refusals(self, cad):
        ref = cad.create_incident()
        problem = cad.refused("add_note", 422, "invalid_command", reference=ref, text="")
        assert problem["field"] == "text"
        cad.refused("add_note", 404, "unknown_incident", reference="NOPE", text="hello")


# --- units on incidents -----------------------------------------------------------------


class TestAssignUnit:
    def test_assign_puts_the_unit_en_route(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        reply = cad.assign(ref, "AB12")
        assert reply["event"]["type"] == "unit_assigned"
        assert reply["event"]["diverted_from"] is None
        unit = cad.unit("AB12")
        assert unit["state"] == 5
        assert unit["incident"] == ref
        incident = cad.incident(ref)
        assert incident["assigned"] == ["AB12"]
        assert incident["status"] == "resourced"

    def test_unknown_callsign(self, cad):
        ref = cad.create_incident()
        problem = cad.refused(
            "assign_unit", 404, "unknown_callsign", reference=ref, callsign="ZZ99"
        )
        assert problem["field"] == "callsign"

    def test_unknown_incident(self, cad):
        cad.book_on("AB12")
        problem = cad.refused(
            "assign_unit", 404, "unknown_incident", reference="0999-01JAN26", callsign="AB12"
        )
        assert problem["field"] == "reference"

    def test_off_duty_unit(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.ok("book_off", callsign="AB12")
        cad.refused("assign_unit", 409, "unit_off_duty", reference=ref, callsign="AB12")

    def test_unit_on_prisoner_escort_is_not_deployable(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.ok("set_unit_state", callsign="AB12", state=9)
        problem = cad.refused(
            "assign_unit", 409, "unit_not_deployable", reference=ref, callsign="AB12"
        )
        assert problem["current"]["state"] == 9
        assert cad.incident(ref)["assigned"] == []

    def test_unit_in_emergency_is_not_deployable(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.ok("set_unit_state", callsign="AB12", state=0)
        cad.refused("assign_unit", 409, "unit_not_deployable", reference=ref, callsign="AB12")

    def test_committed_unit_is_refused_without_divert(self, cad):
        first, second = cad.create_incident(), cad.create_incident()
        cad.book_on("AB12")
        cad.assign(first, "AB12")
        problem = cad.refused(
            "assign_unit", 409, "unit_committed", reference=second, callsign="AB12"
        )
        assert first in problem["detail"]
        assert problem["current"]["incident"] == first
        assert cad.unit("AB12")["incident"] == first

    def test_divert_moves_the_unit(self, cad):
        first, second = cad.create_incident(), cad.create_incident()
        cad.book_on("AB12")
        cad.assign(first, "AB12")
        cad.ok("set_unit_state", callsign="AB12", state="at scene")
        reply = cad.assign(second, "AB12", divert=True)
        assert reply["event"]["diverted_from"] == first
        unit = cad.unit("AB12")
        assert (unit["incident"], unit["state"]) == (second, 5)
        old = cad.incident(first)
        assert old["assigned"] == []
        assert old["status"] == "open"
        assert "diverted" in old["chronology"][-1]["text"]
        new = cad.incident(second)
        assert new["assigned"] == ["AB12"]
        assert new["status"] == "resourced"

    def test_already_assigned(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        cad.refused("assign_unit", 409, "unit_already_assigned", reference=ref, callsign="AB12")
        cad.refused(
            "assign_unit",
            409,
            "unit_already_assigned",
            reference=ref,
            callsign="AB12",
            divert=True,
        )

    def test_closed_incident(self, cad):
        ref = cad.create_incident()
        cad.close_incident(ref)
        cad.book_on("AB12")
        cad.refused("assign_unit", 409, "incident_closed", reference=ref, callsign="AB12")
        assert cad.unit("AB12")["state"] == 2


class TestUnassignUnit:
    def test_stand_down(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        reply = cad.ok("unassign_unit", reference=ref, callsign="AB12", reason="not needed")
        assert reply["event"]["type"] == "unit_unassigned"
        unit = cad.unit("AB12")
        assert (unit["state"], unit["incident"]) == (2, None)
        incident = cad.incident(ref)
        assert (incident["assigned"], incident["status"]) == ([], "open")
        assert "not needed" in incident["chronology"][-1]["text"]

    def test_refusals(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        problem = cad.refused(
            "unassign_unit", 409, "unit_not_assigned", reference=ref, callsign="AB12"
        )
        assert problem["field"] == "callsign"
        cad.refused("unassign_unit", 404, "unknown_callsign", reference=ref, callsign="ZZ99")


# --- unit state -------------------------------------------------------------------------


class TestSetUnitState:
    @pytest.mark.parametrize("state", [6, "6", "at scene", "atscene", "At-Scene"])
    def test_at_scene_by_number_or_words(self, cad, state):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        reply = cad.ok("set_unit_state", callsign="AB12", state=state)
        assert reply["event"]["state"] == 6
        assert reply["event"]["cleared_from"] is None
        assert cad.unit("AB12")["state"] == 6
        incident = cad.incident(ref)
        assert incident["status"] == "at_scene"
        assert incident["assigned"] == ["AB12"]

    def test_available_clears_the_unit_from_its_incident(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        cad.ok("set_unit_state", callsign="AB12", state=6)
        reply = cad.ok("set_unit_state", callsign="AB12", state=2)
        assert reply["event"]["cleared_from"] == ref
        unit = cad.unit("AB12")
        assert (unit["state"], unit["incident"]) == (2, None)
        incident = cad.incident(ref)
        assert (incident["assigned"], incident["status"]) == ([], "open")

    def test_unknown_word_is_refused_with_a_clear_message(self, cad):
        cad.book_on("AB12")
        problem = cad.refused(
            "set_unit_state", 422, "invalid_command", callsign="AB12", state="flying"
        )
        assert problem["field"] == "state"
        assert "flying" in problem["detail"]
        assert "0-11" in problem["detail"]
        assert (
            cad.refused("set_unit_state", 422, "invalid_command", callsign="AB12", state=12)[
                "field"
            ]
            == "state"
        )

    def test_off_duty_must_use_book_off(self, cad):
        cad.book_on("AB12")
        for state in (11, "off duty"):
            problem = cad.refused(
                "set_unit_state", 422, "invalid_command", callsign="AB12", state=state
            )
            assert problem["field"] == "state"
            assert "book_off" in problem["detail"]
        assert cad.unit("AB12")["on_duty"] is True

    def test_other_refusals(self, cad):
        cad.book_on("AB12")
        cad.refused("set_unit_state", 409, "no_change", callsign="AB12", state="available")
        cad.refused("set_unit_state", 404, "unknown_callsign", callsign="ZZ99", state=2)
        cad.ok("book_off", callsign="AB12")
        cad.refused("set_unit_state", 409, "unit_off_duty", callsign="AB12", state=2)


class TestLocateUnit:
    def test_locate(self, cad):
        cad.book_on("AB12")
        reply = cad.ok("locate_unit", callsign="AB12", position={"lat": 51.5, "lon": -0.12})
        unit = cad.unit("AB12")
        assert unit["position"] == {"lat": 51.5, "lon": -0.12}
        assert unit["position_at"] == reply["event"]["fixed_at"] == reply["event"]["at"]

    def test_fix_time_is_kept(self, cad):
        cad.book_on("AB12")
        fixed_at = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0).isoformat()
        cad.ok("locate_unit", callsign="AB12", position={"lat": 1, "lon": 2}, fixed_at=fixed_at)
        assert datetime.fromisoformat(cad.unit("AB12")["position_at"]) == datetime.fromisoformat(
            fixed_at
        )

    def test_refusals(self, cad):
        cad.book_on("AB12")
        problem = cad.refused(
            "locate_unit", 422, "invalid_command", callsign="AB12", position={"lat": 91, "lon": 0}
        )
        assert problem["field"] == "position.lat"
        cad.refused(
            "locate_unit", 404, "unknown_callsign", callsign="ZZ99", position={"lat": 0, "lon": 0}
        )


class TestAcknowledgeEmergency:
    def test_no_emergency_unless_state_zero(self, cad):
        cad.book_on("AB12")
        problem = cad.refused("acknowledge_emergency", 409, "no_emergency", callsign="AB12")
        assert problem["field"] == "callsign"

    def test_acknowledge_once(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        cad.ok("set_unit_state", callsign="AB12", state="urgent assistance")
        assert cad.unit("AB12")["emergency_acknowledged_by"] is None
        reply = cad.ok("acknowledge_emergency", callsign="AB12")
        assert reply["event"]["type"] == "emergency_acknowledged"
        unit = cad.unit("AB12")
        assert (unit["state"], unit["emergency_acknowledged_by"]) == (0, "disp1")
        assert "acknowledged by disp1" in cad.last_entry(ref)["text"]
        problem = cad.refused("acknowledge_emergency", 409, "no_change", callsign="AB12")
        assert "disp1" in problem["detail"]

    def test_unknown_callsign(self, cad):
        cad.refused("acknowledge_emergency", 404, "unknown_callsign", callsign="ZZ99")


# --- closing, reopening, linking --------------------------------------------------------


class TestCloseIncident:
    def test_close_releases_units(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.book_on("CD34")
        cad.assign(ref, "AB12")
        cad.assign(ref, "CD34")
        cad.ok("set_unit_state", callsign="CD34", state=6)
        reply = cad.ok("close_incident", reference=ref, closing_code="arrest", summary="1 held")
        assert reply["event"]["closing_code"] == "ARREST"
        incident = cad.incident(ref)
        assert incident["status"] == "closed"
        assert incident["closing_code"] == "ARREST"
        assert incident["closed_at"] == reply["event"]["at"]
        assert incident["assigned"] == []
        for callsign in ("AB12", "CD34"):
            unit = cad.unit(callsign)
            assert (unit["state"], unit["incident"]) == (2, None)

    def test_unknown_closing_code_lists_known_codes(self, cad):
        ref = cad.create_incident()
        problem = cad.refused(
            "close_incident", 422, "unknown_closing_code", reference=ref, closing_code="SORTED"
        )
        assert problem["field"] == "closing_code"
        for code in CLOSING_CODES:
            assert code in problem["detail"]
        assert cad.incident(ref)["status"] == "open"

    def test_closed_twice(self, cad):
        ref = cad.create_incident()
        cad.close_incident(ref)
        problem = cad.refused(
            "close_incident", 409, "incident_closed", reference=ref, closing_code="NFA"
        )
        assert problem["field"] == "reference"


class TestReopenIncident:
    def test_dispatcher_may_not_reopen(self, cad):
        ref = cad.create_incident()
        cad.close_incident(ref)
        cad.refused("reopen_incident", 403, "forbidden", reference=ref, reason="new info")
        assert cad.incident(ref)["status"] == "closed"

    def test_supervisor_reopens(self, cad, supervisor):
        ref = cad.create_incident()
        cad.close_incident(ref)
        reply = supervisor.ok("reopen_incident", reference=ref, reason="suspect seen again")
        assert reply["event"]["operator"] == "sup1"
        incident = cad.incident(ref)
        assert (incident["status"], incident["closing_code"], incident["closed_at"]) == (
            "open",
            None,
            None,
        )
        assert "suspect seen again" in incident["chronology"][-1]["text"]
        # Open again, so it can be worked again.
        cad.ok("grade_incident", reference=ref, grade=2)

    def test_not_closed(self, supervisor):
        ref = supervisor.create_incident()
        problem = supervisor.refused(
            "reopen_incident", 409, "incident_not_closed", reference=ref, reason="why not"
        )
        assert problem["field"] == "reference"


class TestLinkIncidents:
    def test_duplicate_is_recorded_on_both_sides(self, cad):
        original, duplicate = cad.create_incident(), cad.create_incident()
        reply = cad.ok("link_incidents", reference=duplicate, other=original)
        assert reply["event"]["relation"] == "duplicate_of"
        assert cad.incident(duplicate)["links"] == [
            {"reference": original, "relation": "duplicate_of"}
        ]
        assert cad.incident(original)["links"] == [
            {"reference": duplicate, "relation": "duplicated_by"}
        ]
        assert cad.last_entry(original)["seq"] == cad.last_entry(duplicate)["seq"] == reply["seq"]

    def test_refusals(self, cad):
        first, second = cad.create_incident(), cad.create_incident()
        problem = cad.refused("link_incidents", 422, "self_link", reference=first, other=first)
        assert problem["field"] == "other"
        problem = cad.refused("link_incidents", 404, "unknown_incident", reference=first, other="X")
        assert problem["field"] == "other"
        problem = cad.refused("link_incidents", 404, "unknown_incident", reference="X", other=first)
        assert problem["field"] == "reference"
        cad.ok("link_incidents", reference=second, other=first, relation="related")
        for reference, other in ((second, first), (first, second)):
            problem = cad.refused(
                "link_incidents", 409, "already_linked", reference=reference, other=other
            )
            assert problem["field"] == "other"


# --- booking on and off -----------------------------------------------------------------


class TestBookOnOff:
    def test_book_on_a_new_unit(self, cad):
        reply = cad.ok(
            "book_on",
            callsign="ARV 1",
            unit_type="armed_response",
            capabilities=["firearms", "taser", "firearms"],
            home_sector="NORTH",
            state="available at station",
            position={"lat": 52.0, "lon": -1.0},
        )
        assert reply["event"]["type"] == "unit_booked_on"
        unit = cad.unit("ARV 1")
        assert unit["unit_type"] == "armed_response"
        assert unit["capabilities"] == ["firearms", "taser"]
        assert (unit["state"], unit["on_duty"], unit["incident"]) == (3, True, None)
        assert unit["home_sector"] == "NORTH"
        assert [u["callsign"] for u in cad.get("/v1/units")] == ["ARV 1"]

    def test_refusals(self, cad):
        cad.book_on("AB12")
        problem = cad.refused("book_on", 409, "unit_on_duty", callsign="AB12", unit_type="van")
        assert problem["field"] == "callsign"
        problem = cad.refused(
            "book_on", 422, "invalid_command", callsign="CD34", unit_type="van", state=6
        )
        assert problem["field"] == "state"
        problem = cad.refused("book_on", 422, "invalid_command", callsign="CD34", unit_type="tank")
        assert problem["field"] == "unit_type"

    def test_book_off_then_back_on(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.assign(ref, "AB12")
        cad.ok("book_off", callsign="AB12")
        unit = cad.unit("AB12")
        assert (unit["state"], unit["on_duty"], unit["incident"]) == (11, False, None)
        assert cad.incident(ref)["assigned"] == []
        assert cad.incident(ref)["status"] == "open"
        cad.refused("assign_unit", 409, "unit_off_duty", reference=ref, callsign="AB12")
        cad.refused("book_off", 409, "unit_off_duty", callsign="AB12")

        cad.ok("book_on", callsign="AB12", unit_type="van", capabilities=["public_order"])
        unit = cad.unit("AB12")
        assert (unit["state"], unit["on_duty"], unit["unit_type"]) == (2, True, "van")
        assert unit["capabilities"] == ["public_order"]
        cad.assign(ref, "AB12")

    def test_rebooking_checks_the_unit_version(self, cad):
        seen = cad.book_on("AB12")["version"]
        cad.ok("book_off", callsign="AB12")
        problem = cad.refused(
            "book_on",
            409,
            "version_conflict",
            callsign="AB12",
            unit_type="van",
            expected_version=seen,
        )
        assert problem["current"]["on_duty"] is False
        cad.ok("book_on", callsign="AB12", unit_type="van", expected_version=seen + 1)

    def test_book_off_unknown_unit(self, cad):
        cad.refused("book_off", 404, "unknown_callsign", callsign="ZZ99")


# --- cross-cutting: sequence, idempotency, versions, roles ------------------------------


class TestSequence:
    def test_seqs_are_gap_free_and_refusals_take_none(self, cad):
        seqs = [cad.ok("book_on", callsign="AB12", unit_type="van")["seq"]]
        ref = cad.create_incident()
        seqs.append(cad.head())
        cad.refused("grade_incident", 409, "no_change", reference=ref, grade=1)
        seqs.append(cad.assign(ref, "AB12")["seq"])
        cad.refused("assign_unit", 409, "unit_already_assigned", reference=ref, callsign="AB12")
        last = cad.ok("add_note", reference=ref, text="hello")
        seqs.append(last["seq"])
        assert seqs == [1, 2, 3, 4]
        events = cad.events()
        assert events[-1] == last["event"]
        assert [e["seq"] for e in events] == [1, 2, 3, 4]
        assert [e["type"] for e in events] == [
            "unit_booked_on",
            "incident_created",
            "unit_assigned",
            "note_added",
        ]
        assert [e["seq"] for e in cad.events(after=2)] == [3, 4]
        assert cad.state()["seq"] == 4


class TestIdempotency:
    def test_retry_returns_the_same_reply_and_records_one_event(self, cad):
        body = {"grade": 1, "incident_type": "RTC", "location": SCENE}
        key = new_key()
        first = cad.post("create_incident", key=key, **body)
        assert first.status_code == 200
        again = cad.post("create_incident", key=key, **body)
        assert again.status_code == 200
        assert again.json() == first.json() | {"replayed": True}
        assert len(cad.events()) == 1
        assert len(cad.state()["incidents"]) == 1
        assert cad.head() == 1

    def test_same_key_different_body_is_refused(self, cad):
        key = new_key()
        assert cad.post("book_on", key=key, callsign="AB12", unit_type="van").status_code == 200
        problem = assert_problem(
            cad.post("book_on", key=key, callsign="CD34", unit_type="van"),
            422,
            "idempotency_key_reused",
        )
        assert problem["field"] == "idempotency_key"
        assert cad.head() == 1
        assert [u["callsign"] for u in cad.get("/v1/units")] == ["AB12"]

    def test_same_key_from_another_operator_is_their_own_command(self, cad, supervisor):
        # Keys are scoped to the operator: the supervisor's command with the dispatcher's
        # key is simply executed, and reveals nothing about the dispatcher's.
        key = new_key()
        assert cad.post("book_on", key=key, callsign="AB12", unit_type="van").status_code == 200
        theirs = supervisor.post("book_on", key=key, callsign="CD34", unit_type="van")
        assert theirs.status_code == 200, theirs.text
        assert theirs.json()["replayed"] is False
        assert theirs.json()["event"]["operator"] == "sup1"
        assert cad.head() == 2

    def test_refusal_is_replayed_even_after_things_change(self, cad):
        ref = cad.create_incident()
        key = new_key()
        first = cad.post("assign_unit", key=key, reference=ref, callsign="AB12")
        assert_problem(first, 404, "unknown_callsign")
        cad.book_on("AB12")
        again = cad.post("assign_unit", key=key, reference=ref, callsign="AB12")
        assert again.status_code == 404
        assert again.json() == first.json()
        assert cad.unit("AB12")["incident"] is None
        assert cad.head() == 2


class TestVersionConflicts:
    def test_stale_incident_version_shows_what_changed(self, cad):
        ref = cad.create_incident()
        seen = cad.incident(ref)["version"]
        cad.ok("add_note", reference=ref, text="Second caller: driver now out of car")
        problem = cad.refused(
            "grade_incident", 409, "version_conflict", reference=ref, grade=2, expected_version=seen
        )
        assert problem["field"] == "expected_version"
        current = problem["current"]
        assert current["reference"] == ref
        assert current["version"] == seen + 1
        assert current["grade"] == 1
        assert "chronology" not in current
        assert len(problem["changes"]) == 1
        assert "Second caller: driver now out of car" in problem["changes"][0]
        assert cad.incident(ref)["grade"] == 1

        reply = cad.ok("grade_incident", reference=ref, grade=2, expected_version=seen + 1)
        assert cad.incident(ref)["version"] == seen + 2
        assert cad.incident(ref)["chronology"][-1]["seq"] == reply["seq"]

    def test_assign_checks_the_incident_version(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        cad.ok("retype_incident", reference=ref, incident_type="ASSAULT")
        problem = cad.refused(
            "assign_unit",
            409,
            "version_conflict",
            reference=ref,
            callsign="AB12",
            expected_version=1,
        )
        assert problem["current"]["incident_type"] == "ASSAULT"
        assert any("ASSAULT" in change for change in problem["changes"])
        cad.assign(ref, "AB12", expected_version=2)

    def test_stale_unit_version(self, cad):
        ref = cad.create_incident()
        seen = cad.book_on("AB12")["version"]
        cad.assign(ref, "AB12")
        problem = cad.refused(
            "set_unit_state",
            409,
            "version_conflict",
            callsign="AB12",
            state=6,
            expected_version=seen,
        )
        current = problem["current"]
        assert current["callsign"] == "AB12"
        assert (current["state"], current["incident"]) == (5, ref)
        assert current["version"] == seen + 1
        assert cad.unit("AB12")["state"] == 5
        cad.ok("set_unit_state", callsign="AB12", state=6, expected_version=seen + 1)


# One valid body per command type, so a read-only operator is refused for its role and
# not for a malformed body. A new command type must be added here.
SAMPLE_BODIES: dict[str, dict[str, Any]] = {
    "create_incident": {"grade": 1, "incident_type": "RTC", "location": SCENE},
    "grade_incident": {"reference": "REF", "grade": 2},
    "retype_incident": {"reference": "REF", "incident_type": "THEFT"},
    "relocate_incident": {"reference": "REF", "location": SCENE},
    "assess_risk": {"reference": "REF", "risk": {"threat": "knife"}},
    "add_note": {"reference": "REF", "text": "note"},
    "assign_unit": {"reference": "REF", "callsign": "AB12"},
    "unassign_unit": {"reference": "REF", "callsign": "AB12"},
    "set_unit_state": {"callsign": "AB12", "state": 6},
    "locate_unit": {"callsign": "AB12", "position": {"lat": 1, "lon": 1}},
    "acknowledge_emergency": {"callsign": "AB12"},
    "check_in_unit": {"callsign": "AB12"},
    "close_incident": {"reference": "REF", "closing_code": "NFA"},
    "reopen_incident": {"reference": "REF", "reason": "more info"},
    "link_incidents": {"reference": "REF", "other": "REF"},
    "book_on": {"callsign": "CD34", "unit_type": "van"},
    "book_off": {"callsign": "AB12"},
    "reserve_references": {"count": 5},
    "submit_report": {"channel": "web_form", "text": "My bike was stolen"},
    "triage_report": {"report": "R1", "outcome": "closed", "reason": "advice given"},
}


class TestReadOnlyOperator:
    def test_every_command_type_has_a_sample(self):
        assert set(SAMPLE_BODIES) == set(COMMAND_TYPES)
        for kind, body in SAMPLE_BODIES.items():
            COMMAND_TYPES[kind].model_validate(
                {"idempotency_key": new_key(), "workstation": "ws-test", **body}
            )

    def test_every_command_is_forbidden(self, cad, viewer):
        ref = cad.create_incident()
        cad.book_on("AB12")
        for kind, body in SAMPLE_BODIES.items():
            fields = {k: ref if v == "REF" else v for k, v in body.items()}
            problem = viewer.refused(kind, 403, "forbidden", **fields)
            assert kind in problem["detail"]
        assert cad.head() == 2

    def test_queries_are_allowed(self, cad, viewer):
        ref = cad.create_incident()
        cad.book_on("AB12")
        assert viewer.get("/v1/whoami") == {
            "id": "view1",
            "name": "Test read_only",
            "role": "read_only",
        }
        assert viewer.state()["seq"] == 2
        assert [i["reference"] for i in viewer.get("/v1/incidents")] == [ref]
        assert viewer.incident(ref)["reference"] == ref
        assert viewer.unit("AB12")["callsign"] == "AB12"
        assert len(viewer.events()) == 2


# --- queries ----------------------------------------------------------------------------


class TestQueries:
    def test_incidents_by_status(self, cad):
        open_ref, closed_ref = cad.create_incident(), cad.create_incident()
        cad.close_incident(closed_ref)
        assert [i["reference"] for i in cad.get("/v1/incidents", status="open")] == [open_ref]
        assert [i["reference"] for i in cad.get("/v1/incidents", status="closed")] == [closed_ref]
        assert len(cad.get("/v1/incidents")) == 2
        problem = assert_problem(
            cad.client.get("/v1/incidents", params={"status": "sleeping"}), 422, "invalid_query"
        )
        assert problem["field"] == "query.status"

    def test_unknown_incident_and_unit(self, cad):
        assert_problem(cad.client.get("/v1/incidents/UNKNOWN"), 404, "unknown_incident")
        assert_problem(cad.client.get("/v1/units/UNKNOWN"), 404, "unknown_callsign")

    def test_lookups_ignore_case(self, cad):
        ref = cad.create_incident()
        cad.book_on("AB12")
        assert cad.incident(ref.lower())["reference"] == ref
        assert cad.unit("ab12")["callsign"] == "AB12"

    def test_units(self, cad):
        assert cad.get("/v1/units") == []
        cad.book_on("AB12")
        cad.book_on("CD34", "dog", capabilities=["dog"])
        units = {u["callsign"]: u for u in cad.get("/v1/units")}
        assert set(units) == {"AB12", "CD34"}
        assert units["CD34"]["capabilities"] == ["dog"]

    def test_whoami(self, cad, supervisor):
        assert cad.get("/v1/whoami") == {
            "id": "disp1",
            "name": "Test dispatcher",
            "role": "dispatcher",
        }
        assert supervisor.get("/v1/whoami")["role"] == "supervisor"

    def test_health_needs_no_token(self, server, cad):
        cad.book_on("AB12")
        response = httpx.get(f"{server.url}/v1/health")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"
        assert response.json()["seq"] == 1

    def test_other_routes_need_a_token(self, server):
        for path in ("/v1/state", "/v1/incidents", "/v1/whoami"):
            response = httpx.get(f"{server.url}{path}")
            assert_problem(response, 401, "unauthenticated")
            assert response.headers["www-authenticate"].startswith("Bearer")
        response = httpx.get(f"{server.url}/v1/state", headers={"Authorization": "Bearer wrong"})
        assert_problem(response, 401, "unauthenticated")
        response = httpx.post(f"{server.url}/v1/commands", json={"type": "book_off"})
        assert_problem(response, 401, "unauthenticated")

    def test_openapi_describes_the_commands(self, server):
        response = httpx.get(f"{server.url}/openapi.json")
        assert response.status_code == 200
        spec = response.json()
        assert "post" in spec["paths"]["/v1/commands"]
        schemas = spec["components"]["schemas"]
        for cls in COMMAND_TYPES.values():
            assert cls.__name__ in schemas
        assert "Problem" in schemas

    def test_unknown_route_is_a_problem(self, cad):
        assert_problem(cad.client.get("/v1/nothing-here"), 404, "not_found")

    def test_malformed_json_is_a_problem(self, cad):
        response = cad.client.post(
            "/v1/commands", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "malformed_json")

    def test_unknown_command_type_is_invalid(self, cad):
        cad.refused("launch_helicopter", 422, "invalid_command")
