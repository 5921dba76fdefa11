"""Running a simulation alongside something else: the demo console, or a load run.

    with EmbeddedBackend() as (url, tokens):
        async with simulation(url, tokens.simulator, rate=1.0) as sim:
            ...run the console on url with tokens.dispatcher...
            sim.set_rate(5.0)                          # things get busy

`simulation` connects its own client (workstation "sim"), books the force on, starts the
simulator in the background and stops it on the way out. Given an intake token and a
`report_rate`, it also posts online reports (web forms and chats, `cadterm.sim.online`)
to the intake API as the force's website would, from their own seeded stream. If the
background run failed (the backend gone for longer than the simulator's patience),
`sim.failure` says why at once and the error is raised when the block ends.

From a shell, as a load generator against any backend::

    python -m cadterm.sim.background http://127.0.0.1:8740 --token T \\
        --rate 5 --speed 10 --auto-dispatch --duration 3600 \\
        --intake-token W --report-rate 0.5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from cadterm.client import ClientError, DispatchClient

from .clock import SimClock
from .force import FORCE, seed_force
from .online import send_reports
from .simulator import Simulator, SimulatorError

__all__ = ["main", "simulation"]

log = logging.getLogger("cadterm.sim")


@contextlib.asynccontextmanager
async def simulation(
    url: str,
    token: str,
    *,
    seed: int | str = 0,
    rate: float = 1.0,
    speed: float = 1.0,
    auto_dispatch: bool = False,
    book_on_force: bool = True,
    until: float | None = None,
    workstation: str = "sim",
    intake_token: str | None = None,
    report_rate: float = 0.0,
    **options: Any,
) -> AsyncIterator[Simulator]:
    """A simulator running in the background against `url` until the block ends.

    `options` go to `Simulator` (``hands_off``, ``avl_every``, ``scene_time_factor``...).
    With `intake_token` and a `report_rate` (reports a simulated minute), online reports
    are posted too; a failure to post them is logged, and the simulation goes on.
    """
    async with DispatchClient([url], token, workstation=workstation) as client:
        await client.wait_live()
        if book_on_force:
            await seed_force(client, FORCE)
        sim = Simulator(client, seed, rate, SimClock(speed), auto_dispatch=auto_dispatch, **options)
        sim.start(until)
        website = None
        if intake_token and report_rate > 0 and not math.isinf(speed):
            # A clock of its own: the simulator's is driven by the simulator alone.
            reports = send_reports(
                url,
                intake_token,
                SimClock(speed),
                seed=seed,
                rate=report_rate,
                until=until if until is not None else 24 * 3600.0,
            )
            website = asyncio.create_task(reports, name="online reports")
            website.add_done_callback(_report_failure)
        try:
            yield sim
        finally:
            if website is not None:
                website.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await website
            await sim.stop()
        if sim.failure is not None:
            raise sim.failure


def _report_failure(task: asyncio.Task[int]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("online reports stopped: %s", task.exception())


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m cadterm.sim.background``."""
    parser = argparse.ArgumentParser(
        prog="python -m cadterm.sim.background",
        description="Run the simulator against a backend (load generation, demos).",
    )
    parser.add_argument("url", help="backend base URL, e.g. http://127.0.0.1:8740")
    parser.add_argument("--token", default=os.environ.get("CADTERM_TOKEN"), help="bearer token")
    parser.add_argument("--seed", default="0", help="random seed (default 0)")
    parser.add_argument("--rate", type=float, default=1.0, help="calls per simulated minute")
    parser.add_argument("--speed", type=_positive, default=1.0, help="time scale (default 1)")
    parser.add_argument("--duration", type=_positive, help="simulated seconds (default: forever)")
    parser.add_argument("--auto-dispatch", action="store_true", help="act as the dispatcher too")
    parser.add_argument("--no-force", action="store_true", help="do not book the force on")
    parser.add_argument(
        "--intake-token",
        default=os.environ.get("CADTERM_INTAKE_TOKEN"),
        help="intake token, to post online reports as the force's website",
    )
    parser.add_argument(
        "--report-rate", type=float, default=0.0, help="online reports per simulated minute"
    )
    return parser


async def _run(args: argparse.Namespace) -> int:
    async with simulation(
        args.url,
        args.token,
        seed=args.seed,
        rate=args.rate,
        speed=args.speed,
        auto_dispatch=args.auto_dispatch,
        book_on_force=not args.no_force,
        until=args.duration,
        intake_token=args.intake_token,
        report_rate=args.report_rate,
    ) as sim:
        assert sim.task is not None
        await asyncio.wait({sim.task})  # the duration, or until Ctrl-C or a failure
    print(f"sent {sum(sim.sent.values())} commands {dict(sim.sent)}; refused {dict(sim.refused)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 done, 1 failed, 2 usage)."""
    args = build_parser().parse_args(argv)
    if not args.token:
        print("error: give --token or set CADTERM_TOKEN", file=sys.stderr)
        return 2
    if math.isinf(args.speed):
        print("error: --speed must be finite", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        return 0
    except (ClientError, SimulatorError, TimeoutError) as exc:
        print(f"simulator failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
