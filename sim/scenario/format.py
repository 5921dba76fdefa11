"""The scenario file: a timed script of dispatch actions and what must come of them.

A scenario is TOML: settings at the top, a ``[simulator]`` table, ``[[steps]]`` and
``[[expect]]`` (docs/scenarios.md shows every field with examples).

`load_scenario` reads and checks a file completely before anything runs. Each table is
validated by its pydantic model (`model`); what spans tables (aliases, step ids, times,
the commands) is checked here. Every problem is a `ScenarioError` whose message names
the file, the line and the field (``bad.toml: line 12: steps[2].grade: ...``).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationError

from cadterm.protocol.commands import COMMAND_TYPES, parse_command

from ..city import BRACKLEY, City
from .model import (
    ACTIONS,
    CHECKS,
    EXPECTATION_MODELS,
    STEP_MODELS,
    TARGETS,
    AssignStep,
    CallStep,
    CommandConflicts,
    CommandStep,
    Expectation,
    IncidentStatusIs,
    NonNegative,
    OutageStep,
    Positive,
    Recommended,
    ReconcileStep,
    ResourcedWithinTarget,
    Scenario,
    SimulatorPart,
    Step,
    Text,
    TomlTable,
    did_you_mean,
    kind,
    show,
)

__all__ = [
    "ACTIONS",
    "CHECKS",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "substitute_aliases",
]

_PLACEHOLDER_REF = "0001-01JAN00"

#: A field's place in the file: keys and array indexes, ``("steps", 2, "grade")``.
FieldPath = tuple[str | int, ...]


class ScenarioError(Exception):
    """The scenario file is malformed; the message names the file, the line and the field."""

    def __init__(self, message: str, field: str | None = None, line: int | None = None) -> None:
        super().__init__(message)
        self.field, self.line = field, line


class _File(TomlTable):
    """The top level of a scenario file."""

    name: Text
    description: Text = ""
    speed: Positive = 10.0
    duration: NonNegative | None = None
    force: bool = True
    back_entry_after: Annotated[float, Field(ge=1, le=3600)] = 60.0
    reserve: Annotated[int, Field(ge=0, le=200)] = 0
    simulator: SimulatorPart = SimulatorPart()
    steps: list[Annotated[Step, Field(discriminator="action")]] = []
    expect: list[Annotated[Expectation, Field(discriminator="check")]] = []


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
    return parse_scenario(data, str(path), city, text=text)


def parse_scenario(
    data: Mapping[str, Any],
    source: str = "<scenario>",
    city: City = BRACKLEY,
    *,
    text: str | None = None,
) -> Scenario:
    """Check a decoded scenario. Raises `ScenarioError` naming `source` and the field.

    With the file's `text`, the error also gives the line the field is on.
    """
    try:
        try:
            file = _File.model_validate(data, context={"city": city})
        except ValidationError as exc:
            raise _explain(exc.errors()[0]) from None
        return _Checker(file, source).scenario()
    except _Bad as bad:
        line = _line_of(bad.path, _key_lines(text)) if text is not None else None
        where = _dotted(bad.path)
        at = f"line {line}: " if line is not None else ""
        raise ScenarioError(f"{source}: {at}{where}: {bad.message}", where, line) from None


class _Bad(Exception):
    def __init__(self, path: FieldPath, message: str) -> None:
        super().__init__(f"{_dotted(path)}: {message}")
        self.path, self.message = path, message


# --- what pydantic found, in the format's words ---------------------------------------------


def _explain(error: Mapping[str, Any]) -> _Bad:
    """The first validation error as the field it is about and what is wrong with it."""
    raw: FieldPath = tuple(error["loc"])
    path, model = _path_and_model(raw)
    kind_, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind_ == "scenario":
        return _Bad(path, ctx["why"])
    if kind_ in ("missing", "union_tag_not_found"):
        name = str(raw[-1]) if kind_ == "missing" else ctx["discriminator"].strip("'")
        if kind_ == "missing":
            path = path[:-1]
        given = [str(k) for k in value] if isinstance(value, Mapping) else []
        typo = difflib.get_close_matches(name, given, n=1)
        hint = f" (is {typo[0]!r} a misspelling of it?)" if typo else ""
        return _Bad(path, f"missing required field {name!r}{hint}")
    if kind_ == "union_tag_invalid":
        tag = ctx["tag"]
        if ctx["discriminator"] == "'action'":
            return _Bad(
                (*path, "action"), f"unknown action {tag!r}; expected one of {', '.join(ACTIONS)}"
            )
        hint = did_you_mean(tag, CHECKS)
        return _Bad((*path, "check"), f"unknown check {tag!r}{hint}; one of {', '.join(CHECKS)}")
    if kind_ == "extra_forbidden":
        known = [f.alias or name for name, f in model.model_fields.items()]
        hint = did_you_mean(str(path[-1]), known)
        return _Bad(path, f"unknown field{hint}; fields here: {', '.join(known)}")
    if kind_ == "list_type" and path in (("steps",), ("expect",)):
        return _Bad(path, f"must be an array of tables ([[{path[0]}]]), not {kind(value)}")
    if kind_ in ("model_type", "model_attributes_type", "dict_type"):
        return _Bad(path, f"must be a table, not {kind(value)}")
    if kind_ == "float_type":
        return _Bad(path, f"must be a number, not {show(value)}")
    if kind_ == "int_type":
        return _Bad(path, f"must be a whole number, not {show(value)}")
    if kind_ == "finite_number":
        return _Bad(path, f"must be a finite number, not {value}")
    if kind_ == "greater_than":
        return _Bad(path, f"must be more than {ctx['gt']:g}, not {value}")
    if kind_ == "greater_than_equal":
        return _Bad(path, f"must be {ctx['ge']:g} or more, not {value}")
    if kind_ == "less_than_equal":
        return _Bad(path, f"must be {ctx['le']:g} or less, not {value}")
    if kind_ in ("string_type", "string_too_short"):
        return _Bad(path, f"must be a non-empty string, not {show(value)}")
    if kind_ == "bool_type":
        return _Bad(path, f"must be true or false, not {show(value)}")
    return _Bad(path, error["msg"])


def _path_and_model(raw: FieldPath) -> tuple[FieldPath, type[TomlTable]]:
    """The field's path without the tag pydantic adds to a step's or an expectation's, and
    the model of the table the field is in."""
    if raw[:1] in (("steps",), ("expect",)) and len(raw) >= 3:
        models = STEP_MODELS if raw[0] == "steps" else EXPECTATION_MODELS
        return (raw[0], raw[1], *raw[3:]), models[str(raw[2])]
    if raw[:1] == ("simulator",) and len(raw) >= 2:
        return raw, SimulatorPart
    return raw, _File


def _dotted(path: FieldPath) -> str:
    """``("steps", 2, "grade")`` as ``steps[2].grade``; the top level as ``scenario.x``."""
    if not path or path[0] not in ("steps", "expect", "simulator"):
        path = ("scenario", *path)
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


# --- where a field is in the file -----------------------------------------------------------

_ARRAY_TABLE = re.compile(r"\[\[\s*([\w.-]+)\s*\]\]")
_TABLE = re.compile(r"\[\s*([\w.-]+)\s*\]")
_KEY = re.compile(r"([\w-]+)\s*=")


def _key_lines(text: str) -> dict[FieldPath, int]:
    """Line numbers (1-based) of the tables and keys a scenario file defines.

    Enough TOML for a scenario: ``[table]``, ``[[array]]`` and ``key = value`` at the
    start of a line; a key inside an inline table is found by the line of its table.
    """
    lines: dict[FieldPath, int] = {}
    table: FieldPath = ()
    counts: dict[str, int] = {}
    in_string = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_string:
            in_string = quotes % 2 == 0
            continue
        if match := _ARRAY_TABLE.match(stripped):
            name = match[1]
            table = (name, counts.get(name, 0))
            counts[name] = table[1] + 1  # type: ignore[operator]
            lines[table] = number
        elif match := _TABLE.match(stripped):
            table = (match[1],)
            lines[table] = number
        elif match := _KEY.match(stripped):
            lines.setdefault((*table, match[1]), number)
        in_string = quotes % 2 == 1
    return lines


def _line_of(path: FieldPath, lines: Mapping[FieldPath, int]) -> int | None:
    """The line of the field at `path`, else of the nearest table holding it."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


