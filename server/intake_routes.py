"""``POST /v1/intake/reports``: online reports from a force's website into the triage queue.

The website holds a token of the `intake` role, which reaches this route and
``/v1/whoami`` and nothing else (the guard refuses it everywhere else, and the stream
too): it cannot read the picture or issue a dispatch command. Its reports have their own
rate limit (`Limits.intake_rate`, `Limits.intake_burst`), their size is bounded (the
guard's body limit, then the command's field limits), and their text is stored exactly
as sent and neutralised where it is shown. Each is a `submit_report` command: the
answer carries the `report_received` event, whose `report` is the id the queue shows.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

from cadterm.protocol.commands import CommandResult, SubmitReport
from cadterm.protocol.domain import Operator, Role
from cadterm.protocol.problems import Problem, ProblemCode

from .config import ServerConfig
from .ratelimit import intake_limit
from .responses import GUARDED_STATUSES, PROBLEM_JSON, problem_response, problem_responses
from .service import DispatchService

__all__ = ["register_intake"]


def register_intake(app: FastAPI, service: DispatchService, config: ServerConfig) -> None:
    """Add the intake route to `app`."""
    limit = intake_limit(config.limits)

    @app.post(
        "/v1/intake/reports",
        operation_id="submit_report",
        response_model=CommandResult,
        responses=problem_responses(*GUARDED_STATUSES, 403, 503),
    )
    async def submit_report(report: SubmitReport, request: Request) -> Response:
        """Put a web-form report or a chat transcript in the triage queue (intake role)."""
        operator: Operator = request.scope["state"]["operator"]
        if operator.role != Role.INTAKE:
            return problem_response(
                Problem.of(
                    ProblemCode.FORBIDDEN,
                    f"operator {operator.id} ({operator.role.value}) may not submit_report: "
                    "only an intake login (a force's website) submits online reports",
                )
            )
        refusal = limit.refusal(operator)
        if refusal is not None:
            return refusal
        outcome = await service.execute(report, operator)
        media = "application/json" if outcome.status < 400 else PROBLEM_JSON
        return Response(outcome.body, status_code=outcome.status, media_type=media)
