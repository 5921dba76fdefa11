"""The console keeps its own log: something to read after an incident."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import platformdirs

from cadterm.cli.console import journal_file, keep_a_log, log_file
from cadterm.tui.settings import ConsoleSettings


def test_records_go_to_a_private_rotated_file(tmp_path: Path) -> None:
    path = tmp_path / "data" / "console.log"
    handler = keep_a_log(path)
    assert handler is not None
    try:
        logging.getLogger("cadterm.client").warning("link reconnecting (server closed)")
        logging.getLogger("cadterm.console").info("console started")
        logging.getLogger("elsewhere").warning("not ours")
        handler.flush()
        text = path.read_text(encoding="utf-8")
        assert "WARNING cadterm.client: link reconnecting (server closed)" in text
        assert "INFO cadterm.console: console started" in text
        assert "not ours" not in text
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        logging.getLogger("cadterm").removeHandler(handler)
        handler.close()


def test_a_log_that_cannot_be_opened_does_not_stop_the_console(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert keep_a_log(blocker / "console.log") is None  # its folder is a file


def test_the_log_lives_in_the_platform_log_dir_unless_moved(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("CADTERM_DATA_DIR", raising=False)
    monkeypatch.delenv("CADTERM_LOG_DIR", raising=False)
    platform = Path(platformdirs.user_log_dir("cadterm")) / "console.log"
    assert log_file(ConsoleSettings()) == platform
    monkeypatch.setenv("CADTERM_DATA_DIR", str(tmp_path / "data"))
    assert log_file(ConsoleSettings()) == tmp_path / "data" / "console.log"
    assert journal_file(ConsoleSettings()) == tmp_path / "data" / "journal.db"
    monkeypatch.setenv("CADTERM_LOG_DIR", str(tmp_path / "logs"))
    assert log_file(ConsoleSettings()) == tmp_path / "logs" / "console.log"
    assert log_file(ConsoleSettings(log=tmp_path / "x.log")) == tmp_path / "x.log"
    assert journal_file(ConsoleSettings(journal=tmp_path / "j.db")) == tmp_path / "j.db"
