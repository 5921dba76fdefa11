"""Command drafts: every command less its key and workstation, checked by the same rules.

The examples are the commands of docs/protocol.md (one at least of every type), so each
draft model is tried on a command the server documents.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from cadterm.protocol.commands import COMMAND_ADAPTER, COMMAND_TYPES, Command
from cadterm.protocol.drafts import DRAFT_ADAPTER, DRAFT_TYPES, CommandDraft, draft, draft_of

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocol.md"
_COMMAND_BLOCK = re.compile(r"^```json command[ \t]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)
EXAMPLES: list[Command] = [
    COMMAND_ADAPTER.validate_json(match["body"])
    for match in _COMMAND_BLOCK.finditer(DOC.read_text(encoding="utf-8"))
]
KEYING = {"idempotency_key", "workstation"}


def test_every_command_type_has_a_draft_with_the_same_fields_less_the_keying() -> None:
    assert set(DRAFT_TYPES) == set(COMMAND_TYPES)
    assert {c.type for c in EXAMPLES} == set(COMMAND_TYPES)
    for kind, command_type in COMMAND_TYPES.items():
        fields = DRAFT_TYPES[kind].model_fields
        assert set(fields) == set(command_type.model_fields) - KEYING, kind
        for name, field in fields.items():
            assert field.annotation == command_type.model_fields[name].annotation, (kind, name)
            assert field.metadata == command_type.model_fields[name].metadata, (kind, name)


@pytest.mark.parametrize("command", EXAMPLES, ids=[c.type for c in EXAMPLES])
def test_a_draft_of_any_command_keys_back_into_it(command: Command) -> None:
    drafted = draft_of(command)
    assert isinstance(drafted, DRAFT_TYPES[command.type])
    assert drafted.keyed(command.idempotency_key, command.workstation) == command
    # The same fields, given as plain data, make the same draft.
    given = command.model_dump(exclude=KEYING, exclude_unset=True)
    assert draft(**given) == DRAFT_ADAPTER.validate_python(given) == drafted
    # Keyed, it goes out exactly as the command would.
    keyed = draft(**given).keyed(command.idempotency_key, command.workstation)
    assert keyed.model_dump_json(exclude_none=True) == command.model_dump_json(exclude_none=True)


def test_a_draft_takes_no_key_or_workstation() -> None:
    for name in KEYING:
        with pytest.raises(ValidationError, match=name):
            draft("book_off", callsign="AB12", **{name: "ws-1" * 4})


def test_a_draft_refuses_what_the_command_refuses_in_the_same_words() -> None:
    fields = {"callsign": "AB12", "state": 11}
    with pytest.raises(ValidationError) as as_command:
        COMMAND_TYPES["set_unit_state"](idempotency_key="k" * 16, workstation="ws-1", **fields)
    with pytest.raises(ValidationError) as as_draft:
        draft("set_unit_state", **fields)
    assert [(e["loc"], e["msg"]) for e in as_draft.value.errors()] == [
        (e["loc"], e["msg"]) for e in as_command.value.errors()
    ]
    with pytest.raises(ValueError, match="unknown command type 'nosuch'"):
        draft("nosuch")


def test_keying_checks_the_key_and_the_workstation() -> None:
    unit = draft("book_off", callsign="AB12")
    assert isinstance(unit, CommandDraft)
    with pytest.raises(ValidationError, match="idempotency_key"):
        unit.keyed("short", "ws-1")
    with pytest.raises(ValidationError, match="workstation"):
        unit.keyed("k" * 16, "not a workstation!")
    command = unit.keyed("k" * 16, "ws-1")
    assert COMMAND_ADAPTER.validate_json(command.model_dump_json()) == command
