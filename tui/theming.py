"""Turning the built-in theme data into Textual themes."""

from __future__ import annotations

from textual.theme import Theme

from cadterm.themes import THEMES

__all__ = ["textual_themes"]


def textual_themes() -> list[Theme]:
    """Every built-in theme as a Textual `Theme`, the default first."""
    return [Theme(**data) for data in THEMES.values()]
