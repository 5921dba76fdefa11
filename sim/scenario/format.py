"""The scenario file: a timed script of dispatch actions and what must come of them.

A scenario is TOML (see docs/scenarios.md for every field with examples)::

    name = "Grade 1 RTC"
    speed = 20                      # simulated seconds per real second
    duration = 600                  # simulated seconds the run lasts

    [simulator]                     # optional: background calls, units played
    rate = 0.5

    [[steps]]
    at = 0
    action = "call"
    alias = "rtc"
    grade = 1
    type = "RTC"
    place = "Moor Road Roundabout"

    [[expect]]
    check = "resourced_within_target"
    incident = "rtc"

`load_scenario` reads and checks a file completely before anything runs: every problem
is a `ScenarioError` whose message names the file and the field (``steps[2].grade``).
"""

from __future__ import annotations

import difflib
import math
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from cadterm.protocol.codes import INCIDENT_TYPES
from cadterm.protocol.commands import COMMAND_TYPES, parse_command
from cadterm.protocol.domain import Grade, IncidentStatus, SourceChannel, UnitState
from cadterm.protocol.problems import ProblemCode

from ..city import BRACKLEY, City, UnknownPlace
from .model import (
    TARGETS,
    AssignStep,
    CallStep,
    CommandConflicts,
    CommandStep,
    Expectation,
    IncidentStatusIs,
    NoEventLost,
    OutageStep,
    Recommended,
    ResourcedWithinTarget,
    Scenario,
    SimulatorPart,
    Step,
    UnitStateStep,
)

__all__ = [
    "ACTIONS",
    "CHECKS",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "substitute_aliases",
]

#: What a step's `expect` may say besides a problem code.
_EXPECT_WORDS = {"ok", "conflict"}
_PLACEHOLDER_REF = "0001-01JAN00"


class ScenarioError(Exception):
    """The scenario file is malformed; the message names the file and the field."""


# --- reading -------------------------------------------------------------------------------

ACTIONS = ("call", "unit_state", "assign", "outage", "command")
CHECKS = (
    "resourced_within_target",
    "recommended",
    "no_event_lost",
    "command_conflicts",
    "incident_status",
)


