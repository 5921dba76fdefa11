"""The local PostgreSQL for tests: one private schema per test, dropped afterwards.

`CADTERM_TEST_POSTGRES` names the server (CI's `.ci/run` starts the machine's and
exports it); without it the usual local one is tried. Tests that need it skip, saying
why, only when no PostgreSQL answers there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest

PG_URL = os.environ.get("CADTERM_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")

_unreachable: list[str] = []


def _why_unreachable() -> str | None:
    try:
        import psycopg
    except ImportError as exc:  # the test extras install it; say so if they did not
        return f"psycopg is not installed ({exc})"
    try:
        with psycopg.connect(PG_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL at {PG_URL} ({exc}); set CADTERM_TEST_POSTGRES to one"
    return None


def in_schema(url: str, schema: str) -> str:
    """`url` with its search path set to `schema` (cadterm's tables go there)."""
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh schema of this test's own."""
    if not _unreachable:
        _unreachable.append(_why_unreachable() or "")
    if _unreachable[0]:
        pytest.skip(_unreachable[0])
    import psycopg
    from psycopg import sql

    schema = f"cadterm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield in_schema(PG_URL, schema)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
