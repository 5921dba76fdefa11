"""The call form on a real terminal: F10 in tmux at 80x24, a call typed at speed, sent.

`cadterm demo --fresh` runs the console with its town's gazetteer. The whole call goes
to tmux in bursts (each answer with its Enter, as a fast call handler types ahead), and
the incident must be opened with every answer in the right place.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_map_terminal import _start_demo
from test_terminal import Tmux, tmux, wait_for  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_f10_opens_the_form_and_a_call_typed_ahead_is_created(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    _start_demo(tmux, tmp_path, "C.UTF-8")
    tmux.key("F10")
    wait_for(lambda: "NEW CALL" in tmux.screen(), 15, "the call form")
    screen = tmux.screen().splitlines()
    assert len(screen) == 24 and all(len(row) <= 80 for row in screen)
    assert screen[0].strip() == "NEW CALL"
    assert [row.split()[0] for row in screen[1:13]] == [
        "Caller", "Phone", "Location", "Type", "What", "Threat", "Harm", "Risk",
        "Investigate", "Vulnerable", "Engagement", "Grade",
    ]  # fmt: skip
    for answer in ("Sam [b]Okoro", "07700 900456"):
        tmux.type(answer)  # the answer and its Enter in one burst
    tmux.type("37 Gas", enter=False)
    tmux.key("Tab")
    tmux.key("Enter")
    for answer in ("assault", "fight outside the flats"):
        tmux.type(answer)
    tmux.type("he has a knife", enter=False)
    wait_for(lambda: "suggested 1 Emergency: weapon involved" in tmux.screen(), 15, "the guidance")
    screen = tmux.screen()
    for row, answer in (("Caller", "Sam [b]Okoro"), ("Location", "37 Gasworks Row"),
                        ("Type", "assault"), ("Threat", "he has a knife")):  # fmt: skip
        line = next(r for r in screen.splitlines() if r.split()[:1] == [row])
        assert line.split(None, 1)[1].strip() == answer, screen
    tmux.key("F10")
    wait_for(lambda: "done: new grade 1 ASSAULT at 37 Gasworks Row" in tmux.screen(), 15,
             "the incident opened")  # fmt: skip
    screen = tmux.screen()
    assert "NEW CALL" not in screen
    assert "(house in South)" in screen  # placed by the gazetteer
    assert any(r[:1].isdigit() and " 1  ASSAULT" in r for r in screen.splitlines()), screen
