"""Every JSON example in docs/protocol.md is real wire format, and none is missing.

Examples sit in fenced blocks whose info string names what they are (```json event```,
```json command```, ...). Each is validated against the matching model; server output
(events, server frames, command results) must also be exactly what the models dump, so
the examples show every field the server sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cadterm.protocol.commands import (
    COMMAND_ADAPTER,
    COMMAND_TYPES,
    BatchResult,
    CommandBatch,
    CommandResult,
    may_issue,
)
from cadterm.protocol.domain import Operator, Role
from cadterm.protocol.events import EVENT_ADAPTER, EVENT_TYPES
from cadterm.protocol.frames import SERVER_FRAME_ADAPTER, CloseCode, Subscribe
from cadterm.protocol.problems import PROBLEM_STATUS, Problem, ProblemCode

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
TEXT = DOC.read_text(encoding="utf-8")

_FENCE = re.compile(r"^```json(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)

#: Info-string kind -> (validator, whether the example must be the model's exact dump).
KINDS: dict[str, tuple[Callable[[str], Any], bool]] = {
    "event": (EVENT_ADAPTER.validate_json, True),
    "command": (COMMAND_ADAPTER.validate_json, False),
    "server-frame": (SERVER_FRAME_ADAPTER.validate_json, True),
    "client-frame": (Subscribe.model_validate_json, False),
    "problem": (Problem.model_validate_json, False),
    "command-result": (CommandResult.model_validate_json, True),
    "command-batch": (CommandBatch.model_validate_json, False),
    "batch-result": (BatchResult.model_validate_json, False),  # problems leave out nulls
    "operator": (Operator.model_validate_json, False),
}


def _blocks() -> list[tuple[str, int, str]]:
    found = []
    for match in _FENCE.finditer(TEXT):
        line = TEXT.count("\n", 0, match.start()) + 1
        found.append((match["info"].strip(), line, match["body"]))
    return found


BLOCKS = _blocks()


def _of_kind(kind: str) -> list[Any]:
    validate = KINDS[kind][0]
    return [validate(body) for k, _, body in BLOCKS if k == kind]


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 40


@pytest.mark.parametrize(
    ("kind", "body"),
    [(kind, body) for kind, _, body in BLOCKS],
    ids=[f"line{line}-{kind or 'unlabelled'}" for kind, line, _ in BLOCKS],
)
def test_example_is_valid(kind: str, body: str) -> None:
    assert kind in KINDS, f"label the block ```json <kind>``` with one of {sorted(KINDS)}"
    validate, exact = KINDS[kind]
    model = validate(body)
    if exact:
        dumped = json.loads(model.model_dump_json())
        assert json.loads(body) == dumped, "show every field, as the server sends"


def test_every_event_type_has_an_example() -> None:
    shown = {e.type for e in _of_kind("event")}
    assert shown >= set(EVENT_TYPES), f"no example of {sorted(set(EVENT_TYPES) - shown)}"


def test_every_command_type_has_an_example() -> None:
    shown = {c.type for c in _of_kind("command")}
    assert shown >= set(COMMAND_TYPES), f"no example of {sorted(set(COMMAND_TYPES) - shown)}"


def test_every_server_frame_type_has_an_example() -> None:
    shown = {f.type for f in _of_kind("server-frame")}
    assert shown == {
        "snapshot",
        "snapshot_part",
        "event",
        "events",
        "caught_up",
        "heartbeat",
        "error",
    }


def test_snapshot_example_is_small() -> None:
    [snapshot] = [f for f in _of_kind("server-frame") if f.type == "snapshot"]
    assert len(snapshot.state.incidents) == 1
    assert len(snapshot.state.units) == 1


def test_problem_examples_agree_with_their_code() -> None:
    for problem in _of_kind("problem"):
        expected = Problem.of(problem.code, problem.detail)
        assert problem.status == PROBLEM_STATUS[problem.code]
        assert (problem.type, problem.title) == (expected.type, expected.title)


def test_command_result_examples_name_their_event() -> None:
    results = _of_kind("command-result")
    assert {r.replayed for r in results} == {False, True}
    for result in results:
        assert result.seq == result.event.seq


def test_every_problem_code_is_listed_with_its_status() -> None:
    for code in ProblemCode:
        row = re.compile(rf"^\| `{code.value}` \| {PROBLEM_STATUS[code]} \|", re.M)
        assert row.search(TEXT), f"problem table lacks `{code.value}` ({PROBLEM_STATUS[code]})"


def test_every_close_code_is_listed() -> None:
    for code in CloseCode:
        row = re.compile(rf"^\| {code.value} \| `{code.name}` \|", re.M)
        assert row.search(TEXT), f"close code table lacks {code.value} {code.name}"


def test_every_command_is_listed_with_who_may_issue_it() -> None:
    for command_type in COMMAND_TYPES:
        match = re.search(rf"^\| `{command_type}` \| `(\w+)` \| ([^|]+) \|", TEXT, re.M)
        assert match, f"command table lacks `{command_type}`"
        who = match[2]
        assert ("dispatcher" in who) == may_issue(Role.DISPATCHER, command_type)
        assert ("supervisor" in who) == may_issue(Role.SUPERVISOR, command_type)
        assert match[1] in EVENT_TYPES
