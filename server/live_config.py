"""The config a running server acts on, re-read when its file changes.

Who may log in and from which workstations is read from ``server.toml`` at start and
again, without a restart, whenever the file changes: on SIGHUP (see `server.run`) and by
itself when the file's identity, size or modification time differ from what was last
read (looked at no more than once a second, when a token is checked). So `cadterm
operator add` or `remove` against a running server takes effect within a second.

Only operators and workstations take effect live. Limits, origins, codes, the
safety-check cadence, snapshot and retention settings are read once at start; a reload
that changes them logs that a restart is needed.

A reload swaps one `Roster` (an `Authenticator` and the workstation table) for a new
one in a single assignment, so a request sees either the old set or the new set, never a
mix. A file that fails to load is logged and the previous roster is kept: a typo in the
config never takes the control room off the air.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from cadterm.protocol.domain import Operator
from cadterm.protocol.problems import Problem, ProblemCode

from .auth import Authenticator
from .config import ConfigError, ServerConfig, WorkstationEntry, load_config

__all__ = ["LiveConfig", "Roster"]

log = logging.getLogger("cadterm.server")

#: Seconds between looks at the config file's metadata.
CHECK_INTERVAL = 1.0

# Settings the running server read once; a change to them needs a restart.
_RESTART_ONLY = (
    "allowed_origins",
    "limits",
    "snapshot_every",
    "retain_events",
    "timezone",
    "back_entry_after",
    "incident_types",
    "closing_codes",
    "safety_checks",
)


class Roster:
    """The operators who may log in and the workstations they may work from."""

    def __init__(self, config: ServerConfig) -> None:
        self.authenticator = Authenticator(config)
        self.workstations: dict[str, WorkstationEntry] = {ws.id: ws for ws in config.workstations}

    def workstation_problem(self, operator: Operator, workstation: str) -> Problem | None:
        """Why `operator` may not send commands from `workstation`, or None if they may."""
        entry = self.workstations.get(workstation)
        if entry is None:
            return Problem.of(
                ProblemCode.UNKNOWN_WORKSTATION,
                f"workstation {workstation!r} is not registered with this server; "
                "register it with `cadterm workstation add`",
                field="workstation",
            )
        if not entry.allows(operator.id):
            return Problem.of(
                ProblemCode.WORKSTATION_NOT_ALLOWED,
                f"operator {operator.id} may not use workstation {workstation!r}",
                field="workstation",
            )
        return None


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    # The inode changes on every atomic rename, so a rewrite inside one mtime tick with
    # the same size is still noticed.
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class LiveConfig:
    """The current `ServerConfig` and `Roster`, reloaded from `path` when it changes.

    Without a `path` (an embedded server given a config object) nothing is reloaded.
    Also usable wherever an `Authenticator` is expected: `operator_for` checks the file
    first, then asks the current roster.
    """

    def __init__(
        self,
        config: ServerConfig,
        path: str | os.PathLike[str] | None = None,
        *,
        interval: float = CHECK_INTERVAL,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.interval = interval
        self.config = config
        self.roster = Roster(config)
        self.reloads = 0
        self._started = config
        self._signature = _signature(self.path) if self.path is not None else None
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def operator_for(self, token: str | None) -> Operator | None:
        """The operator holding `token` under the newest config, or None."""
        self.check()
        return self.roster.authenticator.operator_for(token)

    def check(self) -> bool:
        """Reload if the file changed and the last look was `interval` ago; True if it did."""
        if self.path is None:
            return False
        now = time.monotonic()
        if now - self._checked < self.interval:
            return False
        self._checked = now
        if _signature(self.path) == self._signature:
            return False
        return self.reload("the file changed")

    def reload(self, reason: str = "asked to") -> bool:
        """Read the file again now; keep the old config if it is invalid. True if swapped."""
        if self.path is None:
            return False
        # One reload at a time (SIGHUP and a request may race); readers never wait.
        with self._lock:
            signature = _signature(self.path)
            # Remember the file even when it is bad, so it is not re-read every second;
            # a fix changes the signature again.
            self._signature = signature
            try:
                config = load_config(self.path)
                self._swap(config, reason)
            except ConfigError as exc:
                log.error("config not reloaded (%s), keeping the previous one: %s", reason, exc)
                return False
            except Exception:
                # Whatever went wrong, the control room stays on the config it had.
                log.exception("config not reloaded (%s), keeping the previous one", reason)
                return False
            return True

    def _swap(self, config: ServerConfig, reason: str) -> None:
        roster = Roster(config)  # built whole before anyone can see it
        self.roster = roster  # one assignment: requests see old or new, never both
        self.config = config
        self.reloads += 1
        log.info(
            "config reloaded from %s (%s): %d operators, %d workstations",
            self.path,
            reason,
            len(config.operators),
            len(config.workstations),
        )
        started = self._started
        changed = [key for key in _RESTART_ONLY if getattr(started, key) != getattr(config, key)]
        if changed:
            log.warning(
                "config settings %s changed in %s; they take effect at the next restart",
                ", ".join(changed),
                self.path,
            )
