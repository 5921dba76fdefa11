"""Turning the built-in theme data into Textual themes."""

from __future__ import annotations

from typing import Any

from textual.theme import Theme

from cadterm.themes import THEMES

__all__ = ["textual_themes"]

# Textual's colour system for an ANSI theme does not define these two, yet its own
# stylesheets use them (Screen's inline border, Button): without them a theme with
# `ansi=True` fails to load. Values as Textual's built-in "ansi-dark" / "ansi-light".
_ANSI_VARIABLES = {
    True: {"ansi-background": "ansi_black", "ansi-foreground": "ansi_white"},
    False: {"ansi-background": "ansi_white", "ansi-foreground": "ansi_black"},
}


def _for_textual(data: dict[str, Any]) -> dict[str, Any]:
    if not data.get("ansi"):
        return data
    variables = {**_ANSI_VARIABLES[bool(data.get("dark", True))], **data.get("variables", {})}
    return {**data, "variables": variables}


def textual_themes() -> list[Theme]:
    """Every built-in theme as a Textual `Theme`, the default first."""
    return [Theme(**_for_textual(data)) for data in THEMES.values()]
