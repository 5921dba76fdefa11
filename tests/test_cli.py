"""The `cadterm` command line: schema export, operators, locations, version, server args."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from cadterm.cli.main import DEFAULT_PORT, main
from cadterm.protocol.domain import Role
from cadterm.protocol.schema import render_schemas
from cadterm.server.auth import Authenticator
from cadterm.server.config import load_config


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m cadterm.cli.main ARGS` in a child process, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "cadterm.cli.main", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def token_from(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("token: ")]
    assert len(lines) == 1, output
    return lines[0].removeprefix("token: ").strip()


# --- version and usage -------------------------------------------------------------------


def test_version_in_subprocess() -> None:
    result = run_cli("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "cadterm 0.1.0"


def test_no_subcommand_opens_the_console_and_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Bare `cadterm` is the console; with no backend configured it says how to give one.
    monkeypatch.setenv("CADTERM_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.delenv("CADTERM_URL", raising=False)
    assert main([]) == 2
    assert "no backend URL" in capsys.readouterr().err


def test_console_without_token_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CADTERM_CONFIG_DIR", str(tmp_path / "conf"))
    monkeypatch.delenv("CADTERM_TOKEN", raising=False)
    assert main(["console", "http://127.0.0.1:9"]) == 2
    assert "no token" in capsys.readouterr().err


def test_bad_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--port", "70000"]) == 2
    assert "port must be between 0 and 65535" in capsys.readouterr().err


# --- schema ------------------------------------------------------------------------------


def test_schema_writes_every_document_and_removes_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "schema"
    out.mkdir()
    (out / "retired.json").write_text("{}\n")
    (out / "README.txt").write_text("kept: not a schema\n")

    assert main(["schema", "--out", str(out)]) == 0

    expected = render_schemas()
    written = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.json")}
    assert written == expected
    assert (out / "README.txt").exists()
    printed = capsys.readouterr().out
    for name in expected:
        assert f"wrote {out / name}" in printed
    assert f"removed {out / 'retired.json'}" in printed


def test_schema_creates_missing_directory_in_subprocess(tmp_path: Path) -> None:
    out = tmp_path / "nested" / "schema"
    result = run_cli("schema", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == sorted(render_schemas())


def test_schema_defaults_to_docs_schema_in_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["schema"]) == 0
    assert sorted(p.name for p in (tmp_path / "docs" / "schema").iterdir()) == sorted(
        render_schemas()
    )


# --- operators ---------------------------------------------------------------------------


def test_operator_add_stores_only_the_hash_and_token_authenticates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "server.toml"
    code = main(
        [
            "operator",
            "add",
            "sup1",
            "--name",
            "Sgt Patel",
            "--role",
            "supervisor",
            "--config",
            str(config_path),
        ]
    )
    assert code == 0
    captured = capsys.readouterr()
    token = token_from(captured.out)
    assert "not stored" in captured.err

    text = config_path.read_text(encoding="utf-8")
    assert token not in text
    config = load_config(config_path)
    assert [(op.id, op.name, op.role) for op in config.operators] == [
        ("sup1", "Sgt Patel", Role.SUPERVISOR)
    ]
    operator = Authenticator(config).operator_for(token)
    assert operator is not None
    assert (operator.id, operator.role) == ("sup1", Role.SUPERVISOR)
    assert Authenticator(config).operator_for(token + "x") is None
    if os.name == "posix":
        assert config_path.stat().st_mode & 0o077 == 0


def test_operator_add_appends_and_list_shows_all(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = str(tmp_path / "server.toml")
    assert (
        main(
            [
                "operator",
                "add",
                "op1",
                "--name",
                "Dispatcher One",
                "--role",
                "dispatcher",
                "--config",
                config_path,
            ]
        )
        == 0
    )
    first = token_from(capsys.readouterr().out)
    assert (
        main(
            [
                "operator",
                "add",
                "ro1",
                "--name",
                "Observer",
                "--role",
                "read_only",
                "--config",
                config_path,
            ]
        )
        == 0
    )
    second = token_from(capsys.readouterr().out)
    assert first != second

    auth = Authenticator(load_config(config_path))
    assert auth.operator_for(first).id == "op1"
    assert auth.operator_for(second).id == "ro1"

    assert main(["operator", "list", "--config", config_path]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "NAME", "ROLE"]
    assert lines[1].split() == ["op1", "Dispatcher", "One", "dispatcher"]
    assert lines[2].split() == ["ro1", "Observer", "read_only"]
    assert not any(first in line or second in line for line in lines)


def test_duplicate_operator_is_refused_in_subprocess(tmp_path: Path) -> None:
    config_path = str(tmp_path / "server.toml")
    first = run_cli(
        "operator", "add", "op1", "--name", "A", "--role", "dispatcher", "--config", config_path
    )
    assert first.returncode == 0, first.stderr
    before = Path(config_path).read_text(encoding="utf-8")

    again = run_cli(
        "operator", "add", "op1", "--name", "B", "--role", "supervisor", "--config", config_path
    )
    assert again.returncode == 2
    assert "token" not in again.stdout
    err_lines = again.stderr.strip().splitlines()
    assert len(err_lines) == 1
    assert "'op1' already exists" in err_lines[0]
    assert Path(config_path).read_text(encoding="utf-8") == before


def test_invalid_operator_id_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "server.toml"
    code = main(
        [
            "operator",
            "add",
            "x" * 65,
            "--name",
            "Long",
            "--role",
            "dispatcher",
            "--config",
            str(config_path),
        ]
    )
    assert code == 2
    assert "invalid operator" in capsys.readouterr().err
    assert not config_path.exists()


def test_unknown_role_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "operator",
            "add",
            "op1",
            "--name",
            "A",
            "--role",
            "chief",
            "--config",
            str(tmp_path / "server.toml"),
        ]
    )
    assert code == 2
    assert "invalid choice: 'chief'" in capsys.readouterr().err


def test_operator_list_without_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["operator", "list", "--config", str(tmp_path / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cadterm: error: no server config at")
    assert "\n" not in err


def test_broken_config_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_path = tmp_path / "server.toml"
    config_path.write_text("[[operators]]\nid = 'op1'\n")
    assert main(["operator", "list", "--config", str(config_path)]) == 2
    assert (
        main(
            [
                "operator",
                "add",
                "op2",
                "--name",
                "B",
                "--role",
                "dispatcher",
                "--config",
                str(config_path),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "invalid config file" in err
    assert "Traceback" not in err


def test_operator_commands_use_config_dir_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CADTERM_CONFIG_DIR", str(tmp_path / "conf"))
    assert main(["operator", "add", "op1", "--name", "A", "--role", "dispatcher"]) == 0
    assert (tmp_path / "conf" / "server.toml").exists()


# --- locate ------------------------------------------------------------------------------


def test_locate_honours_env_overrides(tmp_path: Path) -> None:
    data = tmp_path / "data"
    conf = tmp_path / "conf"
    result = run_cli("locate", env={"CADTERM_DATA_DIR": str(data), "CADTERM_CONFIG_DIR": str(conf)})
    assert result.returncode == 0, result.stderr
    found = dict(line.split(":", 1) for line in result.stdout.splitlines())
    found = {key.strip(): value.strip() for key, value in found.items()}
    assert found == {
        "data dir": str(data),
        "database": str(data / "cadterm.db"),
        "config dir": str(conf),
        "server config": str(conf / "server.toml"),
        "console settings": str(conf / "console.toml"),
        "console journal": str(data / "journal.db"),
        "last known picture": str(data / "picture.json"),
        "console log": str(data / "console.log"),
    }
    assert not data.exists() and not conf.exists()  # locating creates nothing


def test_locate_defaults_to_platform_dirs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import platformdirs

    monkeypatch.delenv("CADTERM_DATA_DIR", raising=False)
    monkeypatch.delenv("CADTERM_CONFIG_DIR", raising=False)
    assert main(["locate"]) == 0
    out = capsys.readouterr().out
    assert str(Path(platformdirs.user_data_dir("cadterm")) / "cadterm.db") in out
    assert str(Path(platformdirs.user_config_dir("cadterm")) / "server.toml") in out


# --- server (arguments only; the server itself is tested elsewhere) -----------------------


@pytest.fixture
def fake_serve(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, object]]:
    """Replace `cadterm.server.run` with a stub that records how `serve` was called."""
    calls: list[dict[str, object]] = []

    def serve(
        *,
        db: str | Path,
        host: str,
        port: int,
        config_path: Path,
        log_level: str = "info",
        node: str | None = None,
    ) -> int:
        calls.append({"db": os.fspath(db), "host": host, "port": port, "config_path": config_path})
        calls[-1]["log_level"] = log_level
        calls[-1]["node"] = node
        return 0

    stub = types.ModuleType("cadterm.server.run")
    stub.serve = serve  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cadterm.server.run", stub)
    return calls


def test_server_defaults(
    fake_serve: list[dict[str, object]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CADTERM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CADTERM_CONFIG_DIR", str(tmp_path / "conf"))
    assert main(["server"]) == 0
    assert fake_serve == [
        {
            "db": str(tmp_path / "data" / "cadterm.db"),
            "host": "127.0.0.1",
            "port": DEFAULT_PORT,
            "config_path": tmp_path / "conf" / "server.toml",
            "log_level": "info",
            "node": None,
        }
    ]
    assert DEFAULT_PORT == 8740


def test_server_flags(fake_serve: list[dict[str, object]], tmp_path: Path) -> None:
    args = [
        "server",
        "--db",
        str(tmp_path / "x.db"),
        "--host",
        "0.0.0.0",
        "--port",
        "9000",
        "--config",
        str(tmp_path / "s.toml"),
        "--log-level",
        "debug",
        "--node",
        "cad-b",
    ]
    assert main(args) == 0
    assert fake_serve == [
        {
            "db": str(tmp_path / "x.db"),
            "host": "0.0.0.0",
            "port": 9000,
            "config_path": tmp_path / "s.toml",
            "log_level": "debug",
            "node": "cad-b",
        }
    ]
