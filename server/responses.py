"""Problem documents as HTTP answers, for the app and for the connection layer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import Response

from cadterm.protocol.problems import Problem

__all__ = [
    "GUARDED_STATUSES",
    "PROBLEM_JSON",
    "problem_bytes",
    "problem_response",
    "problem_responses",
]

PROBLEM_JSON = "application/problem+json"


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    """A problem document as an ASGI response."""
    return Response(
        problem.model_dump_json(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def problem_bytes(problem: Problem, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response carrying `problem`, that closes the connection.

    For refusals made below the ASGI app (a connection over the limit, headers that
    never finish), where there is no request cycle to answer through.
    """
    body = problem.model_dump_json(exclude_none=True).encode()
    lines = [
        f"HTTP/1.1 {problem.status} {HTTPStatus(problem.status).phrase}",
        f"content-type: {PROBLEM_JSON}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring a problem document for each of `statuses`."""
    return {
        status: {
            "model": Problem,
            "description": "Problem document",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted(statuses)
    }


#: Statuses the guard can answer any authenticated route with: no or a bad token,
#: a body too large, too slow or not JSON, a bad query, too many refusals, a failure.
GUARDED_STATUSES = (400, 401, 408, 413, 415, 422, 429, 500)
