"""Scripted scenarios: run a TOML script against a fresh backend and report pass or fail.

    cadterm scenario run scenarios/grade1_surge.toml
    cadterm scenario check scenarios/grade1_surge.toml   # only read it

(`cadterm scenario run FILE` is the same.) A run starts an embedded backend in a
temporary directory, books the Brackley force on, plays the script on a clock running
`speed` times real time with the simulator playing the units, then judges each
expectation and prints a report with timings. Exit status: 0 when every expectation
passed and every step went as expected, 1 when anything failed, 2 when the file is
malformed (the message names the field).

The format is documented in docs/scenarios.md; `format` reads it into the
pydantic models of `model`, `run` runs it, `checks` judges it.
This module ties them together.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .checks import CheckResult, evaluate, format_duration
from .format import ScenarioError, load_scenario
from .model import Scenario
from .run import RunRecord, run_scenario

__all__ = [
    "EXIT_FAILED",
    "EXIT_MALFORMED",
    "EXIT_PASSED",
    "Report",
    "ScenarioError",
    "build_parser",
    "load_scenario",
    "main",
    "run_file",
]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_MALFORMED = 2


@dataclass(frozen=True)
class Report:
    """A finished run and the verdict on each expectation."""

    record: RunRecord
    checks: list[CheckResult]

    @property
    def scenario(self) -> Scenario:
        """The scenario that ran."""
        return self.record.scenario

    @property
    def passed(self) -> bool:
        """True when the run finished, every step went as expected and every check passed."""
        return (
            self.record.error is None
            and all(step.ok for step in self.record.steps)
            and all(check.passed for check in self.checks)
        )

    def render(self) -> str:
        """The report as text for a terminal."""
        record, scenario = self.record, self.scenario
        events = len(record.server_events) if record.server_events is not None else "?"
        lines = [
            f"Scenario: {scenario.name}  ({scenario.source})",
            f"  {format_duration(record.sim_seconds)} simulated at x{record.speed:g} "
            f"in {record.real_seconds:.1f} s real; {events} events; "
            f"backend restarts: {record.restarts}",
        ]
        if record.steps:
            lines += ["", "Steps"]
        for outcome in record.steps:
            step = outcome.step
            mark = "ok  " if outcome.ok else "FAIL"
            lines.append(
                f"  {mark} t={step.at:>6.0f}s  {step.label:<14} {step.action:<10} "
                f"{outcome.detail}  ({outcome.real_seconds:.2f} s)"
            )
        if self.checks:
            lines += ["", "Expectations"]
        for check in self.checks:
            lines.append(f"  {'PASS' if check.passed else 'FAIL'}  {check.title}: {check.detail}")
        if record.error is not None:
            lines += ["", f"The run broke off: {record.error}"]
        failed_checks = sum(not c.passed for c in self.checks)
        failed_steps = sum(not s.ok for s in record.steps)
        if self.passed:
            verdict = f"PASS: all {len(self.checks)} expectations met"
        else:
            parts = []
            if failed_checks:
                parts.append(f"{failed_checks} of {len(self.checks)} expectations failed")
            if failed_steps:
                parts.append(f"{failed_steps} step(s) did not go as expected")
            if record.error is not None:
                parts.append("the run broke off")
            verdict = "FAIL: " + ", ".join(parts)
        return "\n".join([*lines, "", verdict])


async def run(scenario: Scenario, *, speed: float | None = None) -> Report:
    """Run a loaded scenario and judge it."""
    record = await run_scenario(scenario, speed=speed)
    return Report(record, evaluate(record))


def run_file(path: str | Path, *, speed: float | None = None) -> Report:
    """Load and run the scenario at `path` (blocking). Raises `ScenarioError` if malformed."""
    return asyncio.run(run(load_scenario(path), speed=speed))


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"speed must be a positive number, not {text}")
    return value


def build_parser(prog: str = "cadterm scenario") -> argparse.ArgumentParser:
    """The command line: ``run FILE [--speed X]`` and ``check FILE``."""
    parser = argparse.ArgumentParser(prog=prog, description="Run scripted dispatch scenarios.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_parser = commands.add_parser("run", help="run a scenario and report pass or fail")
    run_parser.add_argument("file", type=Path, help="scenario file (TOML)")
    run_parser.add_argument(
        "--speed", type=_speed, help="override the file's time scale (simulated s per real s)"
    )
    check_parser = commands.add_parser("check", help="only read and check a scenario file")
    check_parser.add_argument("file", type=Path, help="scenario file (TOML)")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "cadterm scenario") -> int:
    """Entry point; returns 0 (passed), 1 (failed) or 2 (malformed file or bad usage)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse has printed the usage error
        return EXIT_MALFORMED if exit_.code else EXIT_PASSED
    try:
        scenario = load_scenario(args.file)
    except ScenarioError as exc:
        print(f"{prog}: malformed scenario: {exc}", file=sys.stderr)
        return EXIT_MALFORMED
    if args.command == "check":
        print(f"{args.file}: ok ({len(scenario.steps)} steps, {len(scenario.expectations)} checks)")
        return EXIT_PASSED
    report = asyncio.run(run(scenario, speed=args.speed))
    print(report.render(), flush=True)
    return EXIT_PASSED if report.passed else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main(prog="python -m cadterm.sim.scenario"))
