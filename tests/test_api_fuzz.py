"""API fuzzing: schemathesis drives a real server from its own `/openapi.json`.

Every operation is called with data the document says is valid and data it says is not;
every answer must be one the document declares (status, content and schema), valid data
must be accepted or refused for a reason in the domain, and invalid data must be
refused. A stateful phase follows the document's links from the commands that create
incidents and book units on to the queries that read them back, so the state-changing
paths are exercised on real incidents and units, not just 404s.

Bounded: a fixed number of examples per operation, derandomised, and a step limit for
the stateful phase, so the file runs in well under a minute on a small machine.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from conftest import TOKENS, BackendThread, make_config
from hypothesis import HealthCheck, settings
from schemathesis import Case, Response
from schemathesis.checks import CheckContext
from schemathesis.specs.openapi.checks import (
    negative_data_rejection,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from cadterm.protocol.domain import Role
from cadterm.server.config import Limits

not_a_server_error = schemathesis.checks.not_a_server_error

TOKEN = TOKENS[Role.SUPERVISOR]  # a supervisor may issue every command
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# ...but only the website's intake login may submit online reports.
INTAKE_PATH = "/v1/intake/reports"
INTAKE_AUTH = {"Authorization": f"Bearer {TOKENS[Role.INTAKE]}"}
# CADTERM_FUZZ_EXAMPLES raises both counts for a deeper run by hand.
MAX_EXAMPLES = int(os.environ.get("CADTERM_FUZZ_EXAMPLES", "15"))  # per operation and phase
STATEFUL_RUNS = MAX_EXAMPLES  # scenarios of the stateful phase...
STATEFUL_STEPS = 12  # ...each at most this many calls long (8 left too few on a command)

#: Statuses a command the schema calls valid may still get: the domain refusing it
#: (unknown incident or callsign, a conflict, an opening code the server does not know).
DOMAIN_REFUSALS = ["2xx", "403", "404", "409", "422"]  # 403: see only_reports_forbidden
#: schemathesis' statuses for refused invalid data, and 413.
NEGATIVE_REFUSALS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422"]
NEGATIVE_REFUSALS += ["428", "429", "5xx"]
#: What a report the schema calls valid may get: taken, too large, or refused (see CONFIG).
INTAKE_ANSWERS = ["2xx", "413", "422"]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261201,
        "headers": AUTH,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        "checks": {
            "positive_data_acceptance": {"expected-statuses": ["2xx"]},
            # A body over max_body_bytes (200 transcript lines of the longest text are)
            # is refused whole, 413, before it is read: as right an answer as a 422.
            "negative_data_rejection": {"expected-statuses": NEGATIVE_REFUSALS},
        },
        "operations": [
            {
                "include-path": "/v1/commands",
                "checks": {"positive_data_acceptance": {"expected-statuses": DOMAIN_REFUSALS}},
            },
            {
                # A report's words go in `text` (web form) or `transcript` (chat), never
                # both, and one must be there: a rule across fields, refused in the domain
                # (report_incomplete, 422) as self_link is for a command.
                "include-path": INTAKE_PATH,
                "checks": {"positive_data_acceptance": {"expected-statuses": INTAKE_ANSWERS}},
            },
            {
                "include-path-regex": "^/v1/(incidents|units|history/units)/",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "404"]}},
            },
        ],
    }
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
]


def seed(base_url: str) -> None:
    """Book units on and open incidents, so reads and commands meet real targets."""
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=10, trust_env=False) as http:
        for callsign in ("AB12", "AB13", "ARV 1"):
            command = {
                "type": "book_on",
                "idempotency_key": uuid.uuid4().hex,
                "workstation": "ws-test",
                "callsign": callsign,
                "unit_type": "patrol_car",
            }
            assert http.post("/v1/commands", json=command).status_code == 200
        for grade in (1, 2):
            command = {
                "type": "create_incident",
                "idempotency_key": uuid.uuid4().hex,
                "workstation": "ws-test",
                "grade": grade,
                "incident_type": "ASSAULT",
                "location": {"address": "14 Corporation Street, Birmingham"},
            }
            assert http.post("/v1/commands", json=command).status_code == 200


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real server on a loopback port, with units and incidents, limits out of the way."""
    limits = Limits(
        command_rate=10_000,
        command_burst=10_000,
        bad_request_rate=10_000,
        bad_request_burst=10_000,
        intake_rate=10_000,
        intake_burst=10_000,
    )
    db = Path(tmp_path_factory.mktemp("fuzz")) / "cad.db"
    with BackendThread(db, make_config(limits=limits)) as backend:
        seed(backend.url)
        yield backend.url


