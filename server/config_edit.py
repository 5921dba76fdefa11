"""Editing the server's config file without losing anything in it.

`cadterm operator` and `cadterm workstation` change one entry of ``server.toml`` at a
time. The file is a control room's own document: tables the edit does not touch
(``[incident_types]``, ``[closing_codes]``, ``[limits]``, ...), their order and every
comment stay exactly as written. Each edit:

1. reads the document with tomlkit (which keeps its layout),
2. changes the one entry,
3. validates the whole result with `ServerConfig`, so a file the server would refuse
   is never written,
4. writes it to a temporary file (mode 0600) in the same folder, fsyncs it and renames
   it into place, so a crash leaves the old file or the new one, never half of either.

A running server notices the new file by itself (see `server.live_config`).

Errors::

    ConfigError     the file cannot be read, or the edit would make it invalid
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from cadterm.protocol.domain import Role

from .config import ConfigError, OperatorEntry, ServerConfig, WorkstationEntry, describe_errors

__all__ = [
    "add_operator",
    "add_workstation",
    "create_config",
    "edit_config",
    "remove_operator",
    "remove_workstation",
    "set_operator_role",
    "write_atomically",
]

_HEADER = "cadterm server configuration (see docs/deployment.md)"


def _secure_dir(folder: Path) -> None:
    # The folder holds token hashes and the first-start token: only its owner may list it.
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text`: temp file (0600) in the same folder, fsync, rename."""
    _secure_dir(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    # The rename is only durable once the folder's entry is on disk too.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _validated(document: TOMLDocument, path: Path) -> ServerConfig:
    try:
        return ServerConfig.model_validate(document.unwrap())
    except ValidationError as exc:
        raise ConfigError(f"refused: {path} would be invalid: {describe_errors(exc)}") from None


def _read(path: Path) -> TOMLDocument:
    if not path.exists():
        document = tomlkit.document()
        document.add(tomlkit.comment(_HEADER))
        document.add(tomlkit.nl())
        return document
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, TOMLKitError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None


def edit_config(
    path: str | os.PathLike[str], change: Callable[[TOMLDocument], None]
) -> ServerConfig:
    """Apply `change` to the document at `path` (a new one if missing), check, write.

    `change` may raise `ConfigError` to refuse the edit; the file is then untouched, as
    it is when the result would not be a valid `ServerConfig`.
    """
    path = Path(path)
    document = _read(path)
    change(document)
    config = _validated(document, path)
    try:
        write_atomically(path, tomlkit.dumps(document))
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc}") from None
    return config


def create_config(path: str | os.PathLike[str], config: ServerConfig) -> None:
    """Write `config` as a new document at `path`, replacing any file there."""
    path = Path(path)
    document = tomlkit.document()
    document.add(tomlkit.comment(_HEADER))
    document.add(tomlkit.nl())
    data = config.model_dump(mode="json", exclude_none=True)
    for key in ("allowed_origins", "timezone", "snapshot_every", "retain_events"):
        document[key] = data[key]
    document.add(tomlkit.nl())
    for key in ("operators", "workstations"):
        for entry in data[key]:
            _append(document, key, entry)
    for key in ("limits", "incident_types", "closing_codes"):
        document[key] = data[key]
    _validated(document, path)
    write_atomically(path, tomlkit.dumps(document))


# --- one entry at a time ---------------------------------------------------------------


def _entries(document: TOMLDocument, key: str) -> AoT | None:
    entries = document.get(key)
    if entries is None:
        return None
    if not isinstance(entries, AoT):
        raise ConfigError(f"'{key}' in the config file must be a list of [[{key}]] tables")
    return entries


def _index(document: TOMLDocument, key: str, entry_id: str) -> int | None:
    entries = _entries(document, key)
    if entries is None:
        return None
    for i, table in enumerate(entries):
        if table.get("id") == entry_id:
            return i
    return None


def _append(document: TOMLDocument, key: str, values: dict) -> None:
    table: Table = tomlkit.table()
    for name, value in values.items():
        table[name] = value
    # A blank line after the entry keeps the next table visually apart, as by hand.
    table.add(tomlkit.nl())
    entries = _entries(document, key)
    if entries is None:
        document.append(key, tomlkit.aot())
        entries = document[key]
    elif len(entries):
        _move_trailing_comments(entries[-1], table)
    entries.append(table)


def _move_trailing_comments(source: Table, target: Table) -> None:
    """Move the comments trailing `source` (they introduce what follows) below `target`.

    tomlkit keeps a comment written above the next table as the tail of the table
    before it: left there, a new last entry would land between that comment and the
    table it describes, and removing the last entry would take the comment with it.
    """
    body = source.value.body
    tail = len(body)
    while (
        tail and body[tail - 1][0] is None and isinstance(body[tail - 1][1], Whitespace | Comment)
    ):
        tail -= 1
    first_comment = next(
        (i for i in range(tail, len(body)) if isinstance(body[i][1], Comment)), None
    )
    if first_comment is None:
        return
    moved = body[first_comment:]
    del body[first_comment:]
    target.value.body.extend(moved)


def add_operator(path: str | os.PathLike[str], entry: OperatorEntry) -> ServerConfig:
    """Add `entry` as a new ``[[operators]]`` table; refused if the id is taken."""

    def change(document: TOMLDocument) -> None:
        if _index(document, "operators", entry.id) is not None:
            raise ConfigError(f"operator {entry.id!r} already exists in {path}; choose another id")
        _append(document, "operators", entry.model_dump(mode="json"))

    return edit_config(path, change)


def _remove(path: str | os.PathLike[str], key: str, kind: str, entry_id: str) -> ServerConfig:
    def change(document: TOMLDocument) -> None:
        index = _index(document, key, entry_id)
        if index is None:
            raise ConfigError(f"no {kind} {entry_id!r} in {path}")
        entries = document[key]
        if index == len(entries) - 1 and index > 0:
            # Comments trailing the last entry introduce the next table: keep them.
            _move_trailing_comments(entries[index], entries[index - 1])
        del entries[index]

    return edit_config(path, change)


def remove_operator(path: str | os.PathLike[str], operator_id: str) -> ServerConfig:
    """Remove the operator `operator_id`: their token stops working at the next reload."""
    return _remove(path, "operators", "operator", operator_id)


def set_operator_role(path: str | os.PathLike[str], operator_id: str, role: Role) -> ServerConfig:
    """Change what the operator `operator_id` may do."""

    def change(document: TOMLDocument) -> None:
        index = _index(document, "operators", operator_id)
        if index is None:
            raise ConfigError(f"no operator {operator_id!r} in {path}")
        document["operators"][index]["role"] = role.value

    return edit_config(path, change)


def add_workstation(path: str | os.PathLike[str], entry: WorkstationEntry) -> ServerConfig:
    """Register `entry` as a new ``[[workstations]]`` table; refused if the id is taken."""

    def change(document: TOMLDocument) -> None:
        if _index(document, "workstations", entry.id) is not None:
            raise ConfigError(f"workstation {entry.id!r} already exists in {path}")
        _append(document, "workstations", entry.model_dump(mode="json", exclude_none=True))

    return edit_config(path, change)


def remove_workstation(path: str | os.PathLike[str], workstation_id: str) -> ServerConfig:
    """Unregister `workstation_id`: commands naming it are refused after the next reload."""
    return _remove(path, "workstations", "workstation", workstation_id)
