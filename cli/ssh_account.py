"""Console-only SSH accounts: one account per dispatcher, whose login is the console.

``cadterm ssh-account USER --url URL`` writes the account's console settings (backend
URLs, workstation and the operator's token, read from a file or standard input so that
it never shows in ``ps``) and prints the sshd ``Match`` block that makes the account's
only command the console, with forwarding off. docs/deployment.md walks through it.

The settings file is owned by whoever writes it (normally root) and readable by the
account's group, mode 0640 in a 0750 folder: the dispatcher's console can read its
token, and the dispatcher cannot change which backend or operator it speaks for.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from cadterm.protocol.types import WorkstationId

__all__ = [
    "SETTINGS_DIR_MODE",
    "SETTINGS_MODE",
    "ConsoleAccount",
    "console_command",
    "login_name_problem",
    "python_problem",
    "sshd_block",
    "write_account_settings",
]

SETTINGS_MODE = 0o640
SETTINGS_DIR_MODE = 0o750


@dataclass(frozen=True)
class ConsoleAccount:
    """What one dispatcher's SSH account needs to open the console."""

    user: str
    home: Path
    urls: tuple[str, ...]
    token: str
    workstation: WorkstationId | None = None

    @property
    def settings_path(self) -> Path:
        """Where the console, run as this account, reads its settings."""
        return self.home / ".config" / "cadterm" / "console.toml"


def console_command() -> str:
    """The absolute command that opens the console from this installation."""
    script = Path(sys.executable).parent / "cadterm"
    return f"{script} console" if script.exists() else f"{sys.executable} -m cadterm.cli.main"


#: A login name sshd's ``Match User`` and useradd both take as one plain word: no space
#: or line break (which would end the block's line and start another directive), no
#: pattern characters (``*``, ``?``, ``!``, ``,``) that would match other accounts.
_LOGIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9._-]{0,31}", re.ASCII)


def login_name_problem(user: str) -> str | None:
    """Why `user` cannot be written into an sshd ``Match User`` line, or None."""
    if _LOGIN_NAME.fullmatch(user):
        return None
    return (
        f"{user!r} is not a login name this can write into sshd_config: use up to 32 "
        "ASCII letters, digits, '.', '_' and '-', starting with a letter or '_'"
    )


def sshd_block(user: str, command: str) -> str:
    """An sshd_config ``Match`` block: this account's only command is the console.

    No forwarding of any kind, a pty for the console, and dead links noticed within a
    minute (so a console whose client vanished hangs up and ends, see cli/terminal.py).
    Raises ValueError for a `user` that would change the block's meaning.
    """
    problem = login_name_problem(user)
    if problem is not None:
        raise ValueError(problem)
    return (
        f"# cadterm console-only account: {user}\n"
        f"Match User {user}\n"
        f"    ForceCommand {command}\n"
        "    PermitTTY yes\n"
        "    DisableForwarding yes\n"
        "    PermitTunnel no\n"
        "    PermitUserRC no\n"
        "    ClientAliveInterval 15\n"
        "    ClientAliveCountMax 4\n"
    )


def write_account_settings(account: ConsoleAccount, owner: tuple[int, int] | None = None) -> Path:
    """Write the account's console.toml (0640, folder 0750).

    `owner` is the account's (uid, gid) when writing as root: a missing ``~/.config`` is
    made theirs, and the cadterm folder and file are given their group, so they can
    read but not change them. An existing file is updated in place: keys this does not
    set are kept, comments too.
    """
    path = account.settings_path
    config = path.parent.parent
    if not config.exists():
        config.mkdir(mode=0o700, parents=True)
        if owner is not None:
            os.chown(config, *owner)
    path.parent.mkdir(mode=SETTINGS_DIR_MODE, exist_ok=True)
    document = (
        tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    )
    document["url"] = list(account.urls)
    document["token"] = account.token
    if account.workstation is not None:
        document["workstation"] = account.workstation
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SETTINGS_MODE)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(tomlkit.dumps(document))
    for place, mode in ((path.parent, SETTINGS_DIR_MODE), (path, SETTINGS_MODE)):
        os.chmod(place, mode)
        if owner is not None:
            os.chown(place, -1, owner[1])
    return path


def python_problem(executable: str = sys.executable) -> str | None:
    """Why other accounts could not run this installation's Python; None when they can.

    A venv made from a Python under one person's home (pyenv, a user install) works for
    them alone: the dispatchers' accounts get "permission denied" at login.
    """
    real = Path(executable).resolve()
    for place in (real, *real.parents):
        try:
            mode = place.stat().st_mode
        except OSError as exc:
            return f"cannot check {place}: {exc.strerror}"
        if not mode & stat.S_IXOTH:
            return (
                f"{place} is not executable by other accounts, so they cannot run {real}: "
                "build the venv from a system-wide Python (for example /usr/bin/python3)"
            )
    return None
