"""References offline: a block reserved for each workstation, used while no backend answers.

An incident opened offline keeps the reference the dispatcher was shown: it comes from
the workstation's block, which the server set aside in advance and never gives anyone
else.
"""

from __future__ import annotations

import pytest
from test_server_commands import SCENE, Console


@pytest.fixture
def desk(backend):
    console = Console(backend)
    yield console
    console.close()


def reserve(desk: Console, count: int) -> list[str]:
    return desk.ok("reserve_references", count=count)["event"]["references"]


def test_a_block_is_the_next_references_and_nobody_else_gets_them(desk: Console) -> None:
    first = desk.create_incident()
    block = reserve(desk, 3)
    number = int(first[:4])
    assert [int(r[:4]) for r in block] == [number + 1, number + 2, number + 3]
    assert all(r[5:] == first[5:] for r in block)
    assert desk.state()["reserved"] == {"ws-test": block}
    # The next incident opened online is given the number after the block.
    assert int(desk.create_incident()[:4]) == number + 4


def test_an_incident_opened_offline_keeps_its_reserved_reference(desk: Console) -> None:
    block = reserve(desk, 2)
    before = desk.state()["log_number"]
    event = desk.ok(
        "create_incident",
        grade=1,
        incident_type="RTC",
        location=SCENE,
        reference=block[1],
    )["event"]
    assert event["reference"] == block[1] and event["reserved"] is True
    state = desk.state()
    assert block[1] in state["incidents"]
    assert state["reserved"] == {"ws-test": [block[0]]}
    assert state["log_number"] == before  # counted when reserved, not again
    # Used once: a second incident cannot take it.
    problem = desk.refused(
        "create_incident",
        409,
        "reference_not_reserved",
        grade=2,
        incident_type="RTC",
        location=SCENE,
        reference=block[1],
    )
    assert problem["field"] == "reference" and block[1] in problem["detail"]


def test_another_workstations_block_is_not_yours(desk: Console) -> None:
    block = reserve(desk, 1)
    body = {
        "type": "create_incident",
        "idempotency_key": "other-desk-0001",
        "workstation": "ws-colleague",
        "grade": 2,
        "incident_type": "RTC",
        "location": SCENE,
        "reference": block[0],
    }
    response = desk.client.post("/v1/commands", json=body)
    assert response.status_code == 409, response.text
    assert response.json()["code"] == "reference_not_reserved"


def test_a_workstation_cannot_hoard_references(desk: Console) -> None:
    reserve(desk, 100)
    reserve(desk, 100)
    problem = desk.refused("reserve_references", 409, "too_many_reserved", count=1)
    assert "200" in problem["detail"]
