"""CAD-down mode: with no backend at all, a console's actions show on its own picture at
once, marked provisional; on recovery the journals replay and nothing is lost.

Real backend, real clients with journals and pictures on disk; the backend is stopped
for the outage and started again on the same database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conftest import Backend, make_config
from test_journal import DISPATCHER, FAST, TIMEOUT
from waiting import until

from cadterm.client import DispatchClient
from cadterm.client.journal import JournalStatus
from cadterm.client.provisional import provisional_picture
from cadterm.client.queries import fetch_events
from cadterm.protocol.domain import IncidentStatus, Operator, Role, UnitState
from cadterm.protocol.drafts import draft
from cadterm.protocol.fold import DispatchState

#: When the dispatchers "typed" their offline actions: long enough ago that the server
#: records them as back-entered (over a minute late), as after a real outage.
TYPED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=20)


def console(backend: Backend, folder: Path, workstation: str, reserve: int = 0) -> DispatchClient:
    folder.mkdir(exist_ok=True)
    return DispatchClient(
        [backend.url],
        DISPATCHER,
        workstation=workstation,
        journal_path=folder / "journal.db",
        picture_path=folder / "picture.json",
        backoff=FAST,
        reserve=reserve,
    )


_typed = iter(range(1000))


def offline(kind: str, **fields):
    """A command as a dispatcher typed it during the outage, a minute after the last."""
    return draft(kind, taken_at=TYPED + timedelta(minutes=next(_typed)), **fields)


async def start_shift(backend: Backend, tmp_path: Path) -> tuple[str, str]:
    """Two units on duty and one open incident, seen by both consoles' pictures."""
    async with console(backend, tmp_path / "a", "ws-1", reserve=1) as a:
        await a.wait_live(TIMEOUT)
        for callsign in ("B21", "B22"):
            await a.execute(
                draft(
                    "book_on",
                    callsign=callsign,
                    unit_type="patrol_car",
                    home_sector="North",
                    position={"lat": 53.8, "lon": -1.55},
                )
            )
        opened = await a.execute(
            draft(
                "create_incident", grade=2, incident_type="RTC", location={"address": "1 Mill Rd"}
            )
        )
        await until(lambda: len(a.reserved_references) == 1, timeout=TIMEOUT)
    async with console(backend, tmp_path / "b", "ws-colleague", reserve=1) as b:
        await b.wait_live(TIMEOUT)
        await until(lambda: len(b.reserved_references) == 1, timeout=TIMEOUT)
    return opened.event.reference, "B21"


async def test_offline_actions_show_at_once_as_provisional_and_all_reach_the_log(
    backend: Backend, backend_factory, tmp_path: Path
) -> None:
    reference, callsign = await start_shift(backend, tmp_path)
    backend_factory.stop(backend)

    a = console(backend, tmp_path / "a", "ws-1", reserve=1)
    b = console(backend, tmp_path / "b", "ws-colleague", reserve=1)
    async with a, b:
        assert a.provisional is None  # nothing done offline yet: the picture as saved
        # Console A sends B21 to the open incident; it shows at once, provisional.
        issued = await a.issue(offline("assign_unit", reference=reference, callsign=callsign))
        assert issued.queued
        assert callsign in a.incidents[reference].assigned
        assert a.units[callsign].incident == reference
        assert reference in a.provisional.incidents and callsign in a.provisional.units
        assert callsign not in a.confirmed.incidents[reference].assigned  # never invented
        # A opens two incidents: the first takes its reserved reference, the second
        # (the block used up) a provisional one; a note reaches each by its reference.
        first = await a.issue(
            offline(
                "create_incident",
                grade=1,
                incident_type="ASSAULT",
                location={"address": "3 Kirkgate"},
            )
        )
        second = await a.issue(
            offline(
                "create_incident",
                grade=3,
                incident_type="THEFT",
                location={"address": "9 Boar Lane"},
            )
        )
        assert first.reference and not first.provisional_reference
        assert second.provisional_reference and second.reference.startswith("P1-")
        for opened in (first, second):
            assert a.incidents[opened.reference].status == IncidentStatus.OPEN
            await a.issue(offline("add_note", reference=opened.reference, text="caller rang back"))
            assert a.incidents[opened.reference].chronology[-1].text == "caller rang back"
        # Console B, offline too, sends the same unit elsewhere: a conflict for later.
        b_first = await b.issue(
            offline(
                "create_incident",
                grade=2,
                incident_type="CONCERN",
                location={"address": "5 Park Lane"},
            )
        )
        await b.issue(offline("assign_unit", reference=b_first.reference, callsign=callsign))
        assert b.units[callsign].incident == b_first.reference
        # And A closes the first incident it opened.
        await a.issue(offline("close_incident", reference=first.reference, closing_code="NFA"))
        assert a.incidents[first.reference].status == IncidentStatus.CLOSED
        waiting = a.pending.unsent + b.pending.unsent
        assert waiting == 8

    backend.start()
    a = console(backend, tmp_path / "a", "ws-1")
    b = console(backend, tmp_path / "b", "ws-colleague")
    async with a:
        await a.wait_live(TIMEOUT)
        await until(lambda: a.pending.unsent == 0 and a.provisional is None, timeout=TIMEOUT)
        real = a.reference_map[second.reference]
        assert real in a.incidents and real[0].isdigit()
        assert a.incidents[real].chronology[-1].text == "caller rang back"
    async with b:
        await b.wait_live(TIMEOUT)
        await until(lambda: b.pending.unsent == 0, timeout=TIMEOUT)
        rejected = b.rejected()
        await until(lambda: b.provisional is None, timeout=TIMEOUT)

    # Nothing lost: every action is in the log or waits in a reconciliation list.
    events = await asyncio.to_thread(fetch_events, backend.url, DISPATCHER, 0, 500)
    late = [e for e in events if e.workstation in ("ws-1", "ws-colleague") and e.back_entered]
    assert len(late) + len(rejected) == waiting
    assert [entry.kind for entry in rejected] == ["assign_unit"]
    assert rejected[0].problem.code == "unit_committed"
    assert rejected[0].waited
    assert all(e.taken_at is not None and e.taken_at < e.at for e in late)


