"""Server settings: operators and their hashed tokens, limits, codes.

Read from a TOML file. Tokens are never stored, only their SHA-256: a token is 32 random
bytes, so a fast hash is enough (there is nothing to brute-force), and a leaked config
file does not let anyone log in.

    [[operators]]
    id = "op1"
    name = "Dispatcher 1"
    role = "dispatcher"
    token_sha256 = "9f86d0..."

    [[workstations]]
    id = "CR1-WS04"
    description = "Control room 1, desk 4"
    operators = ["op1"]          # optional: only these operators may use it

    [limits]
    max_frame_bytes = 65536

    [safety_checks]              # officer-safety cadence, minutes (these are the defaults)
    every_minutes = 20
    by_incident_type = { FIREARMS = 10, DOMESTIC = 15 }

The file is edited in place by `cadterm operator` and `cadterm workstation` (see
`config_edit`), which keep every other table and comment as written.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from cadterm.protocol.answers import SafetyCadence
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.domain import Role
from cadterm.protocol.frames import SNAPSHOT_PART_BYTES
from cadterm.protocol.types import OperatorId, workstation_for_this_machine

from .auth import hash_token, new_token

__all__ = [
    "ConfigError",
    "Limits",
    "OperatorEntry",
    "ServerConfig",
    "WorkstationEntry",
    "describe_errors",
    "ensure_config",
    "load_config",
    "write_config",
]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


def _printable(text: str) -> str:
    # A newline or control character in a name would break the record and the TOML file
    # the next edit writes; refuse it where it is typed.
    if not text.isprintable():
        raise ValueError("must be printable text on one line (no newline or control characters)")
    return text


#: An operator or workstation id, as it appears in the audit trail: the protocol's own
#: identifier rule, so every id the config accepts is one a command can carry.
ConfigId = OperatorId
#: A display name or description: printable, one line.
ConfigText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_printable)]


class OperatorEntry(BaseModel):
    """One operator who may log in, with the hash of their bearer token."""

    model_config = ConfigDict(extra="forbid")

    id: ConfigId
    name: ConfigText
    role: Role
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class WorkstationEntry(BaseModel):
    """One workstation commands may come from: the "where" of the audit trail.

    `operators`, when given, is the allow-list of operator ids who may work at it;
    without it any operator may.
    """

    model_config = ConfigDict(extra="forbid")

    id: ConfigId
    description: ConfigText | None = None
    operators: list[ConfigId] | None = None

    def allows(self, operator_id: str) -> bool:
        """Whether `operator_id` may send commands from this workstation."""
        return self.operators is None or operator_id in self.operators


class Limits(BaseModel):
    """Sizes, rates and intervals that keep one client from hurting the others."""

    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(default=64 * 1024, ge=256)
    max_body_bytes: int = Field(default=64 * 1024, ge=256)
    command_rate: float = Field(default=20.0, gt=0, description="Commands/s per operator.")
    command_burst: int = Field(default=40, ge=1, description="Commands allowed in a burst.")
    intake_rate: float = Field(
        default=2.0, gt=0, description="Online reports/s per intake login (a website)."
    )
    intake_burst: int = Field(
        default=20, ge=1, description="Online reports an intake login may send in a burst."
    )
    heartbeat_interval: float = Field(default=5.0, gt=0)
    subscribe_timeout: float = Field(default=10.0, gt=0)
    subscriber_queue: int = Field(
        default=5000, ge=1, description="Frames queued for one subscriber before cut-off."
    )
    replay_batch: int = Field(default=2000, ge=1)
    max_json_depth: int = Field(
        default=32, ge=2, le=256, description="Nesting of arrays and objects in a body or frame."
    )
    header_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a request may take to send its line and headers."
    )
    body_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a request may take to send its whole body."
    )
    max_connections: int = Field(
        default=512, ge=1, description="Open connections (HTTP and streams) the server holds."
    )
    bad_request_rate: float = Field(
        default=5.0, gt=0, description="Refused requests/s allowed per client address."
    )
    bad_request_burst: int = Field(
        default=50, ge=1, description="Refused requests allowed in a burst per client address."
    )
    send_timeout: float = Field(
        default=20.0, gt=0, description="Seconds a connection's send buffer may stay full."
    )
    stream_close_timeout: float = Field(
        default=5.0, gt=0, description="Seconds a stream's closing handshake may take."
    )
    snapshot_part_bytes: int = Field(
        default=SNAPSHOT_PART_BYTES,
        ge=4096,
        le=SNAPSHOT_PART_BYTES,
        description="Largest snapshot frame sent, in bytes; a larger picture goes in parts.",
    )
    closed_window: float = Field(
        default=12 * 3600.0,
        gt=0,
        description="Seconds a closed incident stays in the live picture (default one "
        "12-hour shift); older ones are archived and found through the history API.",
    )
    archive_interval: float = Field(
        default=60.0, gt=0, description="Seconds between looks for closed incidents to archive."
    )
    idempotency_window: float = Field(
        default=24 * 3600.0,
        gt=0,
        description="Seconds a command's answer is kept for retries; older ones are pruned.",
    )
    commit_batch: int = Field(
        default=256, ge=1, description="Most commands written in one group commit."
    )
    snapshot_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest time between snapshots while events arrive.",
    )
    snapshot_log_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1,
        description="Event JSON written since the last snapshot that triggers the next.",
    )
    snapshot_log_share: float = Field(
        default=0.25,
        ge=0,
        description="A snapshot due by `snapshot_every` waits until the event JSON written "
        "since the last one is at least this share of that snapshot's size, so a large "
        "picture is not rewritten every few hundred events.",
    )
    upkeep_seconds: float = Field(
        default=30.0,
        gt=0,
        description="Seconds between WAL checkpoints and idempotency pruning passes.",
    )


class ServerConfig(BaseModel):
    """Everything `cadterm server` reads from its config file."""

    model_config = ConfigDict(extra="forbid")

    operators: list[OperatorEntry] = Field(default_factory=list)
    workstations: list[WorkstationEntry] = Field(
        default_factory=list,
        description="Workstations commands may name; a command from any other is refused.",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins a browser-based client may connect from. Clients that send "
        "no Origin header (consoles, scripts) are not affected.",
    )
    limits: Limits = Field(default_factory=Limits)
    snapshot_every: int = Field(
        default=1000,
        ge=1,
        description="Most events between snapshots (see Limits for time and size).",
    )
    retain_events: int = Field(default=100_000, ge=0, description="Events kept before a snapshot.")
    timezone: str = Field(
        default="Europe/London", description="Control room's time zone, for log references."
    )
    back_entry_after: float = Field(
        default=60.0,
        ge=1.0,
        le=3600.0,
        description="Seconds after which an action recorded late (sent from a console's "
        "offline journal, or typed in from a paper log) is flagged back-entered, with the "
        "time it was taken kept beside the time it was recorded.",
    )
    incident_types: dict[str, str] = Field(default_factory=lambda: dict(INCIDENT_TYPES))
    closing_codes: dict[str, str] = Field(default_factory=lambda: dict(CLOSING_CODES))
    safety_checks: SafetyCadence = Field(
        default_factory=SafetyCadence,
        description="Officer-safety check cadence: `every_minutes` (default 20) and "
        "`by_incident_type` (default FIREARMS 10, DOMESTIC 15), served to consoles at "
        "GET /v1/safety-checks.",
    )

    @model_validator(mode="after")
    def _safety_types_known(self) -> ServerConfig:
        # A cadence written for a type nobody can open is a typo that would go unnoticed;
        # the defaults name types a force may have renamed, and then simply never apply.
        if "by_incident_type" not in self.safety_checks.model_fields_set:
            return self
        known = {code.upper() for code in self.incident_types}
        unknown = sorted(c for c in self.safety_checks.by_incident_type if c.upper() not in known)
        if unknown:
            raise ValueError(
                f"safety_checks.by_incident_type names unknown incident types: {', '.join(unknown)}"
            )
        for code, minutes in self.safety_checks.by_incident_type.items():
            if not 0 < minutes <= 24 * 60:
                raise ValueError(
                    f"safety_checks.by_incident_type.{code} must be more than 0 and at most "
                    f"1440 minutes, not {minutes}"
                )
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> ServerConfig:
        for kind, ids in (
            ("operator", [op.id for op in self.operators]),
            ("workstation", [ws.id for ws in self.workstations]),
        ):
            seen: set[str] = set()
            for item in ids:
                if item in seen:
                    raise ValueError(f"{kind} {item!r} is listed twice")
                seen.add(item)
        return self


def load_config(path: str | os.PathLike[str]) -> ServerConfig:
    """Read and validate a config file. Raises `ConfigError` saying what is wrong."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid config file {path}: {describe_errors(exc)}") from None