@pytest.fixture(scope="module")
def api_schema(fuzzed_server: str):
    return schemathesis.openapi.from_url(f"{fuzzed_server}/openapi.json", config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


def never_invalid_command(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A command the schema calls valid is never refused as malformed by the server.

    The domain may refuse it (`422 unknown_incident_type`, `self_link`...), but
    `invalid_command` would mean the document and the server disagree on its shape.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    code = response.json().get("code")
    assert code not in ("invalid_command", "malformed_json"), response.text
    return None


def only_reports_forbidden(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """The supervisor may issue every command but one: submit_report is the website's."""
    if case.operation.path == "/v1/commands" and response.status_code == 403:
        assert isinstance(case.body, dict) and case.body.get("type") == "submit_report", (
            response.text
        )
    return None


def fresh_key(case: Case) -> None:
    """Give a command the schema calls valid a new idempotency key.

    Generated keys repeat (the smallest valid string is the same every time), and a
    repeated key with a different body is refused as reused: every valid command would
    then be refused for that reason alone. Negative cases keep theirs, which may be
    what is wrong with them.
    """
    meta = case.meta
    positive = meta is None or meta.generation.mode.is_positive
    if positive and isinstance(case.body, dict) and "idempotency_key" in case.body:
        case.body["idempotency_key"] = uuid.uuid4().hex
        # Any typeable workstation is valid input, but only registered ones are known.
        case.body["workstation"] = "ws-test"


ANSWERS: Counter[tuple[str, str, int]] = Counter()


def record(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """Count the answers each operation gave, to check what the run reached."""
    ANSWERS[(case.method, case.operation.path, response.status_code)] += 1
    return None


BOUNDS = settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)


@schema.parametrize()
@BOUNDS
def test_every_operation_answers_as_documented(case: Case) -> None:
    fresh_key(case)
    headers = INTAKE_AUTH if case.operation.path == INTAKE_PATH else AUTH
    case.call_and_validate(
        headers=headers,
        checks=CHECKS,
        additional_checks=[never_invalid_command, only_reports_forbidden, record],
    )


def test_links_lead_to_real_incidents_and_units(api_schema) -> None:
    """The stateful phase: follow the links from lists and commands to what they name."""
    ANSWERS.clear()

    class Links(api_schema.as_state_machine()):
        def before_call(self, case: Case) -> None:
            fresh_key(case)

        def get_call_kwargs(self, case: Case) -> dict[str, Any]:
            return {"headers": INTAKE_AUTH if case.operation.path == INTAKE_PATH else AUTH}

        def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
            case.validate_response(
                response,
                checks=CHECKS,
                additional_checks=[never_invalid_command, only_reports_forbidden, record],
                transport_kwargs=kwargs,
            )

    Links.run(
        settings=settings(BOUNDS, max_examples=STATEFUL_RUNS, stateful_step_count=STATEFUL_STEPS)
    )
    # The run reached real targets and changed the picture, not only 404s.
    reached = {(method, path) for method, path, status in ANSWERS if status == 200}
    assert ("GET", "/v1/incidents/{reference}") in reached, ANSWERS
    assert ("GET", "/v1/units/{callsign}") in reached, ANSWERS
    assert ("POST", "/v1/commands") in reached, ANSWERS
