"""Archiving: closed incidents leave the live picture once their window has passed.

The live picture (and so every snapshot and every console's memory) holds open
incidents, units, and incidents closed within `Limits.closed_window`. A periodic task
here, off the command path, finds incidents closed longer ago than that, writes them
whole to the `IncidentHistory`, and only then records one `incidents_archived` event
naming them: every node and console folds that event and drops them at the same seq.

The copy is written before the event so that no incident is ever in neither place. An
incident that changed between the two steps (a note, a reopen) is left in the picture
and its copy rewritten next round, so the history always holds what the picture
dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

from cadterm.protocol.domain import Incident, IncidentStatus
from cadterm.protocol.events import IncidentsArchived
from cadterm.protocol.fold import DispatchState

from .service import DispatchService
from .store.history import ArchiveRow, IncidentHistory

__all__ = ["ARCHIVE_BATCH", "Archivist", "due_for_archive"]

log = logging.getLogger("cadterm.server")

#: The most incidents one `incidents_archived` event names (about 16 bytes each).
ARCHIVE_BATCH = 500
#: Who the archive events say acted: the server itself, at no workstation.
ARCHIVIST = "server"


def due_for_archive(state: DispatchState, closed_before: datetime, limit: int) -> list[Incident]:
    """Up to `limit` incidents closed before `closed_before`, longest closed first."""
    due = [
        incident
        for incident in state.incidents.values()
        if incident.status == IncidentStatus.CLOSED
        and incident.closed_at is not None
        and incident.closed_at < closed_before
    ]
    due.sort(key=lambda incident: (incident.closed_at, incident.reference))
    return due[:limit]


class Archivist:
    """Moves closed incidents past the window from the picture to the history."""

    def __init__(
        self,
        service: DispatchService,
        history: IncidentHistory,
        *,
        window: float,
        interval: float,
    ) -> None:
        self.service = service
        self.history = history
        self.window = timedelta(seconds=window)
        self.interval = interval

    async def archive_due(self) -> int:
        """One round: archive up to `ARCHIVE_BATCH` incidents; return how many left."""
        service = self.service
        due = due_for_archive(service.state, service.clock() - self.window, ARCHIVE_BATCH)
        if not due:
            return 0
        versions = {incident.reference: incident.version for incident in due}
        # Serialised here on the loop (about 10 us an incident): the reader thread must
        # not read live objects a command may change meanwhile.
        rows = [ArchiveRow.of(incident) for incident in due]
        await service.run_read(self.history.keep, rows)

        def build(state: DispatchState, seq: int, at: datetime) -> IncidentsArchived | None:
            unchanged = [
                reference
                for reference, version in versions.items()
                if (incident := state.incidents.get(reference)) is not None
                and incident.status == IncidentStatus.CLOSED
                and incident.version == version
            ]
            if not unchanged:
                return None
            return IncidentsArchived(
                seq=seq, at=at, operator=ARCHIVIST, workstation=ARCHIVIST, references=unchanged
            )

        event = await service.record(build)
        archived = set(event.references) if event is not None else set()
        reopened = [
            reference
            for reference in versions
            if reference not in archived
            and (incident := service.state.incidents.get(reference)) is not None
            and incident.status != IncidentStatus.CLOSED
        ]
        if reopened:
            await service.run_read(self.history.forget, reopened)
        if archived:
            log.info("archived %d closed incidents at seq %d", len(archived), event.seq)
        return len(archived)

    async def run(self) -> None:
        """Archive what is due every `interval` seconds until cancelled."""
        while True:
            try:
                # A backlog (the first start after an upgrade) goes in batches, each its
                # own event, so no frame and no transaction grows with the backlog.
                for _ in range(1000):
                    if await self.archive_due() < ARCHIVE_BATCH:
                        break
            except asyncio.CancelledError:
                raise
            except Exception:
                # The picture only stays larger for a while: say so and try next round.
                log.exception("archiving closed incidents failed; retrying later")
            await asyncio.sleep(self.interval)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the archivist in the background for the body of the `async with`."""
        task = asyncio.create_task(self.run(), name="cadterm-archivist")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
