"""Editing server.toml with `cadterm operator` and `cadterm workstation`: nothing is lost.

Each test works on a real file in tmp_path through the command line's `main`, as an
administrator would.
"""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest

from cadterm.cli.main import main
from cadterm.protocol.domain import Role
from cadterm.server.auth import Authenticator, hash_token
from cadterm.server.config import OperatorEntry, ServerConfig, load_config, write_config

HASH = hash_token("an-existing-operators-token")

# A control room's own file: every table the server reads, and comments everywhere.
FULL = textwrap.dedent(
    f"""\
    # Northshire control room: cadterm backend.
    # Changes go through change control (ticket CR-1187).
    allowed_origins = ["https://cad.northshire.police.example"]  # the browser wallboard
    timezone = "Europe/London"
    snapshot_every = 500    # small: the disk is slow
    retain_events = 50000

    # Day shift
    [[operators]]
    id = "op1"
    name = "Dispatcher One"
    role = "dispatcher"   # bronze
    token_sha256 = "{HASH}"

    [[operators]]
    id = "sup1"
    name = "Supervisor One"
    role = "supervisor"
    token_sha256 = "{HASH}"

    # Desks in the main room
    [[workstations]]
    id = "CR1-WS04"
    description = "Control room 1, desk 4"
    operators = ["op1", "sup1"]

    [limits]
    # Raised for the Saturday night surge.
    command_rate = 30.0
    command_burst = 60

    [incident_types]
    BURGLARY = "Burglary"
    RTC = "Road traffic collision"   # injury or damage only
    CONCERN = "Concern for safety"

    [closing_codes]
    RESOLVED = "Resolved at scene"
    NFA = "No further action"
    """
)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "server.toml"
    path.parent.mkdir()
    path.write_text(FULL, encoding="utf-8")
    return path


def cli(*args: str, config: Path) -> int:
    return main([*args, "--config", str(config)])


def token_from(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("token: ")]
    return line.removeprefix("token: ")


def test_operator_add_keeps_every_table_and_comment_byte_for_byte(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            "operator",
            "add",
            "op7",
            "--name",
            "Night Seven",
            "--role",
            "dispatcher",
            config=config_path,
        )
        == 0
    )
    token = token_from(capsys.readouterr().out)
    after = config_path.read_text(encoding="utf-8")
    added = (
        "[[operators]]\n"
        'id = "op7"\n'
        'name = "Night Seven"\n'
        'role = "dispatcher"\n'
        f'token_sha256 = "{hash_token(token)}"\n'
        "\n"
    )
    # The new entry goes after the last operator; everything else is as it was.
    assert after.count(added) == 1
    assert after.replace(added, "", 1) == FULL
    assert after.index(added) < after.index("# Desks in the main room")
    config = load_config(config_path)
    assert [op.id for op in config.operators] == ["op1", "sup1", "op7"]
    assert config.incident_types["RTC"] == "Road traffic collision"
    assert config.limits.command_rate == 30.0
    assert Authenticator(config).operator_for(token).id == "op7"
    # And removing it again gives back the file exactly as it was.
    assert cli("operator", "remove", "op7", config=config_path) == 0
    assert config_path.read_text(encoding="utf-8") == FULL


def test_workstation_add_then_remove_gives_back_the_same_bytes(
    config_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        cli(
            "workstation",
            "add",
            "CR2-WS01",
            "--description",
            "Overflow room",
            "--operator",
            "op1",
            config=config_path,
        )
        == 0
    )
    config = load_config(config_path)
    assert config.workstations[-1].model_dump() == {
        "id": "CR2-WS01",
        "description": "Overflow room",
        "operators": ["op1"],
    }
    assert cli("workstation", "list", config=config_path) == 0
    listing = capsys.readouterr().out
    assert "CR2-WS01" in listing and "Overflow room" in listing and "CR1-WS04" in listing
    assert cli("workstation", "remove", "CR2-WS01", config=config_path) == 0
    assert config_path.read_text(encoding="utf-8") == FULL


