"""Problem documents: how the server says what was wrong.

Every refusal over HTTP is an RFC 9457 problem document (``application/problem+json``)
with a stable machine `code`, a human `detail` saying what was wrong, and where it helps
the `field` at fault. A conflict also carries the `current` version and the `changes`
made since the version the operator expected, so the console can show what moved.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["PROBLEM_STATUS", "Problem", "ProblemCode"]


class ProblemCode(StrEnum):
    """Every kind of refusal, each with one HTTP status (see `PROBLEM_STATUS`)."""

    MALFORMED_REQUEST = "malformed_request"
    MALFORMED_JSON = "malformed_json"
    NESTING_TOO_DEEP = "nesting_too_deep"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_QUERY = "invalid_query"
    BAD_HANDSHAKE = "bad_handshake"
    INVALID_COMMAND = "invalid_command"
    UNKNOWN_INCIDENT = "unknown_incident"
    UNKNOWN_CALLSIGN = "unknown_callsign"
    UNKNOWN_INCIDENT_TYPE = "unknown_incident_type"
    UNKNOWN_CLOSING_CODE = "unknown_closing_code"
    INCIDENT_CLOSED = "incident_closed"
    INCIDENT_NOT_CLOSED = "incident_not_closed"
    UNIT_OFF_DUTY = "unit_off_duty"
    UNIT_ON_DUTY = "unit_on_duty"
    UNIT_NOT_DEPLOYABLE = "unit_not_deployable"
    UNIT_COMMITTED = "unit_committed"
    UNIT_ALREADY_ASSIGNED = "unit_already_assigned"
    UNIT_NOT_ASSIGNED = "unit_not_assigned"
    NO_EMERGENCY = "no_emergency"
    ALREADY_LINKED = "already_linked"
    SELF_LINK = "self_link"
    NO_CHANGE = "no_change"
    VERSION_CONFLICT = "version_conflict"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    UNAUTHENTICATED = "unauthenticated"
    FORBIDDEN = "forbidden"
    UNKNOWN_WORKSTATION = "unknown_workstation"
    WORKSTATION_NOT_ALLOWED = "workstation_not_allowed"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    BODY_TOO_LARGE = "body_too_large"
    RATE_LIMITED = "rate_limited"
    BATCH_OVER_BURST = "batch_over_burst"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    REQUEST_TIMEOUT = "request_timeout"
    TOO_MANY_CONNECTIONS = "too_many_connections"
    STORE_UNAVAILABLE = "store_unavailable"
    TAKEN_AT_OUT_OF_RANGE = "taken_at_out_of_range"
    FIX_TIME_OUT_OF_RANGE = "fix_time_out_of_range"
    STALE_FIX = "stale_fix"
    GRADE_REASON_REQUIRED = "grade_reason_required"
    REFERENCE_NOT_RESERVED = "reference_not_reserved"
    TOO_MANY_RESERVED = "too_many_reserved"
    UNKNOWN_REPORT = "unknown_report"
    TRIAGE_QUEUE_FULL = "triage_queue_full"
    REPORT_INCOMPLETE = "report_incomplete"
    REPORT_TOO_LONG = "report_too_long"
    TRIAGE_INCOMPLETE = "triage_incomplete"
    INTERNAL = "internal"


PROBLEM_STATUS: dict[ProblemCode, int] = {
    ProblemCode.MALFORMED_REQUEST: 400,
    ProblemCode.MALFORMED_JSON: 400,
    ProblemCode.NESTING_TOO_DEEP: 400,
    ProblemCode.UNSUPPORTED_MEDIA_TYPE: 415,
    ProblemCode.INVALID_QUERY: 422,
    ProblemCode.BAD_HANDSHAKE: 400,
    ProblemCode.INVALID_COMMAND: 422,
    ProblemCode.UNKNOWN_INCIDENT: 404,
    ProblemCode.UNKNOWN_CALLSIGN: 404,
    ProblemCode.UNKNOWN_INCIDENT_TYPE: 422,
    ProblemCode.UNKNOWN_CLOSING_CODE: 422,
    ProblemCode.INCIDENT_CLOSED: 409,
    ProblemCode.INCIDENT_NOT_CLOSED: 409,
    ProblemCode.UNIT_OFF_DUTY: 409,
    ProblemCode.UNIT_ON_DUTY: 409,
    ProblemCode.UNIT_NOT_DEPLOYABLE: 409,
    ProblemCode.UNIT_COMMITTED: 409,
    ProblemCode.UNIT_ALREADY_ASSIGNED: 409,
    ProblemCode.UNIT_NOT_ASSIGNED: 409,
    ProblemCode.NO_EMERGENCY: 409,
    ProblemCode.ALREADY_LINKED: 409,
    ProblemCode.SELF_LINK: 422,
    ProblemCode.NO_CHANGE: 409,
    ProblemCode.VERSION_CONFLICT: 409,
    ProblemCode.IDEMPOTENCY_KEY_REUSED: 422,
    ProblemCode.UNAUTHENTICATED: 401,
    ProblemCode.FORBIDDEN: 403,
    # The workstation is part of the body, so an unknown one is invalid input (422);
    # a registered one the operator may not use is a refusal of who they are (403).
    ProblemCode.UNKNOWN_WORKSTATION: 422,
    ProblemCode.WORKSTATION_NOT_ALLOWED: 403,
    ProblemCode.ORIGIN_NOT_ALLOWED: 403,
    ProblemCode.BODY_TOO_LARGE: 413,
    ProblemCode.RATE_LIMITED: 429,
    ProblemCode.BATCH_OVER_BURST: 422,
    ProblemCode.NOT_FOUND: 404,
    ProblemCode.METHOD_NOT_ALLOWED: 405,
    ProblemCode.REQUEST_TIMEOUT: 408,
    ProblemCode.TOO_MANY_CONNECTIONS: 503,
    ProblemCode.STORE_UNAVAILABLE: 503,
    ProblemCode.TAKEN_AT_OUT_OF_RANGE: 422,
    ProblemCode.FIX_TIME_OUT_OF_RANGE: 422,
    # A newer fix is already held: this one is not where the unit is.
    ProblemCode.STALE_FIX: 409,
    ProblemCode.GRADE_REASON_REQUIRED: 422,
    ProblemCode.REFERENCE_NOT_RESERVED: 409,
    ProblemCode.TOO_MANY_RESERVED: 409,
    ProblemCode.UNKNOWN_REPORT: 404,
    # The control room is not keeping up with its online reports: the website should
    # keep the report and send it again later (or point the public to 101 / 999).
    ProblemCode.TRIAGE_QUEUE_FULL: 503,
    ProblemCode.REPORT_INCOMPLETE: 422,
    ProblemCode.REPORT_TOO_LONG: 422,
    ProblemCode.TRIAGE_INCOMPLETE: 422,
    ProblemCode.INTERNAL: 500,
}


class Problem(BaseModel):
    """An RFC 9457 problem document with cadterm's extension members."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(description="URI reference naming the problem kind: /problems/<code>.")
    title: str
    status: int
    code: ProblemCode
    detail: str = Field(description="What was wrong, in words an operator can act on.")
    field: str | None = Field(default=None, description="Dotted path of the field at fault.")
    current: dict[str, Any] | None = Field(
        default=None, description="On a conflict: the target as it is now."
    )
    changes: list[str] | None = Field(
        default=None, description="On a version conflict: what changed since that version."
    )
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="On invalid input: every field error found."
    )

    @classmethod
    def of(cls, code: ProblemCode, detail: str, **extra: Any) -> Problem:
        """Build the problem document for `code`."""
        return cls(
            type=f"/problems/{code.value.replace('_', '-')}",
            title=code.value.replace("_", " ").capitalize(),
            status=PROBLEM_STATUS[code],
            code=code,
            detail=detail,
            **extra,
        )
