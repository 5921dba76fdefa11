"""The layers of docs/architecture.md hold: the import contract in pyproject.toml.

Each package may import only what its row of the layout table allows (import-linter's
forbidden contracts, over the whole import graph, third-party packages included). The
contract is itself tested: a wrong import added to the real graph must break the one
contract that forbids it, so a contract that silently checks nothing would fail here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from importlinter import api  # noqa: F401  (importing it configures import-linter)
from importlinter.application import use_cases
from importlinter.application.app_config import settings

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = str(ROOT / "pyproject.toml")


def contracts_hold(*ids: str) -> bool:
    """Whether the contracts with these ids hold (all of them when none is named).

    Runs import-linter as `lint-imports` does, its report going to the captured output.
    """
    return use_cases.lint_imports(
        PYPROJECT, limit_to_contracts=ids, cache_dir=None, no_logo=True, is_debug_mode=True
    )


@contextmanager
def one_more_import(importer: str, imported: str) -> Iterator[None]:
    """Check the contracts as if `importer` also imported `imported` (a scratch change)."""
    real = settings.GRAPH_BUILDER

    class WithTheImport:
        def build(self, **options):
            graph = real.build(**options)
            graph.add_import(
                importer=importer,
                imported=imported,
                line_number=1,
                line_contents=f"import {imported}",
            )
            return graph

    settings.configure(GRAPH_BUILDER=WithTheImport())
    try:
        yield
    finally:
        settings.configure(GRAPH_BUILDER=real)


def test_every_layer_keeps_to_its_contract() -> None:
    assert contracts_hold()


@pytest.mark.parametrize(
    ("importer", "imported", "broken"),
    [
        # the two that the layout was moved to end
        ("cadterm.tui.app", "cadterm.server.run", "tui"),
        ("cadterm.sim.simulator", "cadterm.server.app", "sim"),
        # and one of each other rule
        ("cadterm.protocol.fold", "httpx", "protocol"),
        ("cadterm.domain.recommend", "cadterm.client.stream", "domain"),
        ("cadterm.client.stream", "textual", "client"),
        ("cadterm.server.service", "cadterm.client.client", "server"),
        ("cadterm.tui.grammar.verbs", "textual", "grammar"),
        ("cadterm.server.run", "platformdirs", "server"),
        ("cadterm.themes", "cadterm.tui", "themes"),
        ("cadterm.server.service", "psycopg", "postgres"),
    ],
)
def test_a_wrong_import_breaks_its_contract(importer: str, imported: str, broken: str) -> None:
    # (Others may break too: a wrong import in protocol reaches everything above it.)
    assert contracts_hold(broken)
    with one_more_import(importer, imported):
        assert not contracts_hold(broken)
