"""What became of the commands a console took while CAD was down: the outage summary.

Every command that waited in the journal (no backend answered when it was typed) ends
one of a few ways: sent and recorded, refused and then applied anyway, adapted or
withdrawn by the dispatcher, or set aside. `OutageSummary` counts them from the journal
and `write_summary` keeps the count on file beside it, with the refused ones listed, so
the room's record of the outage survives the console.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .journal import JournalEntry, JournalStatus, Resolution

__all__ = ["OutageSummary", "summary_path", "write_summary"]


@dataclass(frozen=True)
class OutageSummary:
    """Counts of the commands that waited, by what became of them."""

    sent: int = 0
    applied_anyway: int = 0
    adapted: int = 0
    withdrawn: int = 0
    set_aside: int = 0
    to_put_right: int = 0  # refused, no decision yet
    waiting: int = 0  # not yet sent
    lines: tuple[str, ...] = field(default=(), compare=False)

    @property
    def total(self) -> int:
        """Every command that waited."""
        return (
            self.sent
            + self.applied_anyway
            + self.adapted
            + self.withdrawn
            + self.set_aside
            + self.to_put_right
            + self.waiting
        )

    @classmethod
    def of(cls, entries: Iterable[JournalEntry]) -> OutageSummary:
        """The summary of the journal's entries that waited (others are ignored)."""
        counts = dict.fromkeys(
            ("sent", "applied_anyway", "adapted", "withdrawn", "set_aside", "to_put_right"), 0
        )
        waiting = 0
        lines = []
        for entry in entries:
            if not entry.waited:
                continue
            if entry.status == JournalStatus.PENDING:
                waiting += 1
                continue
            if entry.status == JournalStatus.SENT:
                counts["sent"] += 1
                continue
            if entry.status == JournalStatus.REJECTED:
                counts["to_put_right"] += 1
            else:
                resolution = entry.resolution or Resolution.SET_ASIDE
                counts[resolution.name.lower()] += 1
            why = entry.problem.detail if entry.problem else "refused"
            done = entry.resolution.value if entry.resolution else "to put right"
            note = f" ({entry.resolution_note})" if entry.resolution_note else ""
            line = f"{entry.issued_at:%H:%M:%S} {entry.kind}: {why} -> {done}{note}"
            lines.append(_printable(line))
        return cls(**counts, waiting=waiting, lines=tuple(lines))

    def line(self) -> str:
        """One line: ``7 sent, 1 applied anyway, 1 adapted, 1 withdrawn, 0 waiting``."""
        parts = [f"{self.sent} sent"]
        for name, count in (
            ("applied anyway", self.applied_anyway),
            ("adapted", self.adapted),
            ("withdrawn", self.withdrawn),
            ("set aside", self.set_aside),
            ("to put right", self.to_put_right),
        ):
            if count:
                parts.append(f"{count} {name}")
        parts.append(f"{self.waiting} waiting")
        return ", ".join(parts)


def _printable(text: str) -> str:
    """`text` with control characters (escape sequences among them) shown as ``?``.

    The reasons in it come from servers and dispatchers; the file is read with `cat`.
    """
    return "".join("?" if unicodedata.category(c).startswith("C") else c for c in text)


def summary_path(journal_path: str | os.PathLike[str]) -> Path:
    """Where the summary of a journal's outage is kept: beside it."""
    path = Path(journal_path)
    return path.with_name(f"{path.stem}-outage-summary.txt")


def write_summary(
    journal_path: str | os.PathLike[str], summary: OutageSummary, now: datetime
) -> Path:
    """Write `summary` beside the journal (0600, replaced whole); returns the path."""
    path = summary_path(journal_path)
    text = "\n".join(
        [
            f"cadterm: commands taken while CAD was down, as of {now.isoformat()}",
            f"{summary.total} waited: {summary.line()}",
            *(f"  {line}" for line in summary.lines),
            "",
        ]
    )
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    return path
