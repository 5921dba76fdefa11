"""Scenario files: the shipped ones pass fast, a wrong one fails with reasons, bad ones exit 2.

Each run starts its own embedded backend in a temporary directory, exactly as
``cadterm scenario run FILE`` does (`main` is called in-process).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from cadterm.sim.scenario import EXIT_FAILED, EXIT_MALFORMED, EXIT_PASSED, main
from cadterm.sim.scenario.format import (
    ACTIONS,
    CHECKS,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "scenarios").glob("*.toml"))
WRONG = ROOT / "tests" / "scenarios" / "wrong_expectation.toml"
DOCS = ROOT / "docs" / "scenarios.md"


def test_the_four_scenarios_are_shipped() -> None:
    assert {p.name for p in SHIPPED} == {
        "quiet_shift.toml",
        "grade1_surge.toml",
        "backend_restart.toml",
        "cad_down.toml",
    }


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_scenario_passes_in_under_twenty_seconds(path: Path, capsys) -> None:
    scenario = load_scenario(path)
    assert scenario.duration / scenario.speed <= 15, "keep the run itself under 15 real seconds"
    started = time.monotonic()
    status = main(["run", str(path)])
    took = time.monotonic() - started
    out = capsys.readouterr().out
    assert status == EXIT_PASSED, out
    assert f"PASS: all {len(scenario.expectations)} expectations met" in out
    assert "FAIL" not in out
    assert took < 20, f"{path.name} took {took:.1f} s"


def test_wrong_expectation_fails_and_says_which_and_why(capsys) -> None:
    status = main(["run", str(WRONG)])
    out = capsys.readouterr().out
    assert status == EXIT_FAILED, out
    assert re.search(
        r"FAIL  recommended shoplifter at 1 s: expected DOG1, got SGT1 \(under 1 min "
        r"\(0\.1 km\), available on patrol\); DOG1 was not among the \d recommended",
        out,
    ), out
    assert "FAIL  incident_status shoplifter: 0001-" in out
    assert "is open, expected closed" in out
    assert "PASS  no_event_lost" in out  # the others are still judged
    assert out.rstrip().endswith("FAIL: 2 of 3 expectations failed")


def test_check_reads_a_file_without_running_it(capsys) -> None:
    for path in [*SHIPPED, WRONG]:
        assert main(["check", str(path)]) == EXIT_PASSED
    assert "ok (" in capsys.readouterr().out


NAME = 'name = "x"\n'
CALL = (
    '[[steps]]\nat = 0\naction = "call"\nalias = "a"\ngrade = 1\ntype = "RTC"\n'
    'place = "Market Square"\n'
)
LATER = "[[steps]]\nat = 1\naction = "
CHECK = "[[expect]]\ncheck = "


def swap(old: str, new: str) -> str:
    """A one-call scenario with one thing changed."""
    return NAME + CALL.replace(old, new)


MALFORMED = [
    ("name = \n", "not valid TOML"),
    ('description = "no name"\n' + CALL, "scenario: missing required field 'name'"),
    (NAME, "has no [[steps]] and no [[expect]]"),
    (NAME + "speed = 0\n" + CALL, "scenario.speed: must be more than 0, not 0"),
    (NAME + "sped = 3\n" + CALL, "scenario.sped: unknown field (did you mean 'speed'?)"),
    (swap("grade = 1", "grade = 7"), "steps[0].grade: must be an integer 1-5, not 7"),
    (swap("grade = 1", 'grade = "1"'), "steps[0].grade: must be an integer 1-5, not '1'"),
    (swap('"call"', '"cal"'), "steps[0].action: unknown action 'cal'"),
    (swap('"RTC"', '"RTX"'), "steps[0].type: unknown incident type 'RTX' (did you mean 'RTC'?)"),
    (
        swap("Market Square", "Market Sqare"),
        "steps[0].place: no place called 'Market Sqare' in Brackley; did you mean 'Market Square'",
    ),
    (swap("at = 0", 'at = "soon"'), "steps[0].at: must be a number, not 'soon'"),
    (swap('alias = "a"\n', ""), "steps[0]: missing required field 'alias'"),
    (
        swap("grade = 1", "grde = 1"),
        "steps[0]: missing required field 'grade' (is 'grde' a misspelling of it?)",
    ),
    (NAME + "speed = inf\n" + CALL, "scenario.speed: must be a finite number, not inf"),
    (
        NAME + CALL + LATER + '"assign"\nincident = "b"\ncallsign = "CC11"\n',
        "steps[1].incident: no call step has alias 'b' (aliases: a)",
    ),
    (
        NAME + CALL + LATER + '"unit_state"\ncallsign = "CC11"\nstate = "asleep"\n',
        "steps[1].state: unknown unit state 'asleep'",
    ),
    (NAME + CALL + LATER + '"outage"\nseconds = -5\n', "steps[1].seconds: must be more than 0"),
    (
        NAME + CALL + LATER + '"command"\ncommand = { type = "assign_unit", reference = "@a" }\n',
        "steps[1].command.callsign: Field required",
    ),
    (
        NAME + CALL + LATER + '"command"\ncommand = { type = "teleport" }\n',
        "steps[1].command.type: unknown command type 'teleport'",
    ),
    (
        NAME + CALL + LATER + '"command"\ncommand = { type = "book_off", callsign = "X" }\n'
        'expect = "conflit"\n',
        "steps[1].expect: unknown outcome 'conflit' (did you mean 'conflict'?)",
    ),
    (
        NAME + CALL + CHECK + '"recomended"\n',
        "expect[0].check: unknown check 'recomended' (did you mean 'recommended'?)",
    ),
    (
        NAME + CALL + CHECK + '"recommended"\nincident = "a"\ncallsign = "CC11"\n',
        "expect[0]: missing required field 'at'",
    ),
    (
        NAME + CALL + CHECK + '"incident_status"\nincident = "a"\nstatus = "done"\n',
        "expect[0].status: unknown status 'done'",
    ),
    (
        NAME + CALL + CHECK + '"command_conflicts"\n',
        "expect[0]: no step has an 'expect' for this check to look at",
    ),
    (
        NAME + "duration = 10\n" + CALL.replace("at = 0", "at = 60"),
        "scenario.duration: is 10 s but the script runs to 60 s",
    ),
    (
        swap("grade = 1", "grade = 4") + CHECK + '"resourced_within_target"\nincident = "a"\n',
        "expect[0].target: grade 4 has no attendance target",
    ),
    (
        NAME + CALL + LATER + '"outage"\nseconds = 5\nconsole = "a"\n',
        "steps[1].console: an outage stops the backend, not one console",
    ),
    (
        NAME
        + CALL.replace("at = 0", 'at = 0\nconsole = "a"')
        + LATER
        + '"reconcile"\nconsole = "a"\nchoice = "withdraw"\n',
        "steps[1].reason: withdraw needs a reason",
    ),
    (
        NAME + CALL + LATER + '"reconcile"\nconsole = "b"\nchoice = "set_aside"\n',
        "steps[1].console: no step before it goes through console 'b'",
    ),
    (
        NAME + CALL.replace("at = 0", 'at = 0\nconsole = "a b"'),
        "steps[0].console: a console is named with letters, digits",
    ),
]


@pytest.mark.parametrize(("text", "message"), MALFORMED)
def test_malformed_file_exits_2_naming_the_field(tmp_path: Path, capsys, text, message) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["run", str(path)]) == EXIT_MALFORMED
    err = capsys.readouterr().err
    assert f"malformed scenario: {path}: " in err
    assert message in err, err


LINES = [
    # The line of the field itself...
    (NAME + "speed = 0\n" + CALL, 2, "scenario.speed", "speed = 0"),
    (swap("grade = 1", "grade = 7"), 6, "steps[0].grade", "grade = 7"),
    (swap("Market Square", "Market Sqare"), 8, "steps[0].place", "place ="),
    (NAME + "[simulator]\nrat = 1\n" + CALL, 3, "simulator.rat", "rat = 1"),
    # ...of the table a missing field belongs in...
    (swap('alias = "a"\n', ""), 2, "steps[0]", "[[steps]]"),
    (
        NAME + CALL + CHECK + '"recommended"\nincident = "a"\ncallsign = "CC11"\n',
        9,
        "expect[0]",
        "[[expect]]",
    ),
    # ...of the second of two tables of the same array, past a multi-line string...
    (
        'name = """two\nlines = 1\n"""\n' + CALL + LATER + '"outage"\nseconds = 0\n',
        14,
        "steps[1].seconds",
        "seconds = 0",
    ),
    # ...and of the inline table a command's field is in.
    (
        NAME + CALL + LATER + '"command"\ncommand = { type = "assign_unit", reference = "@a" }\n',
        12,
        "steps[1].command.callsign",
        "command = {",
    ),
]


@pytest.mark.parametrize(("text", "line", "field", "there"), LINES)
def test_the_error_gives_the_line_of_the_field(tmp_path: Path, text, line, field, there) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as bad:
        load_scenario(path)
    assert (bad.value.line, bad.value.field) == (line, field)
    assert str(bad.value).startswith(f"{path}: line {line}: {field}: ")
    assert text.splitlines()[line - 1].startswith(there)


def test_a_problem_of_the_whole_file_has_no_line(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text(NAME, encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"empty\.toml: scenario: has no") as bad:
        load_scenario(path)
    assert bad.value.line is None


def test_missing_file_and_bad_usage_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["run", str(tmp_path / "nowhere.toml")]) == EXIT_MALFORMED
    assert "cannot read the file" in capsys.readouterr().err
    assert main(["run"]) == EXIT_MALFORMED
    assert main(["run", str(WRONG), "--speed", "-1"]) == EXIT_MALFORMED


def test_docs_describe_every_action_and_check_and_their_examples_parse() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for action in ACTIONS:
        assert f'action = "{action}"' in text, f"no example of action {action!r}"
    for check in CHECKS:
        assert f'check = "{check}"' in text, f"no example of check {check!r}"
    import tomllib

    complete = [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if "name =" in b]
    assert complete, "docs/scenarios.md shows no complete scenario"
    for block in complete:
        try:
            parse_scenario(tomllib.loads(block), "docs/scenarios.md")
        except ScenarioError as exc:
            pytest.fail(f"example in docs/scenarios.md does not parse: {exc}")
