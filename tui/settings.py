"""Console settings: one typed object, from a TOML file, then the environment.

Precedence, lowest first: built-in defaults, ``console.toml`` (the app shell passes its
path; ``cadterm locate`` prints it), environment variables (``CADTERM_URL``,
``CADTERM_TOKEN``, ``CADTERM_THEME``, ``CADTERM_WORKSTATION``, ``CADTERM_JOURNAL``),
then command-line flags. Example ``console.toml``::

    url = ["http://10.0.0.5:8740", "http://10.0.0.6:8740"]
    token = "..."
    theme = "cadterm-ansi"
    group_units_by = "state"
    bell = true
    officer_safety_minutes = 20

    [keymap]
    "app.detail" = "f4,ctrl+o"

    [sector_minimum]
    LS1 = 3
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cadterm.client.backend_url import check_backend_url, check_token
from cadterm.protocol.types import WorkstationId, workstation_for_this_machine
from cadterm.themes import THEMES

__all__ = [
    "ConsoleSettings",
    "Grouping",
    "SettingsError",
    "load_settings",
]


class Grouping(StrEnum):
    """How the unit board groups callsigns."""

    SECTOR = "sector"
    STATE = "state"


class SettingsError(Exception):
    """The console settings file or environment holds something unusable."""


class Contact(BaseModel):
    """Someone to ring when CAD is down (printed in the CAD-down pack)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    phone: str = Field(min_length=1, max_length=40)


class ConsoleSettings(BaseModel):
    """Everything the console can be told, with its defaults."""

    model_config = ConfigDict(extra="forbid")

    url: list[str] = Field(default_factory=list, description="Backend URLs, tried in order.")
    token: str | None = Field(default=None, description="Bearer token for this operator.")
    workstation: WorkstationId = Field(default_factory=workstation_for_this_machine)
    theme: str = "cadterm-dark"
    group_units_by: Grouping = Grouping.SECTOR
    bell: bool = True
    emergency_bell_every: float = Field(
        default=10, ge=0, description="Seconds between bells for an unacknowledged emergency."
    )
    bell_on_refusal: bool = Field(
        default=False, description="Also ring when a command is refused at once."
    )
    officer_safety_minutes: float = Field(default=20, gt=0)
    warn_fraction: float = Field(default=0.75, gt=0, lt=1)
    journal: Path | None = Field(
        default=None, description="Offline journal file (default: journal.db in the data dir)."
    )
    log: Path | None = Field(
        default=None, description="The console's own log (default: console.log in the log dir)."
    )
    gazetteer: Path | None = Field(
        default=None, description="The force's gazetteer (CSV) for locations typed in n and loc."
    )
    grading: Path | None = Field(
        default=None,
        description="The force's grading rules (TOML) for the call form's guidance "
        "(default: the rules shipped with cadterm, domain/grading.toml).",
    )
    duplicate_metres: float = Field(
        default=200, ge=0, le=5000, description="A call this near an open incident may repeat it."
    )
    duplicate_minutes: float = Field(
        default=30, gt=0, le=24 * 60, description="... if the incident was opened this recently."
    )
    unicode: bool | None = Field(
        default=None, description="UTF-8 and line drawing (default: as the locale says)."
    )
    colour: Literal["auto", "none", "16", "256", "truecolor"] = Field(
        default="auto", description="Colours to use (default: as terminfo says for $TERM)."
    )
    mouse: bool | None = Field(
        default=None, description="Mouse reporting (default: if terminfo lists a mouse)."
    )
    cursor_blink: bool | None = Field(
        default=None, description="Blink the cursor (default: not over SSH, to save bytes)."
    )
    clock: bool = Field(
        default=True, description="The time of day on the status line (it ticks each second)."
    )
    contacts: list[Contact] = Field(
        default_factory=list,
        description="People to ring when CAD is down, e.g. [[contacts]] name = 'IT on "
        "call' phone = '01632 960000'; printed in the CAD-down pack (cadterm pack).",
    )
    keymap: dict[str, str] = Field(
        default_factory=dict, description="Binding id -> keys, e.g. 'app.detail' = 'f4'."
    )
    sector_minimum: dict[str, Annotated[int, Field(ge=0, le=1000)]] = Field(
        default_factory=dict,
        description="Sector -> the fewest available units the room wants there, shown on "
        "the supervisor board, e.g. [sector_minimum] LS1 = 3.",
    )
    demand_hours: int = Field(
        default=6, ge=1, le=12, description="Hours of demand the supervisor board plots."
    )

    @field_validator("url", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("url")
    @classmethod
    def _reachable(cls, value: list[str]) -> list[str]:
        return [check_backend_url(url) for url in value]

    @field_validator("token")
    @classmethod
    def _sendable(cls, value: str | None) -> str | None:
        return None if value is None else check_token(value)

    @field_validator("theme")
    @classmethod
    def _known_theme(cls, value: str) -> str:
        if value not in THEMES:
            raise ValueError(f"unknown theme {value!r}; built-in: {', '.join(THEMES)}")
        return value


_ENV = {
    "CADTERM_URL": "url",
    "CADTERM_TOKEN": "token",
    "CADTERM_THEME": "theme",
    "CADTERM_WORKSTATION": "workstation",
    "CADTERM_JOURNAL": "journal",
}


def load_settings(
    path: Path,
    environ: dict[str, str] | None = None,
    **overrides: Any,
) -> ConsoleSettings:
    """Read the settings file (if any), apply the environment, then `overrides`.

    `overrides` whose value is None are ignored, so command-line flags can be passed
    straight through. Raises `SettingsError` saying which file and field is wrong.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"cannot read {path}: {exc}") from None
    for variable, field in _ENV.items():
        if environ.get(variable):
            data[field] = environ[variable]
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return ConsoleSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SettingsError(f"invalid console settings ({path}): {problems}") from None
