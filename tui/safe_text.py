"""Text from the public, made safe to put on a terminal.

Caller details, notes and addresses come from outside the control room. Before any of
it reaches the screen every control character is replaced by a visible stand-in: C0
controls by their Unicode "control pictures" (ESC shows as ``␛``, BEL as ``␇``), DEL
as ``␡``, C1 controls and bidirectional overrides as ``�``. An escape sequence
therefore shows literally (``␛[2J``, ``␛]52;c;AAAA␇``) and does nothing: it cannot
clear the screen, set the clipboard or reorder what the dispatcher reads. Markup is
never interpreted either: widgets build `rich.text.Text` from the cleaned string, so
``[bold]`` or ``[@click=app.quit]`` shows as typed.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size

__all__ = ["clean", "clean_line", "fit", "typeable"]

_BIDI = "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"

_VISIBLE = {code: chr(0x2400 + code) for code in range(0x20)}
_VISIBLE[0x7F] = "\u2421"
_VISIBLE.update({code: "\ufffd" for code in range(0x80, 0xA0)})
_VISIBLE.update({ord(ch): "\ufffd" for ch in _BIDI})

_MULTILINE = dict(_VISIBLE)
del _MULTILINE[ord("\n")]
_MULTILINE[ord("\t")] = "    "

_ONE_LINE = dict(_VISIBLE)
_ONE_LINE[ord("\n")] = " "
_ONE_LINE[ord("\t")] = " "
_ONE_LINE[ord("\r")] = " "


def clean(text: str) -> str:
    """Replace control characters by visible stand-ins; keep newlines, expand tabs."""
    return text.translate(_MULTILINE)


def clean_line(text: str) -> str:
    """`clean` for one line: newlines, carriage returns and tabs become spaces."""
    return text.translate(_ONE_LINE)


_DROPPED = {code: None for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
_DROPPED.update({ord(ch): None for ch in _BIDI})
_DROPPED[ord("\t")] = " "


def typeable(text: str) -> str:
    """What a pasted or typed text may put in the command line: no controls, no bidi.

    Unlike `clean` there is nothing to show: the characters are dropped (a tab becomes
    a space), so a paste cannot hide part of a command or reorder it on screen.
    """
    return text.translate(_DROPPED)


def fit(text: str, cells: int) -> str:
    """`text` in exactly `cells` terminal cells: padded, or cut with an ellipsis.

    Measured in cells, not characters: a CJK character or an emoji takes two, a
    combining accent or a zero-width character none, so columns stay aligned whatever
    the public's names hold. A wide character that would straddle the cut is replaced
    by a space.
    """
    if cells <= 0:
        return ""
    if cell_len(text) <= cells:
        return set_cell_size(text, cells)
    return set_cell_size(text, cells - 1) + "\u2026"
