"""Online reports on a real terminal: posted over HTTP, seen in the triage queue in tmux.

`cadterm console` runs at 80x24 against a real backend. A report with hostile text is
posted to the intake API as a website would; Ctrl+O must show it in the queue, drawn
literally (the screen is not cleared, nothing is obeyed). Then the call handler creates
an incident from a chat report with keys alone, and the server has it.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
from conftest import TOKENS, Backend
from test_tmux_screens import Tmux, pytestmark, start_console, tmux, wait_for  # noqa: F401

from cadterm.protocol.domain import Role


def _post_report(backend: Backend, **fields: object) -> str:
    body = {
        "type": "submit_report",
        "idempotency_key": uuid.uuid4().hex,
        "workstation": "website",
        **fields,
    }
    reply = httpx.post(
        f"{backend.url}/v1/intake/reports",
        json=body,
        headers={"Authorization": f"Bearer {TOKENS[Role.INTAKE]}"},
        timeout=10,
        trust_env=False,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()["event"]["report"]


def test_a_posted_report_appears_in_the_triage_queue_and_becomes_an_incident(
    tmux: Tmux,  # noqa: F811
    backend: Backend,
    tmp_path: Path,
) -> None:
    start_console(tmux, backend, tmp_path)
    web = _post_report(
        backend,
        channel="web_form",
        text="Bike stolen \x1b[2J [@click=app.quit]x[/] from the rack",
        location="Station car park",
    )
    tmux.run("send-keys", "-t", "console", "C-o")
    wait_for(lambda: "TRIAGE QUEUE  1 online report waiting" in tmux.screen(), 15, "the queue")
    screen = tmux.screen()
    assert web in screen
    # Drawn, not obeyed: the escape shows as a stand-in and the markup as typed.
    assert "Bike stolen \u241b[2J [@click=app.quit]x[/] from the rack" in screen, screen
    assert "Where: Station car park" in screen

    # A chat arrives while the queue is open: it appears without a key pressed.
    chat = _post_report(
        backend,
        channel="chat",
        transcript=[
            {"sender": "public", "text": "Man trying car doors"},
            {"sender": "agent", "text": "Which street?"},
        ],
        location="Market Place",
    )
    wait_for(lambda: "2 online reports waiting" in tmux.screen(), 15, "the chat in the queue")
    assert chat in tmux.screen()

    tmux.run("send-keys", "-t", "console", "Down", "c")
    wait_for(lambda: f"incident from {chat}" in tmux.screen(), 10, "the create prompt")
    tmux.run("send-keys", "-t", "console", "C-u")
    tmux.run("send-keys", "-t", "console", "-l", "2 SUSPICIOUS Market Place, Brackley")
    tmux.run("send-keys", "-t", "console", "Enter")
    wait_for(lambda: "1 online report waiting" in tmux.screen(), 15, "the chat leaving the queue")
    wait_for(lambda: "done: incident from" in tmux.screen(), 15, "the server's answer")

    state = httpx.get(
        f"{backend.url}/v1/state", headers=backend.headers(Role.DISPATCHER), trust_env=False
    ).json()
    assert list(state["reports"]) == [web]
    (incident,) = state["incidents"].values()
    assert (incident["grade"], incident["incident_type"], incident["source"]) == (
        2,
        "SUSPICIOUS",
        "online",
    )
    assert incident["location"]["address"] == "Market Place, Brackley"
    assert incident["description"] == "public: Man trying car doors\nagent: Which street?"

    # Escape goes back to the boards, where the new incident is.
    tmux.run("send-keys", "-t", "console", "Escape")
    wait_for(lambda: "Market Place, Brackley" in tmux.screen(), 10, "the incident on the queue")
    tmux.run("send-keys", "-t", "console", "C-q")