def describe_errors(exc: ValidationError) -> str:
    """Every error of `exc` as ``field.path: message``, joined by semicolons."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'file'}: {err['msg']}" for err in exc.errors()
    )


def write_config(path: str | os.PathLike[str], config: ServerConfig) -> None:
    """Write `config` as a new file at `path` (mode 0600, replaced atomically).

    For making a file from scratch; to change one entry of an existing file and keep
    the rest as written, use `config_edit`.
    """
    from .config_edit import create_config

    create_config(path, config)


def _first_workstation() -> str:
    return workstation_for_this_machine()


def ensure_config(
    path: str | os.PathLike[str],
    *,
    operator_id: str = "dispatcher1",
    workstation_id: str | None = None,
) -> tuple[ServerConfig, str | None]:
    """Load the config, creating it with one dispatcher and one workstation on first start.

    The workstation is this machine's host name (what a console on it sends unless told
    otherwise), or ``console1`` if the host name is not a valid id. Returns the config
    and, only when it was just created, the new operator's token: the one time it exists
    in clear, for the caller to print.
    """
    from .config_edit import create_config

    path = Path(path)
    if path.exists():
        return load_config(path), None
    token = new_token()
    config = ServerConfig(
        operators=[
            OperatorEntry(
                id=operator_id,
                name="Dispatcher 1",
                role=Role.DISPATCHER,
                token_sha256=hash_token(token),
            )
        ],
        workstations=[
            WorkstationEntry(id=workstation_id or _first_workstation(), description="First console")
        ],
    )
    create_config(path, config)
    return config, token
