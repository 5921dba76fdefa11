"""Officer-safety check-ins: the fold, the timers, the server's rules and the cadence."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from conftest import make_config
from console_helpers import server_incident, server_unit
from pydantic import ValidationError
from test_console import book_on, create, number, open_console, seen
from test_fold import REF, Log
from test_server_commands import Console

from cadterm.domain.timers import TimerPolicy, officer_safety, officer_safety_due, safety_checks
from cadterm.protocol.answers import SafetyCadence
from cadterm.protocol.domain import UnitState
from cadterm.protocol.events import UnitCheckedIn
from cadterm.protocol.fold import Changes, InconsistentEvent
from cadterm.server.config import ServerConfig

MIN = timedelta(minutes=1)


@pytest.fixture
def at_scene() -> Log:
    """AB12 at scene on a grade-1 ASSAULT; CD21 free."""
    log = Log()
    log.create()
    log.book_on("AB12")
    log.book_on("CD21")
    log.assign("AB12")
    log.set_state("AB12", UnitState.AT_SCENE)
    return log


# --- the fold -------------------------------------------------------------------------------


def test_check_in_stamps_the_unit_and_writes_the_chronology(at_scene: Log) -> None:
    version = at_scene.unit().version
    changes = at_scene.add(UnitCheckedIn, callsign="AB12", reference=REF, note="all fine")
    assert changes == Changes(incidents={REF}, units={"AB12"})
    unit = at_scene.unit()
    assert unit.checked_in_at == at_scene.at
    assert unit.version == version + 1
    assert unit.state == UnitState.AT_SCENE  # a check-in is not a state change
    entry = at_scene.incident.chronology[-1]
    assert (entry.kind, entry.text) == ("unit_checked_in", "AB12 checked in safe: all fine")


def test_check_in_of_a_unit_on_no_incident_touches_no_incident(at_scene: Log) -> None:
    changes = at_scene.add(UnitCheckedIn, callsign="CD21")
    assert changes == Changes(units={"CD21"})
    assert at_scene.unit("CD21").checked_in_at == at_scene.at


def test_check_in_naming_an_unknown_incident_leaves_the_state_alone(at_scene: Log) -> None:
    before = at_scene.state.model_copy(deep=True)
    with pytest.raises(InconsistentEvent, match="unknown incident"):
        at_scene.add(UnitCheckedIn, callsign="AB12", reference="0099-27NOV26")
    assert at_scene.state == before


# --- the timers -----------------------------------------------------------------------------


def test_check_in_restarts_the_safety_timer(at_scene: Log) -> None:
    arrived = at_scene.at
    unit = at_scene.unit()
    policy = TimerPolicy(safety_by_type={})
    assert officer_safety(unit, arrived + 20 * MIN, policy, at_scene.state)
    at_scene.add(UnitCheckedIn, callsign="AB12", reference=REF, at=arrived + 18 * MIN)
    assert not officer_safety(unit, arrived + 20 * MIN, policy, at_scene.state)
    assert not officer_safety(unit, arrived + 37 * MIN, policy, at_scene.state)
    assert officer_safety(unit, arrived + 38 * MIN, policy, at_scene.state)


def test_cadence_follows_the_incident_type(at_scene: Log) -> None:
    arrived = at_scene.at
    policy = TimerPolicy(safety_by_type={"assault": 5 * MIN})
    assert policy.safety_interval("ASSAULT") == 5 * MIN
    assert policy.safety_interval("RTC") == 20 * MIN
    assert policy.safety_interval(None) == 20 * MIN
    # With the picture the unit's incident type counts; without it, the default does.
    assert officer_safety(at_scene.unit(), arrived + 5 * MIN, policy, at_scene.state)
    assert not officer_safety(at_scene.unit(), arrived + 5 * MIN, policy)
    assert [u.callsign for u in officer_safety_due(at_scene.state, arrived + 5 * MIN, policy)] == [
        "AB12"
    ]


def test_safety_checks_list_overdue_first_with_countdowns() -> None:
    log = Log()
    log.create()
    log.create("0002-27NOV26", incident_type="FIREARMS")
    for callsign in ("AB12", "CD21", "EF33"):
        log.book_on(callsign)
    log.assign("AB12")
    log.assign("CD21", reference="0002-27NOV26")
    log.set_state("AB12", UnitState.AT_SCENE)
    start = log.at
    log.set_state("CD21", UnitState.AT_SCENE, at=start + 2 * MIN)
    checks = safety_checks(log.state, start + 14 * MIN)  # the default policy
    # CD21 is on a firearms job (10 min): 2 min overdue; AB12 (20 min) has 6 min left.
    assert [(c.callsign, c.remaining, c.overdue) for c in checks] == [
        ("CD21", -2 * MIN, True),
        ("AB12", 6 * MIN, False),
    ]
    assert checks[0].every == 10 * MIN and checks[0].incident_type == "FIREARMS"


def test_policy_refuses_a_cadence_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="cadence for RTC must be positive"):
        TimerPolicy(safety_by_type={"rtc": timedelta(0)})


# --- the server's rules ---------------------------------------------------------------------


@pytest.fixture
def cad(backend):
    console = Console(backend)
    yield console
    console.close()


def test_check_in_of_a_unit_at_scene_is_recorded(cad: Console) -> None:
    reference = cad.create_incident()
    cad.book_on("AB12")
    cad.assign(reference, "AB12")
    cad.ok("set_unit_state", callsign="AB12", state=6)
    reply = cad.ok("check_in_unit", callsign="ab12", note="All fine, with the driver")
    event = reply["event"]
    assert (event["type"], event["callsign"], event["reference"]) == (
        "unit_checked_in",
        "AB12",
        reference,
    )
    assert cad.unit("AB12")["checked_in_at"] == event["at"]
    entry = cad.last_entry(reference)
    assert entry["text"] == "AB12 checked in safe: All fine, with the driver"
    assert entry["seq"] == reply["seq"]


def test_check_in_of_a_unit_at_court_needs_no_incident(cad: Console) -> None:
    cad.book_on("AB12")
    cad.ok("set_unit_state", callsign="AB12", state=10)
    assert cad.ok("check_in_unit", callsign="AB12")["event"]["reference"] is None


def test_check_in_of_a_free_unit_is_refused(cad: Console) -> None:
    cad.book_on("AB12")
    problem = cad.refused("check_in_unit", 409, "unit_not_assigned", callsign="AB12")
    assert "AB12 is 2 available on patrol and on no incident" in problem["detail"]
    assert problem["field"] == "callsign"


def test_check_in_of_a_unit_off_duty_is_refused(cad: Console) -> None:
    cad.book_on("AB12")
    cad.ok("book_off", callsign="AB12")
    problem = cad.refused("check_in_unit", 409, "unit_off_duty", callsign="AB12")
    assert problem["detail"] == "AB12 is booked off duty"


def test_check_in_never_stands_in_for_an_emergency(cad: Console) -> None:
    reference = cad.create_incident()
    cad.book_on("AB12")
    cad.assign(reference, "AB12")
    cad.ok("set_unit_state", callsign="AB12", state=0)
    problem = cad.refused("check_in_unit", 422, "invalid_command", callsign="AB12")
    assert "state 0 (emergency)" in problem["detail"]


def test_check_in_of_an_unknown_unit_is_refused(cad: Console) -> None:
    cad.refused("check_in_unit", 404, "unknown_callsign", callsign="ZZ99")


def test_check_in_note_is_checked_at_the_door(cad: Console) -> None:
    cad.book_on("AB12")
    problem = cad.refused("check_in_unit", 422, "invalid_command", callsign="AB12", note="x" * 1001)
    assert problem["field"] == "note"


# --- the cadence ----------------------------------------------------------------------------


def test_cadence_is_served_as_configured(backend_factory) -> None:
    cadence = SafetyCadence(every_minutes=25, by_incident_type={"FIREARMS": 5, "RTC": 12.5})
    server = backend_factory(make_config(safety_checks=cadence))
    response = httpx.get(f"{server.url}/v1/safety-checks", headers=server.headers(), timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "every_minutes": 25.0,
        "by_incident_type": {"FIREARMS": 5.0, "RTC": 12.5},
    }
    anonymous = httpx.get(f"{server.url}/v1/safety-checks", timeout=10)
    assert anonymous.status_code == 401


def test_default_cadence_is_documented_in_the_config() -> None:
    assert ServerConfig().safety_checks == SafetyCadence(
        every_minutes=20, by_incident_type={"FIREARMS": 10, "DOMESTIC": 15}
    )


@pytest.mark.parametrize(
    ("cadence", "message"),
    [
        ({"by_incident_type": {"FIREAMRS": 10}}, "unknown incident types: FIREAMRS"),
        ({"by_incident_type": {"RTC": 0}}, "by_incident_type.RTC must be more than 0"),
        ({"every_minutes": 0}, "greater than 0"),
    ],
)
def test_bad_cadence_in_the_config_is_refused(cadence: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ServerConfig.model_validate({"safety_checks": cadence})


# --- the console ----------------------------------------------------------------------------


async def test_ok_clears_the_safety_flag_and_writes_the_chronology(backend, tmp_path) -> None:
    # A cadence of 6 s: long enough to see the flag go after the check-in, short enough
    # to see it come in the first place.
    book_on(backend, "AB12")
    reference = create(backend, "12 High Street")
    # Wide enough to show the unit board beside the side pane.
    async with open_console(
        backend.url, tmp_path, size=(170, 40), officer_safety_minutes=0.1
    ) as console:
        await seen(console, reference)
        await console.line(f"a {number(reference)} AB12")
        await console.done("assign")
        await console.line("s AB12 at scene")
        await console.done("at scene")
        await console.until(lambda: "?" in console.unit_row("AB12"), 15, what="the ? marker")
        await console.line("safety")
        await console.until(lambda: "!! AB12" in console.detail, what="AB12 overdue, marked !!")
        assert "1 running, 1 overdue" in console.detail

        await console.line("ok AB12 all fine")
        await console.done("check-in")
        await console.until(lambda: "?" not in console.unit_row("AB12"), what="the ? to go")
        # The safety view follows within a second: AB12 is due again in a few seconds.
        await console.until(lambda: "due in" in console.detail, what="AB12 counting down again")
        assert "0 overdue" in console.detail and "!!" not in console.detail
        assert server_unit(backend, "AB12")["checked_in_at"] is not None
        assert server_incident(backend, reference)["chronology"][-1]["text"] == (
            "AB12 checked in safe: all fine"
        )
        await console.line(number(reference))
        await console.until(
            lambda: "AB12 checked in safe: all fine" in console.detail, what="the chronology"
        )


async def test_ok_for_a_free_unit_is_refused_on_the_line(backend, tmp_path) -> None:
    book_on(backend, "AB12")
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: "AB12" in console.client.state.units, what="AB12")
        await console.line("ok AB12")
        said = await console.refused()
        assert "a check-in is for a unit committed to work" in said


async def test_console_learns_the_servers_cadence(backend_factory, tmp_path) -> None:
    cadence = SafetyCadence(every_minutes=12, by_incident_type={"RTC": 4})
    server = backend_factory(make_config(safety_checks=cadence))
    async with open_console(server.url, tmp_path) as console:
        policy = await console.until(
            lambda: console.app.policy if console.app.policy.safety_by_type.get("RTC") else None,
            what="the server's cadence",
        )
        assert policy.officer_safety_after == 12 * MIN
        assert policy.safety_interval("RTC") == 4 * MIN
        assert console.app.units.policy is policy


def test_default_cadence_does_not_bind_a_force_with_other_types() -> None:
    config = ServerConfig(incident_types={"RTC": "Road traffic collision"})
    assert config.safety_checks.by_incident_type == {"FIREARMS": 10, "DOMESTIC": 15}


def test_console_cap_shortens_every_cadence() -> None:
    policy = TimerPolicy().safety_within(12 * MIN)
    assert policy.officer_safety_after == 12 * MIN
    assert policy.safety_interval("FIREARMS") == 10 * MIN  # already shorter
    assert policy.safety_interval("DOMESTIC") == 12 * MIN