async def test_a_console_that_never_reached_a_backend_still_applies_its_actions(
    backend: Backend, backend_factory, tmp_path: Path
) -> None:
    backend_factory.stop(backend)
    async with console(backend, tmp_path / "c", "ws-offline") as c:
        opened = await c.issue(
            draft("create_incident", grade=2, incident_type="RTC", location={"address": "A1"})
        )
        assert opened.provisional_reference
        incident = c.incidents[opened.reference]
        assert incident.chronology[0].operator == "not-known-offline"


def test_the_provisional_picture_never_changes_the_confirmed_one() -> None:
    """Copy on write: every incident and unit an action changes is a copy."""
    confirmed = DispatchState()
    operator = Operator(id="disp1", name="D", role=Role.DISPATCHER)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def stamped(kind: str, **fields):
        return (
            draft(kind, **fields)
            .keyed(f"k{len(fields)}-{kind}", "ws-1")
            .model_copy(update={"taken_at": at})
        )

    setup = provisional_picture(
        confirmed,
        [
            stamped("book_on", callsign="B1", unit_type="patrol_car", home_sector="North"),
            stamped("book_on", callsign="B2", unit_type="patrol_car", home_sector="North"),
            stamped("create_incident", grade=1, incident_type="RTC", location={"address": "X"}),
        ],
        operator,
    )
    base = setup.state.model_copy(deep=True)
    before = base.model_dump()
    reference = next(iter(base.incidents))
    actions = [
        stamped("assign_unit", reference=reference, callsign="B1"),
        stamped("set_unit_state", callsign="B1", state=int(UnitState.AT_SCENE)),
        stamped("add_note", reference=reference, text="n"),
        stamped("create_incident", grade=2, incident_type="RTC", location={"address": "Y"}),
        stamped("close_incident", reference=reference, closing_code="NFA"),
        stamped("book_off", callsign="B2"),
    ]
    shown = provisional_picture(base, actions, operator)
    assert base.model_dump() == before
    assert all(a.event is not None for a in shown.actions), [a.problem for a in shown.actions]
    assert shown.state.incidents[reference].status == IncidentStatus.CLOSED
    assert {reference} < shown.incidents and {"B1", "B2"} <= shown.units
    # A refused action is kept with its reason, and changes nothing.
    again = provisional_picture(base, [stamped("add_note", reference="NOPE-1", text="n")], operator)
    assert again.actions[0].problem is not None and not again.incidents


async def test_only_waiting_commands_are_provisional_never_live_ones(
    backend: Backend, tmp_path: Path
) -> None:
    async with console(backend, tmp_path / "d", "ws-test") as d:
        await d.wait_live(TIMEOUT)
        issued = await d.issue(
            draft("create_incident", grade=2, incident_type="RTC", location={"address": "Z"})
        )
        assert issued.result is not None and d.provisional is None
        entry = d.journal_entry(issued.entry.key)
        assert entry.status == JournalStatus.SENT and not entry.waited


async def test_commands_on_an_incident_whose_offline_opening_was_refused_wait_to_be_put_right(
    backend_factory, tmp_path: Path
) -> None:
    # This force has no THEFT code, though consoles know it: the opening is refused.
    backend = backend_factory(make_config(incident_types={"RTC": "Road traffic collision"}))
    backend_factory.stop(backend)
    async with console(backend, tmp_path / "e", "ws-1") as e:
        opened = await e.issue(
            offline("create_incident", grade=3, incident_type="THEFT", location={"address": "Q"})
        )
        assert opened.provisional_reference
        await e.issue(offline("add_note", reference=opened.reference, text="more"))
        backend.start()
        await until(lambda: e.pending.unsent == 0, timeout=TIMEOUT)
        refused = e.rejected()
    assert [entry.kind for entry in refused] == ["create_incident", "add_note"]
    assert refused[0].problem.code == "unknown_incident_type"
    # The note was never sent to some other incident: it waits, with the reason.
    assert refused[1].problem.code == "unknown_incident"
    assert "its opening was refused" in refused[1].problem.detail
    events = await asyncio.to_thread(fetch_events, backend.url, DISPATCHER, 0, 100)
    assert not [event for event in events if event.workstation == "ws-1"]


def test_the_provisional_picture_keeps_everything_the_confirmed_one_holds() -> None:
    """Every field of the picture is carried over: nothing the backend sent (a waiting
    online report, a reserved block) goes missing from the screen while CAD is down."""
    operator = Operator(id="disp1", name="D", role=Role.DISPATCHER)
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)

    def stamped(key: str, kind: str, **fields):
        return draft(kind, **fields).keyed(key, "ws-1").model_copy(update={"taken_at": at})

    base = provisional_picture(
        DispatchState(),
        [
            stamped("key-00001", "book_on", callsign="B1", unit_type="patrol_car"),
            stamped("key-00002", "submit_report", channel="web_form", text="Bike stolen"),
            stamped("key-00003", "reserve_references", count=3),
        ],
        operator,
    ).state
    assert base.reports and base.reserved and base.units
    shown = provisional_picture(
        base, [stamped("key-00004", "add_note", reference="NONE-1", text="x")], operator
    ).state
    for name in DispatchState.model_fields:
        assert getattr(shown, name) == getattr(base, name), name
