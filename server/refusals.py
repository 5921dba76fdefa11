"""Problem documents for what the framework refuses before a route runs.

A body that is not JSON or not a valid command, a bad query, an unknown path or
method, and any unexpected failure: each becomes a problem document of a documented
code. Malformed requests are marked so the guard counts them against the address.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cadterm.protocol.commands import COMMAND_TYPES
from cadterm.protocol.problems import Problem, ProblemCode

from .guard import mark_refused
from .responses import problem_response
from .store.base import StoreUnavailable

__all__ = ["answer_refusals"]

log = logging.getLogger("cadterm.server")


def answer_refusals(app: FastAPI) -> None:
    """Install the handlers that turn `app`'s errors into problem documents."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            mark_refused(request.scope)
            return problem_response(
                Problem.of(ProblemCode.MALFORMED_JSON, "request body is not valid JSON")
            )
        if any(
            err.get("type") == "missing" and tuple(err.get("loc", ())) == ("body",)
            for err in errors
        ):
            # No body at all, where the route takes one: as malformed as a broken one.
            mark_refused(request.scope)
            return problem_response(
                Problem.of(
                    ProblemCode.MALFORMED_JSON, "the request body is empty: send a JSON document"
                )
            )
        if all(err.get("loc", ("body",))[0] != "body" for err in errors):
            mark_refused(request.scope)
            return problem_response(_invalid(errors, ProblemCode.INVALID_QUERY))
        return problem_response(_invalid(errors, ProblemCode.INVALID_COMMAND))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        mark_refused(request.scope)
        headers = None
        if exc.status_code == 404:
            code, detail = ProblemCode.NOT_FOUND, f"no such path {request.url.path!r}"
        elif exc.status_code == 405:
            code, headers = ProblemCode.METHOD_NOT_ALLOWED, exc.headers
            detail = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code < 500:
            code, detail = ProblemCode.MALFORMED_REQUEST, str(exc.detail)
        else:
            code, detail = ProblemCode.INTERNAL, str(exc.detail)
        return problem_response(Problem.of(code, detail), headers=headers)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(request: Request, exc: StoreUnavailable) -> Response:
        # A read while the database is away (a node of a cluster): say so, and when to
        # ask again, rather than calling it an internal error.
        log.warning("%s %s: %s", request.method, request.url.path, exc)
        return problem_response(
            Problem.of(
                ProblemCode.STORE_UNAVAILABLE,
                f"the event store is not answering ({exc}); ask again shortly",
            ),
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem.of(ProblemCode.INTERNAL, "internal error; the command was not applied")
        )


def _invalid(errors: list[dict[str, Any]], code: ProblemCode) -> Problem:
    """A problem document naming every invalid field of a command body or query."""
    cleaned: list[dict[str, Any]] = []
    for err in errors:
        # Drop the body root and the union tag so the path reads like the JSON sent,
        # for a command alone (`divert`) and in a batch (`commands.3.divert`).
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if loc and loc[0] in COMMAND_TYPES:
            loc = loc[1:]
        elif len(loc) > 2 and loc[0] == "commands" and loc[2] in COMMAND_TYPES:
            del loc[2]
        cleaned.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    first = cleaned[0] if cleaned else {"field": "", "message": "invalid command"}
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in cleaned[:5])
    return Problem.of(code, detail, field=first["field"] or None, errors=cleaned)
