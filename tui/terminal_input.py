"""What the terminal sends: read forgivingly, so no byte from it can stop the console.

Textual's Linux driver decodes what it reads from the terminal as strict UTF-8. One
byte that is not (an ``é`` typed on a terminal set to Latin-1, a stray ``0x9b`` in a
paste, line noise on a serial link) raises in its input thread, and the app exits. A
console exits only when its user quits, so such bytes are read as U+FFFD instead: the
operator sees that something arrived that could not be read, and carries on.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Callable

__all__ = ["read_undecodable_input_as_replacement"]


def _replacing(encoding: str) -> Callable[..., codecs.IncrementalDecoder]:
    return functools.partial(codecs.getincrementaldecoder(encoding), errors="replace")


def read_undecodable_input_as_replacement() -> bool:
    """Have Textual's Linux driver read undecodable input as U+FFFD; True if it does.

    The driver builds its decoder from its module's `getincrementaldecoder` when its
    input thread starts, so this must run before the app does. A Textual that reads its
    input otherwise is left as it is (False).
    """
    try:
        from textual.drivers import linux_driver
    except ImportError:  # no POSIX terminal here: another driver reads the input
        return False
    current = getattr(linux_driver, "getincrementaldecoder", None)
    if current is _replacing:
        return True
    if current is not codecs.getincrementaldecoder:
        return False
    linux_driver.getincrementaldecoder = _replacing  # type: ignore[attr-defined]
    return True
