"""The simulated force's website: seeded online reports, posted to the intake API."""

from __future__ import annotations

import itertools

from conftest import TOKENS, Backend

from cadterm.client.queries import fetch_state
from cadterm.protocol.commands import SubmitReport
from cadterm.protocol.domain import Role
from cadterm.sim.clock import SimClock
from cadterm.sim.online import plan_reports, send_reports


def test_the_same_seed_plans_the_same_reports_and_each_is_a_valid_command() -> None:
    first, again = plan_reports(7, rate=1.0, duration=6 * 3600), plan_reports(7, 1.0, 6 * 3600)
    assert first == again
    assert first != plan_reports(8, 1.0, 6 * 3600)
    # About one a minute for six hours: a Poisson count well inside these bounds.
    assert 250 < len(first) < 470
    channels = {r.fields["channel"] for r in first}
    assert channels == {"web_form", "chat"}
    for report in first:
        SubmitReport(idempotency_key="k" * 8, workstation="website", **report.fields)
    # Now and then the public's text carries markup or escape sequences.
    hostile = [
        r for r in first if "\x1b" in r.fields.get("text", "") or "[" in r.fields.get("text", "")
    ]
    assert 0 < len(hostile) < len(first) // 5
    assert all(a.at < b.at for a, b in itertools.pairwise(first))


async def test_reports_are_posted_as_the_website_would(backend: Backend) -> None:
    planned = plan_reports(3, rate=2.0, duration=600)
    sent = await send_reports(
        backend.url, TOKENS[Role.INTAKE], SimClock(60_000), seed=3, rate=2.0, until=600
    )
    assert sent == len(planned) > 5
    state = fetch_state(backend.url, TOKENS[Role.DISPATCHER])
    waiting = sorted(state.reports.values(), key=lambda r: r.received_at)
    assert [r.website_reference for r in waiting] == [
        p.fields["website_reference"] for p in planned
    ]
    assert {r.operator for r in waiting} == {"web1"}
