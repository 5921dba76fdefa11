"""Putting the record right after CAD was down: the reconciliation view and its choices.

A real console (Textual, headless) talks to a real backend through a loopback proxy
that the test switches off and on: the console goes offline, a dispatcher acts on it,
another operator meanwhile changes the server's picture, and the link comes back. The
refused command must appear with what the console did, why it was refused, what the
server holds now and the choices; each choice is then recorded, on the server where it
changes the record and in the journal and its summary file always.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import Backend
from console_helpers import body_text, post_command, server_incident, server_unit
from faultproxy import FaultProxy
from test_console import Console, create, number, open_console, seen

from cadterm.client.journal import JournalEntry, JournalStatus, Resolution
from cadterm.client.outage import OutageSummary, summary_path, write_summary
from cadterm.domain.reconcile import offline_duplicates
from cadterm.protocol.domain import (
    ChronologyEntry,
    Grade,
    Incident,
    IncidentLink,
    LinkRelation,
    Location,
    Position,
    SourceChannel,
)
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.tui.incident_queue import short_reference


async def _refused_after_the_outage(console: Console, backend: Backend, proxy: FaultProxy):
    """Offline, send B21 to the first incident; meanwhile B21 goes to the second."""
    first, second = create(backend, "5 Bridge Street"), create(backend, "8 Mill Road")
    post_command(backend, type="book_on", callsign="B21", unit_type="patrol_car")
    post_command(backend, type="book_on", callsign="B22", unit_type="patrol_car")
    await seen(console, first, second)
    stale = console.app.query_one("#stale")
    proxy.refuse(True)
    proxy.cut_all()
    await console.until(lambda: stale.has_class("-shown"), 10, what="the console offline")

    await console.line(f"a {number(first)} B21")
    await console.until(lambda: "journalled" in console.said, what="journalled")
    # Shown at once on this console, marked provisional: the row and the unit.
    await console.until(
        lambda: "B21" in (console.row(first) or "") and "~" in console.row(first),
        what="the provisional row",
    )
    assert first in console.app.queue.provisional and "B21" in console.app.units.provisional
    assert "done here, marked ~" in body_text(stale)

    post_command(backend, type="assign_unit", reference=second, callsign="B21")
    proxy.refuse(False)
    await console.until(lambda: not stale.has_class("-shown"), 15, what="live again")
    await console.until(lambda: "was REJECTED" in console.said, 10, what="the refusal")
    await console.until(lambda: not console.app.queue.provisional, what="no longer provisional")
    return first, second


@pytest.fixture
async def proxy(backend: Backend):
    async with FaultProxy("127.0.0.1", backend.port) as running:
        yield running


async def test_a_refused_offline_action_is_listed_with_its_choices_and_withdrawn(
    backend: Backend, proxy: FaultProxy, tmp_path
) -> None:
    async with open_console(proxy.url, tmp_path) as console:
        first, second = await _refused_after_the_outage(console, backend, proxy)
        await console.keys.press("f7")
        await console.until(lambda: "To put right: 1" in console.detail, what="the view")
        detail = console.detail
        assert f"1. assign unit {short_reference(first)} B21\n" in detail
        assert "did:  typed while CAD was down" in detail
        assert f"why:  B21 is committed to {second}" in detail
        # What the server holds now, for both things the command named.
        assert f"now:  {short_reference(first)} open, no units; B21 " in detail
        assert f"on {short_reference(second)}" in detail
        assert "j retry 1 (apply anyway) | j adapt 1 COMMAND | j withdraw 1 REASON" in detail

        await console.line("j withdraw 1 B21 went to the Mill Road call")
        await console.until(
            lambda: server_incident(backend, first)["chronology"][-1]["text"].startswith(
                "Withdrawn: assign unit"
            ),
            what="the withdrawal in the chronology",
        )
        text = server_incident(backend, first)["chronology"][-1]["text"]
        assert "B21 went to the Mill Road call" in text and "while CAD was down" in text
        await console.until(lambda: "1 withdrawn" in console.detail, what="the summary shown")
        kept = summary_path(tmp_path / "j.db").read_text()
        assert "1 waited: 0 sent, 1 withdrawn, 0 waiting" in kept
        assert "assign_unit" in kept and "withdrawn (B21 went to the Mill Road call)" in kept
        assert summary_path(tmp_path / "j.db").stat().st_mode & 0o777 == 0o600


async def test_a_refused_offline_action_can_be_adapted_or_applied_anyway(
    backend: Backend, proxy: FaultProxy, tmp_path
) -> None:
    async with open_console(proxy.url, tmp_path) as console:
        first, _ = await _refused_after_the_outage(console, backend, proxy)
        # A mistake in the replacement leaves the entry as it was.
        await console.line("j adapt 1 a 99999 NOPE")
        await console.until(lambda: "j adapt 1:" in console.said, what="the mistake said")
        await console.line(f"j adapt 1 a {number(first)} B22")
        await console.until(
            lambda: server_unit(backend, "B22").get("incident") == first, what="B22 sent"
        )
        await console.keys.press("f7")
        await console.until(lambda: "1 adapted" in console.detail, what="the summary")
        assert "To put right" not in console.detail


async def test_j_says_what_each_choice_needs(backend: Backend, tmp_path) -> None:
    async with open_console(backend.url, tmp_path) as console:
        for line, said in (
            ("j withdraw 1", "needs the reason"),
            ("j adapt 1", "needs the command"),
            ("j dismiss 1 now", "takes nothing more"),
            ("j frob 1", "'j retry N' (apply anyway)"),
        ):
            await console.line(line)
            await console.until(lambda said=said: said in console.said, what=lambda: console.said)
            # A line the grammar refused stays for correcting: clear it for the next.
            await console.keys.press("ctrl+u")


# --- incidents opened offline on two consoles for one call --------------------------------

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _offline_incident(
    reference: str,
    workstation: str,
    minutes: float,
    address: str,
    at: tuple[float, float] | None = None,
    links: tuple[IncidentLink, ...] = (),
) -> Incident:
    taken = T0 + timedelta(minutes=minutes)
    return Incident(
        reference=reference,
        grade=Grade.EMERGENCY,
        incident_type="RTC",
        location=Location(address=address, position=Position(lat=at[0], lon=at[1]) if at else None),
        source=SourceChannel.EMERGENCY_999,
        created_at=T0 + timedelta(minutes=30),
        updated_at=T0 + timedelta(minutes=30),
        links=list(links),
        chronology=[
            ChronologyEntry(
                at=T0 + timedelta(minutes=30),
                seq=1,
                version=1,
                operator="disp1",
                workstation=workstation,
                kind="incident_created",
                text="Opened",
                taken_at=taken,
            )
        ],
    )


def _picture(*incidents: Incident) -> DispatchState:
    return DispatchState(incidents={incident.reference: incident for incident in incidents})


def test_offline_incidents_at_one_place_on_two_consoles_are_offered_for_linking() -> None:
    state = _picture(
        _offline_incident("0001-01DEC26", "ws-1", 0, "5 Park Lane, Leeds"),
        _offline_incident("0101-01DEC26", "ws-2", 4, "5  park lane leeds"),
        # Same place, too late to be the same call.
        _offline_incident("0102-01DEC26", "ws-2", 40, "5 Park Lane, Leeds"),
        # Close by coordinates, different words.
        _offline_incident("0002-01DEC26", "ws-1", 50, "junction A61", (53.8, -1.55)),
        _offline_incident("0103-01DEC26", "ws-2", 52, "outside Tesco", (53.8009, -1.55)),
    )
    pairs = offline_duplicates(state)
    assert [(p.earlier, p.later) for p in pairs] == [
        ("0001-01DEC26", "0101-01DEC26"),
        ("0002-01DEC26", "0103-01DEC26"),
    ]
    assert "same address" in pairs[0].why and "4 min apart" in pairs[0].why
    assert "100 m apart" in pairs[1].why


def test_no_offer_for_one_console_twice_a_linked_pair_or_incidents_opened_live() -> None:
    linked = IncidentLink(reference="0001-01DEC26", relation=LinkRelation.DUPLICATE_OF)
    live = _offline_incident("0003-01DEC26", "ws-2", 1, "5 Park Lane")
    live.chronology[0] = live.chronology[0].model_copy(update={"taken_at": None})
    state = _picture(
        _offline_incident("0001-01DEC26", "ws-1", 0, "5 Park Lane"),
        _offline_incident("0002-01DEC26", "ws-1", 1, "5 Park Lane"),
        _offline_incident("0101-01DEC26", "ws-2", 2, "5 Park Lane", links=(linked,)),
        live,
    )
    assert offline_duplicates(state) == []


def test_the_outage_summary_on_file_never_carries_escape_sequences(tmp_path) -> None:
    entry = JournalEntry(
        position=1,
        command=None,
        issued_at=T0,
        status=JournalStatus.DISMISSED,
        problem=Problem.of(ProblemCode.UNIT_COMMITTED, "B21 \x1b[2J\x1b]0;owned\x07 is busy"),
        key="k-1",
        kind="assign_unit",
        waited=True,
        resolution=Resolution.WITHDRAWN,
        resolution_note="went \x1b[31melsewhere",
    )
    summary = OutageSummary.of([entry])
    assert summary.withdrawn == 1 and summary.total == 1
    text = write_summary(tmp_path / "j.db", summary, T0).read_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "B21 ?[2J?]0;owned? is busy" in text
