"""`cadterm pack`: the CAD-down pack, from the live picture or the console's last one.

The pack is read by people under pressure, on paper: it must hold every open incident
(grade 1 first) with its key chronology, every unit and its state, this workstation's
reserved references and the contacts, say of when it is, and carry nothing a terminal
or a browser would act on.
"""

from __future__ import annotations

import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import TOKENS, Backend
from console_helpers import post_command

from cadterm.cli.main import main
from cadterm.client.picture_file import PictureFile
from cadterm.protocol.domain import Role
from cadterm.tui.pack import PackSource, render_html, render_text


def build_shift(backend: Backend) -> tuple[str, str]:
    urgent = post_command(
        backend,
        type="create_incident",
        grade=1,
        incident_type="RTC",
        location={"address": "14 Gasworks Lane <b>"},
        caller={"name": "Zoë Whitfield", "phone": "07700 900123"},
        description="car on fire",
    )["event"]["reference"]
    routine = post_command(
        backend,
        type="create_incident",
        grade=3,
        incident_type="THEFT",
        location={"address": "2 High Street"},
    )["event"]["reference"]
    post_command(backend, type="book_on", callsign="AB12", unit_type="patrol_car")
    post_command(backend, type="assign_unit", reference=urgent, callsign="AB12")
    post_command(backend, type="add_note", reference=urgent, text="<script>alert(1)</script>")
    post_command(backend, type="book_on", callsign="CD34", unit_type="van")
    post_command(backend, type="set_unit_state", callsign="CD34", state=0)
    post_command(backend, type="reserve_references", count=3, workstation="ws-test")
    return urgent, routine


def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CADTERM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CADTERM_CONFIG_DIR", str(tmp_path / "conf"))
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "console.toml").write_text(
        'workstation = "ws-test"\n[[contacts]]\nname = "Duty inspector"\nphone = "01632 960001"\n'
    )


def packs(tmp_path: Path) -> tuple[str, str]:
    written = sorted((tmp_path / "out").iterdir())
    assert [p.suffix for p in written] == [".html", ".txt"]
    for path in written:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # callers' names and numbers
    return written[1].read_text(), written[0].read_text()


def test_a_pack_made_while_cad_is_up_holds_the_live_picture(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    urgent, routine = build_shift(backend)
    env(monkeypatch, tmp_path)
    token = TOKENS[Role.DISPATCHER]
    assert main(["pack", backend.url, "--token", token, "--out", str(tmp_path / "out")]) == 0
    assert "live from" in capsys.readouterr().out
    text, page = packs(tmp_path)
    # Grade 1 first, with its caller, units and key chronology.
    assert text.index(urgent) < text.index(routine)
    assert "Zoë Whitfield, 07700 900123" in text and "units: AB12" in text
    assert "<script>alert(1)</script>" in text  # as typed: text is not interpreted
    assert re.search(r"!! CD34 +0 Emergency", text)
    reserved = [line.split()[-1] for line in text.splitlines() if line.startswith("  [ ] ")]
    assert len(reserved) == 3 and all(r[5:] == urgent[5:] for r in reserved)
    assert "Duty inspector" in text and "01632 960001" in text
    assert "\x1b" not in text
    # The page: the same, escaped, printable, with nothing active in it.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "14 Gasworks Lane &lt;b&gt;" in page
    assert page.index(urgent) < page.index(routine)
    assert all(r in page for r in reserved) and "Duty inspector" in page
    assert "@media print" in page


def test_a_pack_made_while_cad_is_down_comes_from_the_last_known_picture(
    backend: Backend, backend_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    urgent, _ = build_shift(backend)
    env(monkeypatch, tmp_path)
    # The console's picture on disk, as a console that was live would have left it.
    state = (
        __import__("httpx")
        .get(f"{backend.url}/v1/state", headers=backend.headers(), timeout=5)
        .json()
    )
    from cadterm.protocol.fold import DispatchState

    keeper = PictureFile(tmp_path / "data" / "picture.json")
    heard = datetime(2026, 12, 1, 9, 13, tzinfo=UTC)
    keeper._rewrite(DispatchState.model_validate(state).model_dump_json(), heard, backend.url)
    backend_factory.stop(backend)
    token = TOKENS[Role.DISPATCHER]
    assert main(["pack", backend.url, "--token", token, "--out", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "last known picture" in said
    text, page = packs(tmp_path)
    of = heard.astimezone().strftime("%H:%M")
    assert f"Picture of {heard.astimezone():%Y-%m-%d} {of}" in text
    assert f"Nothing after {of} is in it" in text and urgent in text
    assert "last known picture" in page


def test_no_picture_anywhere_is_said_plainly(
    refused_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    env(monkeypatch, tmp_path)
    assert main(["pack", refused_url, "--token", "x" * 20, "--out", str(tmp_path / "out")]) != 0
    assert "no picture to print" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_pack_with_nothing_open_still_prints_the_paper_log() -> None:
    from cadterm.protocol.fold import DispatchState

    source = PackSource(DispatchState(), datetime.now(UTC), "live from x", "ws-1")
    text = render_text(source, datetime.now(UTC))
    assert "OPEN INCIDENTS (0)" in text and "None held: write provisional numbers" in text
    assert len([line for line in text.splitlines() if line.startswith("_____ ")]) == 25
    assert '<table class="paper">' in render_html(source, datetime.now(UTC))