@pytest.mark.parametrize(
    "args",
    [
        ("op8", "--name", "Evil\nrole = 'supervisor'"),
        ("op8", "--name", "Bell\x07ringer"),
        ("op8", "--name", "Tab\tname"),
        ("op\n8", "--name", "Fine Name"),
        ("op/8", "--name", "Fine Name"),
        ("op8\x1b[2J", "--name", "Fine Name"),
    ],
)
def test_an_invalid_id_or_name_is_refused_and_the_file_untouched(
    config_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
) -> None:
    before = config_path.stat()
    assert cli("operator", "add", *args, "--role", "dispatcher", config=config_path) == 2
    err = capsys.readouterr().err
    assert "invalid operator" in err
    assert config_path.read_text(encoding="utf-8") == FULL
    assert config_path.stat().st_mtime_ns == before.st_mtime_ns
    assert config_path.stat().st_ino == before.st_ino
    assert sorted(p.name for p in config_path.parent.iterdir()) == ["server.toml"]


def test_an_invalid_workstation_is_refused(config_path: Path, capsys) -> None:
    assert cli("workstation", "add", "CR1/WS09", config=config_path) == 2
    assert (
        cli("workstation", "add", "CR1-WS09", "--description", "two\nlines", config=config_path)
        == 2
    )
    assert cli("workstation", "add", "CR1-WS04", config=config_path) == 2  # already there
    assert "already exists" in capsys.readouterr().err
    assert config_path.read_text(encoding="utf-8") == FULL


def test_operator_remove_and_role_change_one_entry_each(config_path: Path, capsys) -> None:
    assert cli("operator", "role", "op1", "read_only", config=config_path) == 0
    after = config_path.read_text(encoding="utf-8")
    assert after == FULL.replace('role = "dispatcher"   # bronze', 'role = "read_only"   # bronze')
    assert cli("operator", "remove", "sup1", config=config_path) == 0
    config = load_config(config_path)
    assert [(op.id, op.role) for op in config.operators] == [("op1", Role.READ_ONLY)]
    assert "[closing_codes]" in config_path.read_text(encoding="utf-8")
    assert cli("operator", "remove", "nobody", config=config_path) == 2
    assert "no operator 'nobody'" in capsys.readouterr().err


def test_a_broken_file_is_reported_and_left_alone(config_path: Path, capsys) -> None:
    broken = FULL.replace("[limits]", "[limits\n")
    config_path.write_text(broken, encoding="utf-8")
    assert (
        cli("operator", "add", "op9", "--name", "Nine", "--role", "dispatcher", config=config_path)
        == 2
    )
    assert "cannot read config file" in capsys.readouterr().err
    assert config_path.read_text(encoding="utf-8") == broken


def test_an_edit_that_would_make_the_file_invalid_is_refused(config_path: Path, capsys) -> None:
    # The file holds a mistake the server would refuse: the edit must not bless it.
    bad = FULL.replace("command_burst = 60", "command_burst = 0")
    config_path.write_text(bad, encoding="utf-8")
    assert cli("workstation", "add", "CR1-WS09", config=config_path) == 2
    err = capsys.readouterr().err
    assert "would be invalid" in err and "limits.command_burst" in err
    assert config_path.read_text(encoding="utf-8") == bad


def test_edited_file_is_private_and_replaced_whole(tmp_path: Path, config_path: Path) -> None:
    os.chmod(config_path, 0o644)
    inode = config_path.stat().st_ino
    assert cli("workstation", "add", "CR1-WS09", config=config_path) == 0
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert config_path.stat().st_ino != inode  # renamed into place, not written over
    assert sorted(p.name for p in config_path.parent.iterdir()) == ["server.toml"]


def test_operator_add_without_a_file_creates_a_private_one(tmp_path: Path, capsys) -> None:
    path = tmp_path / "new" / "server.toml"
    assert (
        cli("operator", "add", "op1", "--name", "First", "--role", "supervisor", config=path) == 0
    )
    config = load_config(path)
    assert [op.id for op in config.operators] == ["op1"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_write_config_round_trips_a_whole_config(tmp_path: Path) -> None:
    config = ServerConfig(
        operators=[OperatorEntry(id="op1", name="One", role=Role.DISPATCHER, token_sha256=HASH)],
        allowed_origins=["https://a.example"],
    )
    path = tmp_path / "server.toml"
    write_config(path, config)
    assert load_config(path) == config


def test_a_hand_edited_duplicate_id_is_refused_by_name(config_path: Path, capsys) -> None:
    doubled = FULL + '\n[[workstations]]\nid = "CR1-WS04"\n'
    config_path.write_text(doubled, encoding="utf-8")
    assert cli("workstation", "list", config=config_path) == 2
    assert "workstation 'CR1-WS04' is listed twice" in capsys.readouterr().err
