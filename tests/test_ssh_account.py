"""`cadterm ssh-account`: a console-only SSH account's settings and its sshd block."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from cadterm.cli.ssh_account import (
    ConsoleAccount,
    python_problem,
    sshd_block,
    write_account_settings,
)
from cadterm.tui.settings import load_settings

CADTERM = [sys.executable, "-m", "cadterm.cli.main"]
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)


def ssh_account(*args: str, token: str = "tok-1") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CADTERM, "ssh-account", *args],
        input=token + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_account_gets_private_settings_and_a_forced_command(tmp_path: Path) -> None:
    home = tmp_path / "alice"
    home.mkdir()
    done = ssh_account(
        "alice",
        "--home",
        str(home),
        "--url",
        "http://10.0.0.5:8740",
        "--url",
        "http://10.0.0.6:8740",
        "--workstation",
        "CR1-WS04",
    )
    assert done.returncode == 0, done.stderr
    path = home / ".config" / "cadterm" / "console.toml"
    assert f"wrote {path} (mode 0640)" in done.stderr
    assert (mode(path), mode(path.parent)) == (0o640, 0o750)
    settings = load_settings(path, environ={})
    assert settings.url == ["http://10.0.0.5:8740", "http://10.0.0.6:8740"]
    assert (settings.token, settings.workstation) == ("tok-1", "CR1-WS04")
    block = done.stdout
    assert block.startswith("# cadterm console-only account: alice\nMatch User alice\n")
    assert "    ForceCommand " in block and block.split("ForceCommand ")[1].startswith("/")
    assert "DisableForwarding yes" in block and "PermitTTY yes" in block


def test_rewriting_keeps_what_the_engineer_added(tmp_path: Path) -> None:
    account = ConsoleAccount("bob", tmp_path, ("http://a:8740",), "one", None)
    path = write_account_settings(account)
    path.write_text(path.read_text() + '# the night shift\ntheme = "cadterm-ansi"\n')
    write_account_settings(ConsoleAccount("bob", tmp_path, ("http://b:8740",), "two", None))
    text = path.read_text()
    assert "# the night shift" in text
    settings = load_settings(path, environ={})
    assert (settings.url, settings.token, settings.theme) == (
        ["http://b:8740"],
        "two",
        "cadterm-ansi",
    )


@pytest.mark.parametrize(
    ("args", "token", "message"),
    [
        (["nobody-here-xyz", "--url", "http://a:1"], "t", "no account named 'nobody-here-xyz'"),
        (["x", "--home", "HOME", "--url", "http://a:1"], "", "no token"),
        (["x", "--home", "HOME", "--url", "http://a:1", "--workstation", "a/b"], "t", "invalid"),
        # A line break in the name would write a directive of its own into sshd_config.
        (["root\nForceCommand /bin/sh", "--home", "HOME", "--url", "http://a:1"], "t", "login"),
        (["a b", "--home", "HOME", "--url", "http://a:1"], "t", "not a login name"),
        (["*", "--home", "HOME", "--url", "http://a:1"], "t", "not a login name"),
        (["x", "--home", "HOME", "--url", "htp:/x"], "t", "http://"),
        (["x", "--home", "HOME", "--url", "http://a:99999"], "t", "out of range"),
        (["x", "--home", "HOME", "--url", "http://a:1"], "tök", "printable ASCII"),
    ],
)
def test_what_cannot_work_is_refused(tmp_path: Path, args, token, message) -> None:
    done = ssh_account(*[str(tmp_path) if a == "HOME" else a for a in args], token=token)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / ".config").exists()


def test_a_token_file_of_several_lines_is_refused(tmp_path: Path) -> None:
    tokens = tmp_path / "token"
    tokens.write_text("tok-1\ntok-2\n", encoding="utf-8")
    done = ssh_account(
        "x", "--home", str(tmp_path), "--url", "http://a:1", "--token-file", str(tokens)
    )
    assert done.returncode == 2 and "2 lines" in done.stderr, done.stderr
    assert not (tmp_path / ".config").exists()


def test_the_workstation_may_be_left_out(tmp_path: Path) -> None:
    done = ssh_account("alice", "--home", str(tmp_path), "--url", "http://10.0.0.5:8740")
    assert done.returncode == 0, done.stderr
    assert "Match User alice\n" in done.stdout


def test_the_sshd_block_refuses_a_name_that_would_change_it() -> None:
    with pytest.raises(ValueError, match="login name"):
        sshd_block("root\nForceCommand /bin/sh", "/usr/bin/cadterm console")


def test_a_python_other_accounts_cannot_reach_is_named(tmp_path: Path) -> None:
    private = tmp_path / "private"
    (private / "bin").mkdir(parents=True)
    python = private / "bin" / "python3"
    python.write_text("")
    python.chmod(0o755)
    private.chmod(0o700)
    try:
        problem = python_problem(str(python))
    finally:
        private.chmod(0o755)
    assert problem is not None and f"{private} is not executable by other accounts" in problem


@pytest.mark.skipif(SSHD is None, reason="sshd is not installed (apt-get install openssh-server)")
def test_sshd_accepts_the_block(tmp_path: Path) -> None:
    privilege_separation = Path("/run/sshd")  # sshd -t insists on it, as its service does
    if not privilege_separation.exists():
        if os.geteuid() != 0:
            pytest.skip("sshd needs /run/sshd, which only root can make")
        privilege_separation.mkdir(mode=0o755, exist_ok=True)
    key = tmp_path / "host_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=60
    )
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {key}\nPidFile none\n" + sshd_block("alice", "/opt/cadterm/bin/cadterm console")
    )
    done = subprocess.run(
        [SSHD, "-t", "-f", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
