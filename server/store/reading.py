"""Reading a log back, the same on every store: decoding rows, paging, refusing gaps.

Each store fetches rows its own way; what a row means, and when a page of them is a gap
that must never be folded across, is the same for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from pydantic import ValidationError

from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState

from .base import StoreError

__all__ = ["decoded_event", "decoded_snapshot", "paged_events"]


def decoded_event(seq: int, body: str, where: str) -> Event:
    """The stored event `seq` of the store at `where`; `StoreError` if unreadable."""
    try:
        return EVENT_ADAPTER.validate_json(body)
    except ValidationError as exc:
        raise StoreError(f"event {seq} in {where} is unreadable: {exc}") from exc


def decoded_snapshot(row: tuple[int, str] | None, where: str) -> DispatchState | None:
    """A stored (seq, JSON) snapshot row as a picture; None for no row."""
    if row is None:
        return None
    seq, body = row
    try:
        return DispatchState.model_validate_json(body)
    except ValidationError as exc:
        raise StoreError(f"snapshot at seq {seq} in {where} is unreadable: {exc}") from exc


def paged_events(
    read: Callable[[int, int], list[Event]],
    first_retained: int,
    after: int,
    batch: int,
    where: str,
) -> Iterator[Event]:
    """Every event after `after`, `batch` at a time through `read`, never across a gap.

    Raises `StoreError` if the events just after `after` were pruned before reading
    began (`first_retained`), or while reading (a snapshot elsewhere pruned them), since
    folding across that gap could only fail later and less clearly.
    """
    if batch <= 0:
        raise ValueError("batch must be one or more")
    if after + 1 < first_retained:
        raise StoreError(
            f"events {after + 1}..{first_retained - 1} have been pruned from {where}; "
            f"start from a snapshot at seq {first_retained - 1} or later"
        )
    while True:
        events = read(after, batch)
        if events and events[0].seq != after + 1:
            raise StoreError(
                f"events {after + 1}..{events[0].seq - 1} were pruned from {where} while "
                "they were read; start again from the newest snapshot"
            )
        yield from events
        if len(events) < batch:
            return
        after = events[-1].seq
