"""Where cadterm keeps its files on this machine.

Paths follow each platform's conventions (via `platformdirs`, app name ``cadterm``):
on Linux the database lives under ``~/.local/share/cadterm`` and the server config under
``~/.config/cadterm``. Set ``CADTERM_DATA_DIR`` or ``CADTERM_CONFIG_DIR`` to put them
elsewhere (a test, a container volume, a second instance).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

__all__ = [
    "APP_NAME",
    "config_dir",
    "data_dir",
    "default_db_path",
    "default_server_config_path",
]

APP_NAME = "cadterm"


def _override(variable: str) -> Path | None:
    value = os.environ.get(variable, "").strip()
    return Path(value).expanduser() if value else None


def data_dir() -> Path:
    """The directory for data (the event database): ``$CADTERM_DATA_DIR`` if set,
    else the platform's user data directory for cadterm. Not created here."""
    return _override("CADTERM_DATA_DIR") or Path(platformdirs.user_data_dir(APP_NAME))


def config_dir() -> Path:
    """The directory for configuration: ``$CADTERM_CONFIG_DIR`` if set, else the
    platform's user config directory for cadterm. Not created here."""
    return _override("CADTERM_CONFIG_DIR") or Path(platformdirs.user_config_dir(APP_NAME))


def default_db_path() -> Path:
    """The embedded backend's SQLite database: ``data_dir() / "cadterm.db"``."""
    return data_dir() / "cadterm.db"


def default_server_config_path() -> Path:
    """The server's config file (operators, limits): ``config_dir() / "server.toml"``."""
    return config_dir() / "server.toml"
