"""Where a CAD-down pack's picture comes from: a backend if one answers, else the disk.

A pack printed while CAD is still up is made from the live picture; one printed after it
went down is made from the console's last known picture, and says of when.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from cadterm.client.picture_file import PictureFile
from cadterm.client.queries import Queries, QueryError
from cadterm.protocol.fold import DispatchState
from cadterm.tui.pack import PackSource
from cadterm.tui.settings import ConsoleSettings

__all__ = ["NoPicture", "pack_source"]

#: How long each backend is given to send its picture.
ASK_FOR = 3.0


class NoPicture(Exception):
    """Neither a backend nor this console's disk has a picture to print."""


async def _live(settings: ConsoleSettings) -> tuple[str, DispatchState] | None:
    for url in settings.url:
        try:
            async with Queries(url, settings.token, timeout=ASK_FOR) as queries:
                return url, await queries.state()
        except (QueryError, OSError, TimeoutError):
            continue
    return None


def pack_source(settings: ConsoleSettings, picture_path: Path) -> PackSource:
    """The picture to print: live from the first backend that answers, else from disk."""
    contacts = tuple((c.name, c.phone) for c in settings.contacts)
    live = asyncio.run(_live(settings)) if settings.url and settings.token else None
    if live is not None:
        url, state = live
        return PackSource(
            state, datetime.now(UTC), f"live from {url}", settings.workstation, contacts
        )  # type: ignore[arg-type]
    saved = PictureFile(picture_path).load()
    if saved is None:
        raise NoPicture(
            "no picture to print: no backend answered and this console has no last known "
            f"picture ({picture_path})"
        )
    return PackSource(
        saved.state,
        saved.heard_at,
        "this console's last known picture: no backend answered",
        settings.workstation,
        contacts,
    )
