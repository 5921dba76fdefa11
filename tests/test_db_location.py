"""`--db`: an SQLite file path or a PostgreSQL URL, never one taken for the other.

`parse_db` on its own first (paths, URLs, and every refusal saying what to give
instead), then `cadterm server` refusing a misspelt URL without making a folder of it,
and giving up with a clear message on a PostgreSQL that does not answer.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cadterm.cli.main import main
from cadterm.server.store.location import DbLocation, StoreLocationError, parse_db

#: Bounds a server start that must give up; reached only on a failure.
GIVE_UP_TIMEOUT = 60.0


@pytest.mark.parametrize(
    ("given", "path"),
    [
        ("events.db", Path("events.db")),
        ("data/cad/events.db", Path("data/cad/events.db")),
        ("../shared/events.db", Path("../shared/events.db")),
        ("/var/lib/cadterm/events.db", Path("/var/lib/cadterm/events.db")),
        ("./postgresql:foo", Path("postgresql:foo")),  # ./ makes a colon plain
        ("./backup:2026-11-27.db", Path("backup:2026-11-27.db")),
        ("sqlite:///var/lib/cadterm/events.db", Path("/var/lib/cadterm/events.db")),
        (Path("postgresql:foo"), Path("postgresql:foo")),  # a Path is always a path
    ],
)
def test_a_path_is_an_sqlite_file(given: str | Path, path: Path) -> None:
    location = parse_db(given)
    assert location == DbLocation(path=path)
    assert not location.is_postgres
    assert str(location) == str(path)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://cadterm@db-host:5432/cadterm",
        "postgres://cadterm@db-host/cadterm",
        "postgresql://cadterm@db-host/cadterm?options=-csearch_path%3Dcontrol_room",
        "POSTGRESQL://cadterm@db-host/cadterm",
        "postgresql:///cadterm",  # the local server's socket
    ],
)
def test_a_postgresql_url_is_kept_as_given(url: str) -> None:
    location = parse_db(url)
    assert location == DbLocation(url=url)
    assert location.is_postgres


def test_the_password_is_left_out_when_a_url_is_shown() -> None:
    location = parse_db("postgresql://cadterm:s3cret-word@db-host:5433/cadterm")
    assert str(location) == "postgresql://cadterm@db-host:5433/cadterm"


@pytest.mark.parametrize(
    ("given", "advice"),
    [
        ("postgresql:foo", r"a PostgreSQL URL starts postgresql:// \(for example"),
        ("postgres:cadterm@db-host", r"a PostgreSQL URL starts postgres://"),
        ("postgresql:/db-host/cadterm", r"a PostgreSQL URL starts postgresql://"),
        ("sqlite:events.db", r"sqlite:///absolute/path\.db; or give the file's path on its own"),
        ("sqlite://events.db", r"sqlite:///absolute/path\.db"),
        ("sqlite:///", r"sqlite:///absolute/path\.db"),
        ("file:///var/lib/cadterm/events.db", r"give the file's path on its own"),
        ("mysql://cadterm@db-host/cadterm", r"'mysql' is not a database cadterm knows; give"),
        ("postgresq://cadterm@db-host/cadterm", r"'postgresq' is not a database cadterm knows"),
        ("backup:2026.db", r"a file name with a colon in it: write \./ before it"),
        ("", r"--db is empty: give an SQLite file path or a postgresql:// URL"),
        ("   ", r"--db is empty"),
    ],
)
def test_anything_else_is_refused_saying_what_to_give(given: str, advice: str) -> None:
    with pytest.raises(StoreLocationError, match=advice) as info:
        parse_db(given)
    if given.strip():
        assert repr(given) in str(info.value)  # the message quotes what was given


# --- without psycopg ----------------------------------------------------------------------

#: Run with psycopg hidden, as when cadterm is installed without its postgresql extra.
WITHOUT_PSYCOPG = """
import sys
sys.modules["psycopg"] = sys.modules["psycopg_pool"] = None  # importing them now fails
import cadterm.server.run
from cadterm.server.store import StoreError
from cadterm.server.store.location import open_history, open_store, parse_db

store = open_store(parse_db(sys.argv[1]), retain_events=10)
with open_history(store) as history:
    print("sqlite history", history.count())
store.close()
try:
    open_store(parse_db("postgresql://cadterm@127.0.0.1/cadterm"), retain_events=10)
except StoreError as exc:
    print("postgresql refused:", exc)
"""


def test_sqlite_needs_no_psycopg_and_postgresql_says_what_to_install(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PSYCOPG, str(tmp_path / "events.db")],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GIVE_UP_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "sqlite history 0"
    assert lines[1].startswith("postgresql refused: --db names a PostgreSQL database")
    assert "pip install 'cadterm[postgresql]'" in lines[1]


# --- cadterm server -----------------------------------------------------------------------


def test_server_refuses_a_misspelt_url_and_makes_no_folder_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "server.toml"
    status = main(["server", "--db", "postgresql:foo", "--config", str(config), "--port", "0"])
    assert status == 2
    err = capsys.readouterr().err
    assert "'postgresql:foo'" in err and "a PostgreSQL URL starts postgresql://" in err
    assert list(tmp_path.iterdir()) == []  # no postgresql: folder, and no config either


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.mark.slow
def test_server_gives_up_clearly_on_a_postgresql_that_does_not_answer(
    tmp_path: Path, refused_port: int
) -> None:
    url = f"postgresql://postgres:s3cret-word@127.0.0.1:{refused_port}/x"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cadterm.cli.main",
            "server",
            "--db",
            url,
            "--config",
            str(tmp_path / "server.toml"),
            "--port",
            "0",
        ],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=GIVE_UP_TIMEOUT,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert (
        f"cadterm server: cannot reach PostgreSQL at postgresql://postgres@127.0.0.1:{refused_port}/x"
        in done.stderr
    )
    assert "refused" in done.stderr.lower()
    assert "s3cret" not in done.stderr + done.stdout
    assert "cadterm server on" not in done.stdout  # it never said it was serving
    assert not (tmp_path / "postgresql:").exists()
