"""Sending online reports: what a force's website does, from Python.

A report goes to ``POST /v1/intake/reports`` with a token of the `intake` role (see
docs/protocol.md, "Online reports"). The simulator sends its online reports this way,
and a recording's reports are replayed this way; a website in another language does
the same over plain HTTP.

Errors::

    ClientError
    ├── CommandError        the server refused the report (its problem document)
    └── BackendUnavailable  no answer (unreachable, or a 5xx without a problem)
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from cadterm.protocol.commands import CommandResult, SubmitReport
from cadterm.protocol.problems import Problem

from .commands import new_key
from .errors import BackendUnavailable, CommandError

__all__ = ["INTAKE_PATH", "IntakeSender"]

INTAKE_PATH = "/v1/intake/reports"


class IntakeSender:
    """Posts online reports to one backend with an intake token (async)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        workstation: str = "website",
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.workstation = workstation
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            trust_env=False,
            transport=transport,
        )

    async def __aenter__(self) -> IntakeSender:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def report(self, **fields: Any) -> SubmitReport:
        """A `submit_report` command from `fields`, keyed and from this sender's workstation."""
        fields.setdefault("idempotency_key", new_key())
        fields.setdefault("workstation", self.workstation)
        return SubmitReport(**fields)

    async def send(self, report: SubmitReport) -> CommandResult:
        """Post `report`; the result's event is its `report_received` (with its id)."""
        body = report.model_dump_json(exclude_none=True)
        try:
            response = await self._http.post(
                INTAKE_PATH, content=body, headers={"Content-Type": "application/json"}
            )
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"POST {INTAKE_PATH}: backend at {self.url} not reachable: {exc}"
            ) from None
        if response.status_code == 200:
            return CommandResult.model_validate_json(response.content)
        try:
            problem = Problem.model_validate_json(response.content)
        except ValidationError:
            raise BackendUnavailable(
                f"POST {INTAKE_PATH}: HTTP {response.status_code}: {response.text[:200]}"
            ) from None
        raise CommandError(problem)
