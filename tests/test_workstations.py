"""The audit trail's "where": every command names a workstation the server registered.

Real backends on loopback ports with their own SQLite files (the conftest fixtures),
driven over HTTP as a console would.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from conftest import Backend, make_config

from cadterm.protocol.domain import Role
from cadterm.server.config import WorkstationEntry


def key() -> str:
    return uuid.uuid4().hex


def post(backend: Backend, role: Role, **body: Any) -> httpx.Response:
    body.setdefault("type", "book_on")
    body.setdefault("idempotency_key", key())
    body.setdefault("callsign", f"U{uuid.uuid4().hex[:5].upper()}")
    body.setdefault("unit_type", "patrol_car")
    with httpx.Client(base_url=backend.url, headers=backend.headers(role), timeout=10) as client:
        return client.post("/v1/commands", json=body)


def head(backend: Backend) -> int:
    return httpx.get(f"{backend.url}/v1/health", timeout=10).json()["seq"]


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


def desks_backend(backend_factory) -> Backend:
    """A backend with one open desk and one desk only the dispatcher may use."""
    return backend_factory(
        make_config(
            workstations=[
                WorkstationEntry(id="CR1-WS01", description="Open desk"),
                WorkstationEntry(id="CR1-WS02", operators=["disp1"]),
            ]
        )
    )


def test_an_unknown_workstation_is_refused_and_nothing_is_stored(backend_factory) -> None:
    backend = desks_backend(backend_factory)
    assert post(backend, Role.DISPATCHER, workstation="CR1-WS01").status_code == 200
    before = head(backend)
    body = problem(
        post(backend, Role.DISPATCHER, workstation="MY-LAPTOP"), 422, "unknown_workstation"
    )
    assert body["field"] == "workstation"
    assert "MY-LAPTOP" in body["detail"] and "cadterm workstation add" in body["detail"]
    assert body["type"] == "/problems/unknown-workstation"
    assert head(backend) == before


def test_an_operator_not_on_the_allow_list_is_refused(backend_factory) -> None:
    backend = desks_backend(backend_factory)
    before = head(backend)
    body = problem(
        post(backend, Role.SUPERVISOR, workstation="CR1-WS02"), 403, "workstation_not_allowed"
    )
    assert body["field"] == "workstation"
    assert "sup1" in body["detail"] and "CR1-WS02" in body["detail"]
    assert head(backend) == before
    # The operator on the list may use it, and the event records where it came from.
    accepted = post(backend, Role.DISPATCHER, workstation="CR1-WS02")
    assert accepted.status_code == 200, accepted.text
    event = accepted.json()["event"]
    assert (event["operator"], event["workstation"]) == ("disp1", "CR1-WS02")


def test_a_refused_workstation_does_not_use_up_the_key(backend_factory) -> None:
    backend = desks_backend(backend_factory)
    same = key()
    problem(
        post(backend, Role.DISPATCHER, idempotency_key=same, workstation="NOPE"),
        422,
        "unknown_workstation",
    )
    retry = post(backend, Role.DISPATCHER, idempotency_key=same, workstation="CR1-WS01")
    assert retry.status_code == 200, retry.text
    assert retry.json()["replayed"] is False


def test_a_missing_workstation_is_a_422_naming_the_field(backend: Backend) -> None:
    body = {
        "type": "book_on",
        "idempotency_key": key(),
        "callsign": "AB12",
        "unit_type": "van",
    }
    with httpx.Client(base_url=backend.url, headers=backend.headers(), timeout=10) as client:
        refused = problem(client.post("/v1/commands", json=body), 422, "invalid_command")
    assert refused["field"] == "workstation"
    assert head(backend) == 0


def test_another_operators_key_is_neither_blocked_nor_revealed(backend_factory) -> None:
    backend = desks_backend(backend_factory)
    shared = key()
    mine = post(
        backend, Role.DISPATCHER, idempotency_key=shared, workstation="CR1-WS01", callsign="AB12"
    )
    assert mine.status_code == 200, mine.text

    # The supervisor, with the same key and a different command: simply executed, with
    # nothing in the answer that says someone else had used the key.
    theirs = post(
        backend, Role.SUPERVISOR, idempotency_key=shared, workstation="CR1-WS01", callsign="CD34"
    )
    assert theirs.status_code == 200, theirs.text
    assert theirs.json()["replayed"] is False
    assert theirs.json()["event"]["callsign"] == "CD34"
    fresh = post(
        backend, Role.SUPERVISOR, idempotency_key=key(), workstation="CR1-WS01", callsign="EF56"
    )
    assert set(theirs.json()) == set(fresh.json())

    # Each operator's retry gets their own first answer back.
    again = post(
        backend, Role.DISPATCHER, idempotency_key=shared, workstation="CR1-WS01", callsign="AB12"
    )
    assert again.json()["replayed"] is True and again.json()["seq"] == mine.json()["seq"]
    again = post(
        backend, Role.SUPERVISOR, idempotency_key=shared, workstation="CR1-WS01", callsign="CD34"
    )
    assert again.json()["replayed"] is True and again.json()["seq"] == theirs.json()["seq"]
    assert head(backend) == 3
