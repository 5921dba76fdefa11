"""The JSON Schemas committed under docs/schema match the protocol models."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadterm.protocol.schema import render_schemas

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "docs" / "schema"
STALE = "docs/schema is out of date: run `cadterm schema`"

RENDERED = render_schemas()


@pytest.mark.parametrize("name", sorted(RENDERED))
def test_committed_schema_matches_the_models(name: str) -> None:
    path = SCHEMA_DIR / name
    if not path.is_file():
        pytest.fail(f"{STALE} ({path.name} is missing)")
    if path.read_bytes().decode("utf-8") != RENDERED[name]:
        pytest.fail(f"{STALE} ({path.name} differs)")


def test_no_stale_schema_files() -> None:
    extra = sorted(p.name for p in SCHEMA_DIR.iterdir() if p.name not in RENDERED)
    if extra:
        pytest.fail(f"{STALE} (no longer generated: {', '.join(extra)})")
