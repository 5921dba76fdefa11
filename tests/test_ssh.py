"""A dispatcher over SSH: a real sshd, a console-only account, a pty at 80x24.

sshd runs in inetd mode (`sshd -i`) as the ssh client's ProxyCommand, with this test's
own config, host key and authorised key: no port, no daemon left behind. The account is
the one running the tests (sshd can only switch to another user as root, and a test may
not make accounts), set up by `cadterm ssh-account`'s own settings writer and sshd block.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_terminal import TOKEN, Tmux, _post, _state, server, tmux, wait_for  # noqa: F401

from cadterm.cli.ssh_account import ConsoleAccount, sshd_block, write_account_settings

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        SSHD is None, reason="sshd is not installed (apt-get install openssh-server)"
    ),
    pytest.mark.skipif(shutil.which("ssh") is None, reason="ssh is not installed"),
    pytest.mark.skipif(
        os.geteuid() != 0, reason="sshd -i needs root to start a session for an account"
    ),
]


class Login:
    """How to reach the console-only account: an ssh command line."""

    def __init__(self, home: Path, options: list[str], host: str) -> None:
        self.home = home
        self.options = options
        self.host = host

    def ssh(self, *flags: str, command: tuple[str, ...] = ()) -> list[str]:
        return ["ssh", *self.options, *flags, self.host, *command]

    def leftovers(self) -> list[str]:
        """Processes still running that belong to this login (its home is in their args)."""
        found = subprocess.run(
            ["pgrep", "-af", str(self.home)], capture_output=True, text=True, timeout=10
        )
        return [line for line in found.stdout.splitlines() if "pgrep" not in line]


@pytest.fixture
def login(server: str, tmp_path: Path) -> Iterator[Login]:  # noqa: F811
    privilege_separation = Path("/run/sshd")
    privilege_separation.mkdir(mode=0o755, exist_ok=True)
    home = tmp_path / "dispatcher"
    home.mkdir()
    for name in ("host_key", "user_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / name)],
            check=True,
            timeout=60,
        )
    (tmp_path / "authorized_keys").write_text((tmp_path / "user_key.pub").read_text())
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    write_account_settings(ConsoleAccount(user, home, (server,), TOKEN, workstation="ws-test"))
    cadterm = Path(sys.executable).parent / "cadterm"
    console = (
        f"env CADTERM_CONFIG_DIR={home}/.config/cadterm CADTERM_DATA_DIR={home}/data "
        f"{cadterm} console --journal {home}/data/journal.db"  # its home shows in ps
    )
    config = tmp_path / "sshd_config"
    config.write_text(
        f"HostKey {tmp_path / 'host_key'}\n"
        "PidFile none\n"
        f"AuthorizedKeysFile {tmp_path / 'authorized_keys'}\n"
        "StrictModes no\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "UsePAM no\n"
        "Subsystem sftp internal-sftp\n"
        "LogLevel ERROR\n" + sshd_block(user, console)
    )
    options = [
        "-F", "/dev/null",
        "-o", f"ProxyCommand={SSHD} -i -f {config}",
        "-o", f"UserKnownHostsFile={tmp_path / 'known_hosts'}",
        "-o", "StrictHostKeyChecking=no",
        "-o", "BatchMode=yes",
        "-o", "IdentitiesOnly=yes",
        "-o", "LogLevel=ERROR",
        "-i", str(tmp_path / "user_key"),
    ]  # fmt: skip
    session = Login(home, options, f"{user}@cadterm-console")
    try:
        yield session
    finally:
        for line in session.leftovers():
            pid = int(line.split()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)


def test_a_dispatcher_works_a_call_over_ssh_and_leaves_nothing(
    login: Login,
    server: str,  # noqa: F811
    tmux: Tmux,  # noqa: F811
) -> None:
    _post(
        server,
        type="book_on",
        callsign="NC11",
        unit_type="patrol_car",
        home_sector="North",
        position={"lat": 53.80, "lon": -1.55},
    )
    tmux.start(shlex.join(login.ssh("-tt")))
    wait_for(lambda: "| LIVE |" in tmux.screen(), 30, "the console to go live over ssh")
    assert any("cadterm console" in line for line in login.leftovers())  # the probe sees it
    tmux.type("n 2 concern 3 Market Place")
    wait_for(lambda: "3 Market Place" in tmux.screen(), 15, "the new incident")
    [reference] = _state(server)["incidents"]
    tmux.type("a NC11")
    wait_for(lambda: "done: assign NC11" in tmux.screen(), 15, "the assignment")
    tmux.type("cl resolved all parties spoken to")
    wait_for(lambda: "done: close" in tmux.screen(), 15, "the close")
    incident = _state(server)["incidents"][reference]
    assert incident["status"] == "closed"
    assert [entry["kind"] for entry in incident["chronology"]] == [
        "incident_created",
        "unit_assigned",
        "incident_closed",
    ]
    tmux.key("C-q")
    wait_for(lambda: not tmux.alive(), 15, "the ssh session to end with the console")
    wait_for(lambda: login.leftovers() == [], 15, "every process of the session to end")


@pytest.mark.parametrize(
    "how",
    [("-T",), ("-T", "--", "some", "other", "command"), ("sftp",)],
    ids=["ssh-T", "a-command", "sftp"],
)
def test_without_a_pty_the_console_refuses_and_leaves_nothing(login: Login, how) -> None:
    if how == ("sftp",):
        if shutil.which("sftp") is None:
            pytest.skip("sftp is not installed")
        argv = ["sftp", "-b", "-", *login.options, login.host]
    else:
        flag, *command = how
        argv = login.ssh(flag, command=tuple(c for c in command if c != "--"))
    done = subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0, done.stdout + done.stderr
    if argv[0] == "ssh":
        assert done.returncode == 1
        assert "the console needs a terminal" in done.stderr
    wait_for(lambda: login.leftovers() == [], 15, "every process of the session to end")