# --- what spans tables ----------------------------------------------------------------------


class _Checker:
    """Checks what one table alone cannot: ids, aliases, commands, times; builds the scenario."""

    def __init__(self, file: _File, source: str) -> None:
        self.file, self.source = file, source
        self.calls: dict[str, CallStep] = {}
        self.step_ids: dict[str, Step] = {}

    def scenario(self) -> Scenario:
        file = self.file
        for array in (file.steps, file.expect):
            for index, item in enumerate(array):
                item.number(index)
        for step in file.steps:
            self.names(step)
            self.console(step)
            if isinstance(step, CommandStep):
                self.command(step)
        steps = sorted(file.steps, key=lambda s: (s.at, s.index))
        for step in steps:
            self.references(step)
        for expectation in file.expect:
            self.expectation(expectation, steps)
        if not steps and not file.expect:
            raise _Bad((), "has no [[steps]] and no [[expect]]: nothing to run")
        return Scenario(
            name=file.name,
            description=file.description,
            speed=file.speed,
            duration=self.duration(steps),
            force=file.force,
            simulator=file.simulator,
            steps=tuple(steps),
            expectations=tuple(file.expect),
            source=self.source,
            calls=dict(self.calls),
            back_entry_after=file.back_entry_after,
            reserve=file.reserve,
        )

    def console(self, step: Step) -> None:
        """Only commands go through a console; withdrawing takes a reason."""
        if isinstance(step, OutageStep) and step.console is not None:
            raise _Bad(_at(step, "console"), "an outage stops the backend, not one console")
        if isinstance(step, ReconcileStep):
            if step.choice == "withdraw" and step.reason is None:
                raise _Bad(_at(step, "reason"), "withdraw needs a reason (noted in the chronology)")
            named = {s.console for s in self.file.steps if s.at <= step.at and s is not step}
            if step.console not in named:
                raise _Bad(
                    _at(step, "console"),
                    f"no step before it goes through console {step.console!r}",
                )

    def names(self, step: Step) -> None:
        """Step ids and call aliases are unique."""
        if step.id is not None:
            if step.id in self.step_ids:
                raise _Bad(_at(step, "id"), f"{step.id!r} is already the id of another step")
            self.step_ids[step.id] = step
        if isinstance(step, CallStep):
            if step.alias in self.calls:
                raise _Bad(
                    _at(step, "alias"), f"{step.alias!r} is already the alias of another call"
                )
            self.calls[step.alias] = step

    def command(self, step: CommandStep) -> None:
        """The command is well-formed, with a stand-in reference for each "@alias"."""
        command = step.command
        kind_ = command.get("type")
        if kind_ not in COMMAND_TYPES:
            raise _Bad(
                _at(step, "command", "type"),
                f"unknown command type {kind_!r}; one of {', '.join(COMMAND_TYPES)}",
            )
        for key in ("idempotency_key", "workstation"):
            if key in command:
                raise _Bad(_at(step, "command", key), "is filled in by the runner; leave it out")
        trial = _substitute(command, lambda alias: _PLACEHOLDER_REF)
        trial |= {"idempotency_key": "scenario-check", "workstation": "scenario"}
        try:
            parse_command(trial)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise _Bad(_at(step, "command", *error["loc"][1:]), error["msg"]) from None

    def references(self, step: Step) -> None:
        """Aliases a step uses belong to a call made no later than the step."""
        if isinstance(step, AssignStep):
            self.known_alias(step.incident, _at(step, "incident"), step.at)
        elif isinstance(step, CommandStep):
            where = _at(step, "command")
            _substitute(step.command, lambda alias: self.known_alias(alias, where, step.at))

    def known_alias(self, alias: str, where: FieldPath, at: float | None = None) -> str:
        call = self.calls.get(alias)
        if call is None:
            known = ", ".join(sorted(self.calls)) or "none"
            raise _Bad(where, f"no call step has alias {alias!r} (aliases: {known})")
        if at is not None and call.at > at:
            raise _Bad(where, f"{alias!r} is only called at {call.at:g} s, after this ({at:g} s)")
        return alias

    def expectation(self, expectation: Expectation, steps: list[Step]) -> None:
        where = ("expect", expectation.index)
        if isinstance(expectation, ResourcedWithinTarget | IncidentStatusIs):
            self.known_alias(expectation.incident, (*where, "incident"))
        if isinstance(expectation, Recommended):
            self.known_alias(expectation.incident, (*where, "incident"), expectation.at)
        if isinstance(expectation, ResourcedWithinTarget) and expectation.target is None:
            grade = int(self.calls[expectation.incident].grade)
            if grade not in TARGETS:
                raise _Bad(
                    (*where, "target"),
                    f"grade {grade} has no attendance target; give target = seconds",
                )
        if isinstance(expectation, CommandConflicts):
            if expectation.step is not None:
                step = self.step_ids.get(expectation.step)
                if step is None:
                    raise _Bad((*where, "step"), f"no step has id {expectation.step!r}")
                if not getattr(step, "expect", None):
                    raise _Bad(
                        (*where, "step"), f"step {expectation.step!r} has no 'expect' to check"
                    )
            elif not any(getattr(s, "expect", None) for s in steps):
                raise _Bad(where, "no step has an 'expect' for this check to look at")

    def duration(self, steps: list[Step]) -> float:
        """The file's duration, checked to cover the script; by default 30 s past its end."""
        ends = [s.at + (s.seconds if isinstance(s, OutageStep) else 0.0) for s in steps]
        ends += [e.at for e in self.file.expect if isinstance(e, Recommended)]
        latest = max(ends, default=0.0)
        duration = self.file.duration
        if duration is None:
            return latest + 30.0
        if duration < latest:
            raise _Bad(("duration",), f"is {duration:g} s but the script runs to {latest:g} s")
        return duration


def _at(step: Step, *fields: str | int) -> FieldPath:
    return ("steps", step.index, *fields)


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
