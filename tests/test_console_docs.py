"""docs/console.md stays in step with the console: every verb and every key binding id."""

from __future__ import annotations

from pathlib import Path

from cadterm.tui.app import CadApp
from cadterm.tui.board import Board
from cadterm.tui.command_line import CommandInput
from cadterm.tui.grammar import VERBS

GUIDE = (Path(__file__).parent.parent / "docs" / "console.md").read_text(encoding="utf-8")


def test_every_verb_and_alias_is_documented() -> None:
    for name, verb in VERBS.items():
        assert f"| `{name}` |" in GUIDE, f"verb {name} missing from docs/console.md"
        for alias in verb.aliases:
            assert f"`{alias}`" in GUIDE, f"alias {alias} of {name} missing"


def test_every_binding_id_is_documented() -> None:
    bindings = [*CadApp.BINDINGS, *Board.BINDINGS, *CommandInput.BINDINGS]
    for binding in bindings:
        assert binding.id, f"binding {binding.key} has no id: users cannot remap it"
        assert f"`{binding.id}`" in GUIDE, f"binding id {binding.id} missing from the guide"


def test_no_default_binding_takes_a_multiplexer_chord() -> None:
    taken = {"ctrl+a", "ctrl+b", "ctrl+d", "ctrl+k"}
    for binding in [*CadApp.BINDINGS, *Board.BINDINGS, *CommandInput.BINDINGS]:
        keys = {key.strip() for key in binding.key.split(",")}
        assert not keys & taken, f"{binding.id} uses {keys & taken}"
