"""Built-in console themes, as plain data.

Each theme gives Textual's base colours and cadterm's semantic tokens. Stylesheets use
only the tokens (`$grade-1`, `$unit-available`, `$stale`, ...), never colours, so a
theme changes every screen at once. The ANSI theme names the terminal's own palette
(`ansi_red` and so on), so it follows whatever colours the operator's terminal uses
and stays readable on 16-colour SSH sessions. No Textual import here: the console
turns these into Textual themes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["THEMES", "TOKENS", "theme_names"]

#: Every semantic token a theme must define, with what it colours.
TOKENS: dict[str, str] = {
    "grade-1": "grade 1 (emergency) marker",
    "grade-2": "grade 2 (priority) marker",
    "grade-3": "grade 3 (scheduled) marker",
    "grade-4": "grade 4 (appointment) marker",
    "grade-5": "grade 5 (resolved without deployment) marker",
    "unit-available": "units free to deploy (states 1-3)",
    "unit-committed": "units on an incident (states 5-8)",
    "unit-unavailable": "units busy elsewhere (states 4, 9, 10)",
    "unit-emergency": "state 0: officer needs urgent assistance",
    "unit-off": "units off duty",
    "age-warn": "incident nearing its attendance target",
    "age-breach": "incident past its attendance target",
    "stale": "the picture is not live",
    "live": "the picture is live",
    "cursor-bg": "selected row background",
    "cursor-fg": "selected row text",
    "header-fg": "board column headings",
    "muted": "secondary text",
    "alarm-bg": "alarm banner background",
    "alarm-fg": "alarm banner text",
    "error-text": "command-line errors",
}

_DARK: dict[str, Any] = {
    "name": "cadterm-dark",
    "dark": True,
    "primary": "#4f9dde",
    "secondary": "#2a6fb0",
    "accent": "#e8b04b",
    "warning": "#e8b04b",
    "error": "#e5534b",
    "success": "#57ab5a",
    "foreground": "#d8dde3",
    "background": "#12161b",
    "surface": "#1a2027",
    "panel": "#222a33",
    "variables": {
        "grade-1": "#ff5f56",
        "grade-2": "#f0a830",
        "grade-3": "#6cb6ff",
        "grade-4": "#9aa5b1",
        "grade-5": "#768390",
        "unit-available": "#57ab5a",
        "unit-committed": "#6cb6ff",
        "unit-unavailable": "#c69026",
        "unit-emergency": "#ff5f56",
        "unit-off": "#636e7b",
        "age-warn": "#e8b04b",
        "age-breach": "#ff5f56",
        "stale": "#ff5f56",
        "live": "#57ab5a",
        "cursor-bg": "#2d4f73",
        "cursor-fg": "#ffffff",
        "header-fg": "#9aa5b1",
        "muted": "#768390",
        "alarm-bg": "#b62324",
        "alarm-fg": "#ffffff",
        "error-text": "#ff7b72",
    },
}

_LIGHT: dict[str, Any] = {
    "name": "cadterm-light",
    "dark": False,
    "primary": "#0969da",
    "secondary": "#0550ae",
    "accent": "#9a6700",
    "warning": "#9a6700",
    "error": "#cf222e",
    "success": "#1a7f37",
    "foreground": "#1f2328",
    "background": "#ffffff",
    "surface": "#f6f8fa",
    "panel": "#eaeef2",
    "variables": {
        "grade-1": "#cf222e",
        "grade-2": "#9a6700",
        "grade-3": "#0969da",
        "grade-4": "#57606a",
        "grade-5": "#6e7781",
        "unit-available": "#1a7f37",
        "unit-committed": "#0550ae",
        "unit-unavailable": "#953800",
        "unit-emergency": "#cf222e",
        "unit-off": "#8c959f",
        "age-warn": "#9a6700",
        "age-breach": "#cf222e",
        "stale": "#cf222e",
        "live": "#1a7f37",
        "cursor-bg": "#b6e3ff",
        "cursor-fg": "#1f2328",
        "header-fg": "#57606a",
        "muted": "#6e7781",
        "alarm-bg": "#cf222e",
        "alarm-fg": "#ffffff",
        "error-text": "#cf222e",
    },
}

_HIGH_CONTRAST: dict[str, Any] = {
    "name": "cadterm-high-contrast",
    "dark": True,
    "primary": "#ffff00",
    "secondary": "#00ffff",
    "accent": "#ffff00",
    "warning": "#ffff00",
    "error": "#ff0000",
    "success": "#00ff00",
    "foreground": "#ffffff",
    "background": "#000000",
    "surface": "#000000",
    "panel": "#000000",
    "variables": {
        "grade-1": "#ff0000",
        "grade-2": "#ffff00",
        "grade-3": "#00ffff",
        "grade-4": "#ffffff",
        "grade-5": "#ffffff",
        "unit-available": "#00ff00",
        "unit-committed": "#00ffff",
        "unit-unavailable": "#ffff00",
        "unit-emergency": "#ff0000",
        "unit-off": "#c0c0c0",
        "age-warn": "#ffff00",
        "age-breach": "#ff0000",
        "stale": "#ff0000",
        "live": "#00ff00",
        "cursor-bg": "#ffffff",
        "cursor-fg": "#000000",
        "header-fg": "#ffffff",
        "muted": "#c0c0c0",
        "alarm-bg": "#ff0000",
        "alarm-fg": "#ffffff",
        "error-text": "#ff0000",
    },
}

_ANSI: dict[str, Any] = {
    "name": "cadterm-ansi",
    "dark": True,
    "ansi": True,
    "primary": "ansi_blue",
    "secondary": "ansi_cyan",
    "accent": "ansi_yellow",
    "warning": "ansi_yellow",
    "error": "ansi_red",
    "success": "ansi_green",
    "foreground": "ansi_default",
    "background": "ansi_default",
    "surface": "ansi_default",
    "panel": "ansi_default",
    "variables": {
        "grade-1": "ansi_bright_red",
        "grade-2": "ansi_yellow",
        "grade-3": "ansi_cyan",
        "grade-4": "ansi_default",
        "grade-5": "ansi_default",
        "unit-available": "ansi_green",
        "unit-committed": "ansi_cyan",
        "unit-unavailable": "ansi_yellow",
        "unit-emergency": "ansi_bright_red",
        "unit-off": "ansi_bright_black",
        "age-warn": "ansi_yellow",
        "age-breach": "ansi_bright_red",
        "stale": "ansi_bright_red",
        "live": "ansi_green",
        "cursor-bg": "ansi_blue",
        "cursor-fg": "ansi_bright_white",
        "header-fg": "ansi_default",
        "muted": "ansi_bright_black",
        "alarm-bg": "ansi_red",
        "alarm-fg": "ansi_bright_white",
        "error-text": "ansi_bright_red",
    },
}

#: The built-in themes by name; the first is the default.
THEMES: dict[str, dict[str, Any]] = {
    theme["name"]: theme for theme in (_DARK, _LIGHT, _HIGH_CONTRAST, _ANSI)
}


def theme_names() -> list[str]:
    """Names of the built-in themes, the default first."""
    return list(THEMES)
