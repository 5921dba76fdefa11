"""``GET /v1/safety-checks``: the officer-safety cadence this server is configured with.

Consoles time safety checks themselves (the timer runs on the picture they hold); they
ask here once they reach the server, so every console in the control room flags a unit
due a check at the same moment, by the same cadence per incident type.
"""

from __future__ import annotations

from fastapi import FastAPI

from cadterm.protocol.answers import SafetyCadence

from .config import ServerConfig
from .responses import GUARDED_STATUSES, problem_responses

__all__ = ["register_safety"]


def register_safety(app: FastAPI, config: ServerConfig) -> None:
    """Add the safety-check cadence route to `app`."""
    cadence = config.safety_checks

    @app.get(
        "/v1/safety-checks",
        operation_id="safety_checks",
        response_model=SafetyCadence,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def safety_checks() -> SafetyCadence:
        """Minutes between safety checks for a unit at scene: by default and per type."""
        return cadence
