"""Server settings: operators and their hashed tokens, limits, codes.

Read from a TOML file. Tokens are never stored, only their SHA-256: a token is 32 random
bytes, so a fast hash is enough (there is nothing to brute-force), and a leaked config
file does not let anyone log in.

    [[operators]]
    id = "op1"
    name = "Dispatcher 1"
    role = "dispatcher"
    token_sha256 = "9f86d0..."

    [limits]
    max_frame_bytes = 65536
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.domain import Role

from .auth import hash_token, new_token

__all__ = [
    "ConfigError",
    "Limits",
    "OperatorEntry",
    "ServerConfig",
    "ensure_config",
    "load_config",
    "write_config",
]


class ConfigError(Exception):
    """The configuration file is missing, unreadable or invalid."""


class OperatorEntry(BaseModel):
    """One operator who may log in, with the hash of their bearer token."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    role: Role
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class Limits(BaseModel):
    """Sizes, rates and intervals that keep one client from hurting the others."""

    model_config = ConfigDict(extra="forbid")

    max_frame_bytes: int = Field(default=64 * 1024, ge=256)
    max_body_bytes: int = Field(default=64 * 1024, ge=256)
    command_rate: float = Field(default=20.0, gt=0, description="Commands/s per operator.")
    command_burst: int = Field(default=40, ge=1, description="Commands allowed in a burst.")
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


class ServerConfig(BaseModel):
    """Everything `cadterm server` reads from its config file."""

    model_config = ConfigDict(extra="forbid")

    operators: list[OperatorEntry] = Field(default_factory=list)
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins a browser-based client may connect from. Clients that send "
        "no Origin header (consoles, scripts) are not affected.",
    )
    limits: Limits = Field(default_factory=Limits)
    snapshot_every: int = Field(default=1000, ge=1, description="Events between snapshots.")
    retain_events: int = Field(default=100_000, ge=0, description="Events kept before a snapshot.")
    timezone: str = Field(
        default="Europe/London", description="Control room's time zone, for log references."
    )
    incident_types: dict[str, str] = Field(default_factory=lambda: dict(INCIDENT_TYPES))
    closing_codes: dict[str, str] = Field(default_factory=lambda: dict(CLOSING_CODES))


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
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config file {path}: {problems}") from None


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_config(path: str | os.PathLike[str], config: ServerConfig) -> None:
    """Write `config` as TOML, readable only by its owner (it names operators)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# cadterm server configuration", ""]
    if config.allowed_origins:
        origins = ", ".join(_toml_string(o) for o in config.allowed_origins)
        lines += [f"allowed_origins = [{origins}]", ""]
    lines += [f"timezone = {_toml_string(config.timezone)}"]
    lines += [f"snapshot_every = {config.snapshot_every}"]
    lines += [f"retain_events = {config.retain_events}", ""]
    for op in config.operators:
        lines += [
            "[[operators]]",
            f"id = {_toml_string(op.id)}",
            f"name = {_toml_string(op.name)}",
            f"role = {_toml_string(op.role.value)}",
            f"token_sha256 = {_toml_string(op.token_sha256)}",
            "",
        ]
    lines += ["[limits]"]
    for key, value in config.limits.model_dump().items():
        lines.append(f"{key} = {value}")
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def ensure_config(
    path: str | os.PathLike[str], *, operator_id: str = "dispatcher1"
) -> tuple[ServerConfig, str | None]:
    """Load the config, creating it with one dispatcher on first start.

    Returns the config and, only when it was just created, the new operator's token:
    the one time it exists in clear, for the caller to print.
    """
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
        ]
    )
    write_config(path, config)
    return config, token