def load_scenario(path: str | Path, city: City = BRACKLEY) -> Scenario:
    """Read and check the scenario file at `path`. Raises `ScenarioError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse_scenario(data, str(path), city)


def parse_scenario(
    data: Mapping[str, Any], source: str = "<scenario>", city: City = BRACKLEY
) -> Scenario:
    """Check a decoded scenario. Raises `ScenarioError` naming `source` and the field."""
    try:
        return _Parser(source, city).scenario(data)
    except _Bad as bad:
        raise ScenarioError(f"{source}: {bad.where}: {bad.message}") from None


class _Bad(Exception):
    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where, self.message = where, message


class _Table:
    """Takes fields out of one TOML table, checking each; `done()` rejects the rest."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise _Bad(where, f"must be a table, not {_kind(data)}")
        self.data = dict(data)
        self.where = where
        self.known: list[str] = []

    def _get(self, key: str, required: bool) -> Any:
        self.known.append(key)
        if key not in self.data:
            if required:
                typo = difflib.get_close_matches(key, [str(k) for k in self.data], n=1)
                hint = f" (is {typo[0]!r} a misspelling of it?)" if typo else ""
                raise _Bad(self.where, f"missing required field {key!r}{hint}")
            return None
        return self.data.pop(key)

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self._get(key, required)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise _Bad(f"{self.where}.{key}", f"must be a non-empty string, not {_show(value)}")
        return value.strip()

    def number(
        self,
        key: str,
        *,
        required: bool = False,
        default: float | None = None,
        minimum: float | None = None,
        positive: bool = False,
    ) -> float | None:
        value = self._get(key, required)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad(f"{self.where}.{key}", f"must be a number, not {_show(value)}")
        if not math.isfinite(value):
            raise _Bad(f"{self.where}.{key}", f"must be a finite number, not {value}")
        if positive and not value > 0:
            raise _Bad(f"{self.where}.{key}", f"must be more than 0, not {value}")
        if minimum is not None and value < minimum:
            raise _Bad(f"{self.where}.{key}", f"must be {minimum:g} or more, not {value}")
        return float(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise _Bad(f"{self.where}.{key}", f"must be true or false, not {_show(value)}")
        return value

    def raw(self, key: str, *, required: bool = False) -> Any:
        return self._get(key, required)

    def done(self) -> None:
        for key in self.data:
            close = difflib.get_close_matches(key, self.known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(
                f"{self.where}.{key}",
                f"unknown field{hint}; fields here: {', '.join(self.known)}",
            )


class _Parser:
    def __init__(self, source: str, city: City) -> None:
        self.source = source
        self.city = city
        self.calls: dict[str, CallStep] = {}
        self.step_ids: dict[str, Step] = {}
        self.steps: list[Step] = []

    def scenario(self, data: Mapping[str, Any]) -> Scenario:
        top = _Table(data, "scenario")
        name = top.text("name", required=True)
        description = top.text("description", default="") or ""
        speed = top.number("speed", default=10.0, positive=True)
        duration = top.number("duration", minimum=0)
        force = top.flag("force", True)
        simulator = self.simulator(top.raw("simulator"))
        raw_steps = self.array(top.raw("steps"), "steps")
        raw_expect = self.array(top.raw("expect"), "expect")
        top.done()

        steps = [self.step(raw, i) for i, raw in enumerate(raw_steps)]
        steps.sort(key=lambda s: (s.at, s.index))
        for step in steps:
            self.check_references(step)
        self.steps = steps
        expectations = tuple(self.expectation(raw, i) for i, raw in enumerate(raw_expect))
        if not steps and not expectations:
            raise _Bad("scenario", "has no [[steps]] and no [[expect]]: nothing to run")

        latest = 0.0
        for step in steps:
            end = step.at + (step.seconds if isinstance(step, OutageStep) else 0.0)
            latest = max(latest, end)
        for expectation in expectations:
            if isinstance(expectation, Recommended):
                latest = max(latest, expectation.at)
        if duration is None:
            duration = latest + 30.0
        elif duration < latest:
            raise _Bad(
                "scenario.duration", f"is {duration:g} s but the script runs to {latest:g} s"
            )
        assert name is not None and speed is not None
        return Scenario(
            name=name,
            description=description,
            speed=speed,
            duration=duration,
            force=force,
            simulator=simulator,
            steps=tuple(steps),
            expectations=expectations,
            source=self.source,
            calls=dict(self.calls),
        )

    @staticmethod
    def array(value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise _Bad(where, f"must be an array of tables ([[{where}]]), not {_kind(value)}")
        return value

    def simulator(self, value: Any) -> SimulatorPart:
        if value is None:
            return SimulatorPart()
        table = _Table(value, "simulator")
        seed = table.raw("seed")
        if seed is None:
            seed = 1
        elif isinstance(seed, bool) or not isinstance(seed, int | str):
            raise _Bad("simulator.seed", f"must be an integer or a string, not {_show(seed)}")
        part = SimulatorPart(
            seed=seed,
            rate=table.number("rate", default=0.0, minimum=0),
            auto_dispatch=table.flag("auto_dispatch", False),
            play_units=table.flag("play_units", True),
            avl_every=table.number("avl_every", default=30.0, minimum=0),
            scene_time_factor=table.number("scene_time_factor", default=1.0, positive=True),
            emergency_chance=table.number("emergency_chance", default=0.0, minimum=0),
            hands_off=self.callsigns(table.raw("hands_off"), "simulator.hands_off"),
        )
        if part.emergency_chance > 1:
            raise _Bad("simulator.emergency_chance", f"must be 0-1, not {part.emergency_chance}")
        table.done()
        return part

    @staticmethod
    def callsigns(value: Any, where: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _Bad(where, f"must be a list of callsigns, not {_show(value)}")
        return tuple(v.upper() for v in value)

    # --- steps -------------------------------------------------------------------------

    def step(self, raw: Any, index: int) -> Step:
        where = f"steps[{index}]"
        table = _Table(raw, where)
        at = table.number("at", required=True, minimum=0)
        action = table.text("action", required=True)
        step_id = table.text("id")
        if step_id is not None and step_id in self.step_ids:
            raise _Bad(f"{where}.id", f"{step_id!r} is already the id of another step")
        parse = _STEP_PARSERS.get(action or "")
        if parse is None:
            raise _Bad(
                f"{where}.action",
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}",
            )
        assert at is not None
        step = parse(self, table, at, index, step_id)
        table.done()
        if step_id is not None:
            self.step_ids[step_id] = step
        return step

    def expect_word(self, table: _Table) -> str | None:
        value = table.text("expect")
        if value is None:
            return None
        value = value.lower()
        codes = {code.value for code in ProblemCode}
        if value not in codes | _EXPECT_WORDS:
            close = difflib.get_close_matches(value, sorted(codes | _EXPECT_WORDS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(
                f"{table.where}.expect",
                f"unknown outcome {value!r}{hint}; give 'ok', 'conflict' (any 409 refusal) "
                "or a problem code such as 'version_conflict' or 'unit_committed'",
            )
        return value

    def call(self, table: _Table, at: float, index: int, step_id: str | None) -> CallStep:
        where = table.where
        alias = table.text("alias", required=True)
        assert alias is not None
        if alias in self.calls:
            raise _Bad(f"{where}.alias", f"{alias!r} is already the alias of another call")
        grade_value = table.raw("grade", required=True)
        if isinstance(grade_value, bool) or grade_value not in (1, 2, 3, 4, 5):
            raise _Bad(f"{where}.grade", f"must be an integer 1-5, not {_show(grade_value)}")
        incident_type = (table.text("type", required=True) or "").upper()
        if incident_type not in INCIDENT_TYPES:
            close = difflib.get_close_matches(incident_type, list(INCIDENT_TYPES), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(f"{where}.type", f"unknown incident type {incident_type!r}{hint}")
        place = table.text("place", required=True)
        assert place is not None
        try:
            self.city.find(place)
        except UnknownPlace as exc:
            raise _Bad(f"{where}.place", str(exc)) from None
        house = table.raw("house")
        if house is not None and (
            isinstance(house, bool) or not isinstance(house, int) or house < 1
        ):
            raise _Bad(f"{where}.house", f"must be a house number (1 or more), not {_show(house)}")
        source_text = table.text("source")
        try:
            source = (
                SourceChannel(source_text)
                if source_text
                else (
                    SourceChannel.EMERGENCY_999
                    if grade_value <= 2
                    else SourceChannel.NON_EMERGENCY_101
                )
            )
        except ValueError:
            known = ", ".join(s.value for s in SourceChannel)
            raise _Bad(
                f"{where}.source", f"unknown source {source_text!r}; one of {known}"
            ) from None
        step = CallStep(
            at,
            index,
            step_id,
            alias=alias,
            grade=Grade(grade_value),
            incident_type=incident_type,
            place=place,
            house=house,
            description=table.text("description", default="") or "",
            source=source,
            expect=self.expect_word(table),
        )
        self.calls[alias] = step
        return step

    def unit_state(
        self, table: _Table, at: float, index: int, step_id: str | None
    ) -> UnitStateStep:
        callsign = (table.text("callsign", required=True) or "").upper()
        value = table.raw("state", required=True)
        try:
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ValueError(f"must be a number 0-10 or a state name, not {_show(value)}")
            state = UnitState.parse(value)
        except ValueError as exc:
            raise _Bad(f"{table.where}.state", str(exc)) from None
        if state == UnitState.OFF_DUTY:
            raise _Bad(
                f"{table.where}.state",
                "off duty (11) is not a state change: use a command step with type 'book_off'",
            )
        return UnitStateStep(at, index, step_id, callsign, state, self.expect_word(table))

    def assign(self, table: _Table, at: float, index: int, step_id: str | None) -> AssignStep:
        incident = table.text("incident", required=True)
        callsign = table.text("callsign", required=True)
        assert incident is not None and callsign is not None
        callsign = "recommended" if callsign.lower() == "recommended" else callsign.upper()
        divert = table.flag("divert", False)
        return AssignStep(at, index, step_id, incident, callsign, divert, self.expect_word(table))

    def outage(self, table: _Table, at: float, index: int, step_id: str | None) -> OutageStep:
        seconds = table.number("seconds", required=True, positive=True)
        assert seconds is not None
        return OutageStep(at, index, step_id, seconds)

    def command(self, table: _Table, at: float, index: int, step_id: str | None) -> CommandStep:
        where = f"{table.where}.command"
        command = table.raw("command", required=True)
        if not isinstance(command, Mapping):
            raise _Bad(where, f"must be a table of command fields, not {_kind(command)}")
        kind = command.get("type")
        if kind not in COMMAND_TYPES:
            raise _Bad(
                f"{where}.type", f"unknown command type {kind!r}; one of {', '.join(COMMAND_TYPES)}"
            )
        for key in ("idempotency_key", "workstation"):
            if key in command:
                raise _Bad(f"{where}.{key}", "is filled in by the runner; leave it out")
        trial = _substitute(dict(command), lambda alias: _PLACEHOLDER_REF)
        trial["idempotency_key"] = "scenario-check"
        trial["workstation"] = "scenario"  # the runner's own, as for the key
        try:
            parse_command(trial)
        except ValidationError as exc:
            err = exc.errors()[0]
            path = ".".join(str(p) for p in err["loc"][1:])  # loc[0] is the command type
            raise _Bad(f"{where}.{path}" if path else where, err["msg"]) from None
        return CommandStep(at, index, step_id, dict(command), self.expect_word(table))

    def check_references(self, step: Step) -> None:
        """Aliases a step uses must belong to a call made no later than the step."""
        where = f"steps[{step.index}]"
        if isinstance(step, AssignStep):
            self.known_alias(step.incident, f"{where}.incident", step.at)
        elif isinstance(step, CommandStep):
            _substitute(
                dict(step.command), lambda a: self.known_alias(a, f"{where}.command", step.at)
            )

    def known_alias(self, alias: str, where: str, at: float | None = None) -> str:
        call = self.calls.get(alias)
        if call is None:
            known = ", ".join(sorted(self.calls)) or "none"
            raise _Bad(where, f"no call step has alias {alias!r} (aliases: {known})")
        if at is not None and call.at > at:
            raise _Bad(where, f"{alias!r} is only called at {call.at:g} s, after this ({at:g} s)")
        return alias

    # --- expectations ----------------------------------------------------------------------

    def expectation(self, raw: Any, index: int) -> Expectation:
        where = f"expect[{index}]"
        table = _Table(raw, where)
        check = table.text("check", required=True)
        if check == "resourced_within_target":
            incident = self.known_alias(
                table.text("incident", required=True) or "", f"{where}.incident"
            )
            target = table.number("target", positive=True)
            grade = int(self.calls[incident].grade)
            if target is None and grade not in TARGETS:
                raise _Bad(
                    f"{where}.target",
                    f"grade {grade} has no attendance target; give target = seconds",
                )
            result: Expectation = ResourcedWithinTarget(index, incident, target)
        elif check == "recommended":
            incident = table.text("incident", required=True) or ""
            at = table.number("at", required=True, minimum=0)
            assert at is not None
            self.known_alias(incident, f"{where}.incident", at)
            callsign = (table.text("callsign", required=True) or "").upper()
            result = Recommended(index, incident, at, callsign)
        elif check == "no_event_lost":
            result = NoEventLost(index)
        elif check == "command_conflicts":
            step_id = table.text("step")
            if step_id is not None:
                step = self.step_ids.get(step_id)
                if step is None:
                    raise _Bad(f"{where}.step", f"no step has id {step_id!r}")
                if not getattr(step, "expect", None):
                    raise _Bad(f"{where}.step", f"step {step_id!r} has no 'expect' to check")
            elif not any(getattr(s, "expect", None) for s in self.steps):
                raise _Bad(where, "no step has an 'expect' for this check to look at")
            result = CommandConflicts(index, step_id)
        elif check == "incident_status":
            incident = self.known_alias(
                table.text("incident", required=True) or "", f"{where}.incident"
            )
            status_text = (table.text("status", required=True) or "").lower()
            try:
                status = IncidentStatus(status_text)
            except ValueError:
                known = ", ".join(s.value for s in IncidentStatus)
                raise _Bad(
                    f"{where}.status", f"unknown status {status_text!r}; one of {known}"
                ) from None
            code = table.text("closing_code")
            result = IncidentStatusIs(index, incident, status, code.upper() if code else None)
        else:
            close = difflib.get_close_matches(check or "", CHECKS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _Bad(
                f"{where}.check", f"unknown check {check!r}{hint}; one of {', '.join(CHECKS)}"
            )
        table.done()
        return result


_STEP_PARSERS: dict[str, Callable[..., Step]] = {
    "call": _Parser.call,
    "unit_state": _Parser.unit_state,
    "assign": _Parser.assign,
    "outage": _Parser.outage,
    "command": _Parser.command,
}


def _substitute(value: Any, reference: Callable[[str], str]) -> Any:
    """Replace every "@alias" string in a command by `reference(alias)`, recursively."""
    if isinstance(value, str) and value.startswith("@") and len(value) > 1:
        return reference(value[1:])
    if isinstance(value, Mapping):
        return {k: _substitute(v, reference) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, reference) for v in value]
    return value


def substitute_aliases(command: Mapping[str, Any], references: Mapping[str, str]) -> dict[str, Any]:
    """`command` with every "@alias" replaced by the incident reference it stands for."""
    return _substitute(dict(command), lambda alias: references[alias])


def _kind(value: Any) -> str:
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def _show(value: Any) -> str:
    return repr(value) if not isinstance(value, dict | list) else _kind(value)
