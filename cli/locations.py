"""Where cadterm keeps its files on this machine: the one place that knows.

Paths follow each platform's conventions (via `platformdirs`, app name ``cadterm``): on
Linux the database and the console's journal live under ``~/.local/share/cadterm``, the
server config and the console settings under ``~/.config/cadterm``, and the console's log
under ``~/.local/state/cadterm/log``. Environment variables move them (a test, a
container volume, a second instance, one SSH account per dispatcher):

    CADTERM_DATA_DIR     data (database, journal); also the log, unless
    CADTERM_LOG_DIR      moves the console's log on its own
    CADTERM_CONFIG_DIR   configuration (server.toml, console.toml)

The server, the console and the simulator are handed paths; only the app shell asks here,
so nothing below it depends on the platform's conventions. Nothing is created here.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "config_dir",
    "console_journal_path",
    "console_log_path",
    "console_settings_path",
    "data_dir",
    "default_db_path",
    "default_server_config_path",
    "log_dir",
]

APP_NAME = "cadterm"


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """``$CADTERM_DATA_DIR`` if set, else the platform's user data directory for cadterm."""
    return _override("CADTERM_DATA_DIR") or Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """``$CADTERM_CONFIG_DIR`` if set, else the platform's user config directory."""
    return _override("CADTERM_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP_NAME))


def log_dir() -> Path:
    """``$CADTERM_LOG_DIR``, else the data dir when ``$CADTERM_DATA_DIR`` moves it, else
    the platform's user log directory (on Linux ``~/.local/state/cadterm/log``)."""
    if moved := _override("CADTERM_LOG_DIR"):
        return moved
    if _override("CADTERM_DATA_DIR"):
        return data_dir()
    return Path(platformdirs.user_log_dir(APP_NAME))


def default_db_path() -> Path:
    """The embedded backend's SQLite database: ``data_dir() / "cadterm.db"``."""
    return data_dir() / "cadterm.db"


def default_server_config_path() -> Path:
    """The server's config file (operators, limits): ``config_dir() / "server.toml"``."""
    return config_dir() / "server.toml"


def console_settings_path() -> Path:
    """The console's settings file: ``config_dir() / "console.toml"``."""
    return config_dir() / "console.toml"


def console_journal_path() -> Path:
    """The console's offline journal, unless its settings name another file."""
    return data_dir() / "journal.db"


def console_log_path() -> Path:
    """The console's own log, unless its settings name another file."""
    return log_dir() / "console.log"
