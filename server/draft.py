"""A draft of the picture: decide a batch of commands without touching the real one.

Group commit decides several commands before any of them is durable, and each must
see the ones before it. The draft is the real picture seen through copy-on-read
mappings: an incident or unit is copied the first time the batch looks at it, so the
rules and the fold may change it freely while the real picture, which queries and
new subscribers read, stays exactly at the durable head until the batch is on disk.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Generic, TypeVar

from pydantic import BaseModel

from cadterm.protocol.fold import DispatchState

__all__ = ["CopyOnRead", "draft_of"]

M = TypeVar("M", bound=BaseModel)


def clone(model: M) -> M:
    """A copy of an incident or unit that the fold may change without touching `model`.

    The fold changes a model's own fields and the lists it holds (a chronology line
    appended, a callsign removed), and replaces nested models whole (a new location)
    rather than changing them in place; so a new model with its own field values and
    its own copies of lists, dicts and sets is enough, and shares everything else.
    This is a fraction of `copy.deepcopy`, which a long chronology makes cost
    milliseconds. tests/test_picture_json.py checks a draft leaves the picture as it was.
    """
    values = {
        name: type(value)(value) if isinstance(value, (list, dict, set)) else value
        for name, value in model.__dict__.items()
    }
    copied = type(model).__new__(type(model))
    object.__setattr__(copied, "__dict__", values)
    object.__setattr__(copied, "__pydantic_fields_set__", set(model.__pydantic_fields_set__))
    object.__setattr__(copied, "__pydantic_extra__", model.__pydantic_extra__)
    object.__setattr__(copied, "__pydantic_private__", model.__pydantic_private__)
    return copied


class CopyOnRead(MutableMapping[str, M], Generic[M]):
    """A mapping over `base` that copies each value the first time it is read."""

    def __init__(self, base: dict[str, M]) -> None:
        self._base = base
        self._own: dict[str, M] = {}
        self._gone: set[str] = set()

    def __getitem__(self, key: str) -> M:
        try:
            return self._own[key]
        except KeyError:
            pass
        if key in self._gone:
            raise KeyError(key)
        value = clone(self._base[key])
        self._own[key] = value
        return value

    def __contains__(self, key: object) -> bool:
        return key in self._own or (key not in self._gone and key in self._base)

    def __setitem__(self, key: str, value: M) -> None:
        self._own[key] = value
        self._gone.discard(key)

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self._own.pop(key, None)
        self._gone.add(key)

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        for key in self._base:
            if key not in self._own and key not in self._gone:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)


def draft_of(state: DispatchState) -> DispatchState:
    """A picture that starts equal to `state` and never changes it."""
    return DispatchState.model_construct(
        seq=state.seq,
        incidents=CopyOnRead(state.incidents),
        units=CopyOnRead(state.units),
        log_day=state.log_day,
        log_number=state.log_number,
        # Shared: the fold replaces these mappings and their lists, never changes them.
        reserved=state.reserved,
        reports=state.reports,
    )
