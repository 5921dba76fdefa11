"""Cluster: several `cadterm server` nodes on one PostgreSQL log, against one SQLite node.

Four cases, each selectable with ``--cases``:

``throughput``
    Durable ``locate_unit`` commands/s (the `_fanout_worker.py load http` closed loop)
    from 1 and 8 senders on: SQLite, one node; PostgreSQL, one node; PostgreSQL, three
    nodes with the 8 senders spread over them (one load process per node, 3+3+2). 50
    units are booked on first. Figures: commands/s, client-side p50/p99 (with several
    load processes, the worst process's), the nodes' CPU ms per command and, on the
    bench's own PostgreSQL, the database's CPU ms per command (its postmaster and
    backends, from /proc).
``fanout``
    Three PostgreSQL nodes; 60 raw-websocket subscribers spread over 1, 2 and 3 of them
    (one `_fanout_worker.py subs` process per node); ``locate_unit`` commands posted to
    the first node at a fixed offered rate (100/s, open loop). Figures: delivered
    frames/s, p50/p99/max latency from the event's ``at`` (stamped on the first node
    when it decides the command) to receipt, frames lost. Baseline in the same run: one
    SQLite node with all 60 subscribers.
``failover``
    Three PostgreSQL nodes, light background load (20 commands/s through the client
    library's sender to every URL). Consoles are `cadterm.client.DispatchClient` with the
    list of all node URLs and default settings. Each round kills (``kill -9``) the node
    the consoles are live on and times, from the kill, until each console's status is
    ``live`` again (on another node), then restarts the killed node on its port. Rounds
    with 1 console, then with 5 consoles on the killed node (time until every one is
    live). The status changes are recorded, so the time splits into noticing the loss
    (``reconnecting``) and getting live elsewhere. Then, for comparison, rounds that
    freeze the node with SIGSTOP instead (a hung host: its sockets stay open and say
    nothing more), resumed with SIGCONT afterwards. Each round also reports the longest
    stretch in which no node accepted a background command. Last, a node is frozen
    inside its write turn (holding the append lock; found in ``pg_stat_activity``) and
    the other nodes are sent commands until one is accepted.
``soak``
    The acceptance run of the cluster: three nodes on a PostgreSQL of the bench's own
    (so it can be restarted), a failing-over subscriber on each node, 8 writers creating
    incidents over all nodes at full speed through the client library (retries keep the
    idempotency key), for ``--soak-seconds``, with seeded faults: ``kill -9`` of a
    random node ``--kills`` times (restarted each time) and PostgreSQL stopped
    (immediate, a crash) and started ``--pg-restarts`` times. Then counted, never
    asserted: acknowledged commands, lost, applied twice, events lost or doubled on any
    subscriber, a gap-free table, every node's picture against the fold of the table.

Every run prints the machine speed (`json.loads`/s, 4 KiB fsyncs/s in the scratch
folder) at its start and end. PostgreSQL is by default one of the bench's own
(``initdb`` in a temporary folder, Unix socket only, ``fsync = on``: the same machine
and disk as the SQLite file), so its CPU can be read and nobody else's load is in its
log; ``--pg URL`` runs the first three cases on another server (in a schema of their
own, dropped afterwards).

    .venv/bin/python bench/bench_cluster.py                          # ~7 min
    .venv/bin/python bench/bench_cluster.py --cases throughput --seconds 2
    .venv/bin/python bench/bench_cluster.py --cases soak --soak-seconds 20 --kills 5 --pg-restarts 1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from _common import (
    ROOT,
    TOKEN,
    bench_config,
    callsign,
    cpu_seconds,
    emit,
    machine,
    pct,
    r,
    scratch_dir,
    stop_process,
)
from _speed import fsync_speed, machine_speed
from bench_fanout import weighted_pct
from psycopg import sql

# The tests' cluster harness (node processes that can be killed with -9 and restarted on
# their port, a failing-over subscriber, writers retrying under one key, a private
# PostgreSQL) is the bench's too: it is imported from tests/, not copied.
sys.path.insert(0, str(ROOT / "tests"))
from cluster import (
    Cluster,
    Node,
    Subscriber,
    Writer,
    health,
    picture_figures,
    table_events,
    table_head,
    truth_figures,
)
from pg import in_schema
from private_postgres import PrivatePostgres, why_no_private_postgres

from cadterm.client import DispatchClient
from cadterm.client.commands import CommandSender, new_key
from cadterm.client.errors import ClientError
from cadterm.client.stream import LinkState, LinkStatus
from cadterm.protocol.commands import BookOn, LocateUnit
from cadterm.protocol.domain import Position, UnitType
from cadterm.server.config import write_config

BENCH = "cluster"
HERE = Path(__file__).resolve().parent
WORKER = str(HERE / "_fanout_worker.py")
CASES = ("throughput", "fanout", "failover", "soak")
_CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- the pieces ------------------------------------------------------------------------


class Postgres:
    """Where the PostgreSQL cases run: a base URL, schemas made and dropped per case.

    `own` is the bench's private server (None with ``--pg``); only its CPU can be read.
    """

    def __init__(self, url: str, own: PrivatePostgres | None) -> None:
        self.url = url
        self.own = own

    @contextmanager
    def schema(self) -> Iterator[str]:
        """A URL whose cadterm tables live in a fresh schema, dropped afterwards."""
        name = f"cadterm_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        try:
            yield in_schema(self.url, name)
        finally:
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))

    def cpu(self) -> float | None:
        """CPU seconds of the postmaster and every backend of the bench's own server."""
        if self.own is None:
            return None
        try:
            postmaster = int((self.own.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError):
            return None
        total = 0.0
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", encoding="ascii") as fh:
                    text = fh.read()
            except OSError:
                continue  # ended meanwhile
            fields = text[text.rindex(")") + 2 :].split()
            if int(entry.name) == postmaster or int(fields[1]) == postmaster:
                total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
        return total


class Nodes:
    """`count` bench-config nodes on one database (an SQLite path or a PostgreSQL URL)."""

    def __init__(self, db: str, workdir: Path, count: int, label: str) -> None:
        config_path = workdir / f"{label}.toml"
        write_config(config_path, bench_config())
        self.nodes = [
            Node(f"{label}-{i}", db, config_path, workdir / f"{label}-{i}.log")
            for i in range(1, count + 1)
        ]

    def __enter__(self) -> list[Node]:
        try:
            for node in self.nodes:
                node.start()
        except BaseException:
            self.__exit__()
            raise
        return self.nodes

    def __exit__(self, *exc: object) -> None:
        for node in self.nodes:
            node.stop()


def nodes_cpu(nodes: list[Node]) -> float:
    return sum(cpu_seconds(node.process.pid) for node in nodes if node.process is not None)


def book_on(nodes: list[Node], units: int) -> list[str]:
    """Book `units` units on through the first node; wait until every node has them."""
    callsigns = [callsign(i) for i in range(units)]
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    with httpx.Client(timeout=10, trust_env=False, headers=headers) as http:
        for i, cs in enumerate(callsigns):
            command = BookOn(
                idempotency_key=f"bench-book-on-{cs}",
                workstation="bench",
                callsign=cs,
                unit_type=UnitType.PATROL_CAR,
                position=Position(lat=51.45 + i * 0.001, lon=-0.1),
            )
            reply = http.post(f"{nodes[0].url}/v1/commands", content=command.model_dump_json())
            if reply.status_code != 200:
                raise RuntimeError(f"book_on {cs} refused: {reply.status_code} {reply.text}")
        head = reply.json()["seq"]
        # The load worker reads the units from the node it is given: it must know them.
        deadline = time.monotonic() + 20
        for node in nodes:
            while http.get(f"{node.url}/v1/health").json()["seq"] < head:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{node.name} did not catch up with the book-ons")
                time.sleep(0.05)
    return callsigns


def start_load(url: str, rate: float, seconds: float, conns: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, WORKER, "load", "http", url, TOKEN, str(rate), str(seconds), str(conns)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_load(proc: subprocess.Popen[str], seconds: float) -> dict:
    try:
        out, err = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        stop_process(proc)
        raise RuntimeError("a load process did not finish in time") from None
    if proc.returncode != 0:
        raise RuntimeError(f"load failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def spread(total: int, parts: int) -> list[int]:
    """`total` split over `parts` as evenly as it goes, larger shares first."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


# --- 1. durable commands per second -----------------------------------------------------


def throughput_case(args, pg: Postgres, workdir: Path) -> list[dict]:
    results = []
    setups = (
        ("sqlite", 1, (1, 8)),
        ("postgresql", 1, (1, 8)),
        ("postgresql", 3, (8,)),
    )
    for system, count, senders_list in setups:
        with pg.schema() if system == "postgresql" else _sqlite_file(workdir, count) as db:
            label = f"tp-{system[:2]}{count}"
            with Nodes(db, workdir, count, label) as nodes:
                book_on(nodes, args.units)
                for node in nodes:  # warm up: imports, caches, pooled connections
                    finish_load(start_load(node.url, 0, 0.5, 1), 0.5)
                for senders in senders_list:
                    shares = spread(senders, count) if senders >= count else [senders]
                    cpu0, pg0 = nodes_cpu(nodes), pg.cpu() if system == "postgresql" else None
                    procs = [
                        start_load(node.url, 0, args.seconds, share)
                        for node, share in zip(nodes, shares, strict=False)
                    ]
                    loads = [finish_load(proc, args.seconds) for proc in procs]
                    cpu = nodes_cpu(nodes) - cpu0
                    pg_used = None if pg0 is None else pg.cpu() - pg0
                    done = sum(x["completed"] for x in loads)
                    elapsed = max(x["elapsed_s"] for x in loads)
                    res = {
                        "system": system,
                        "nodes": count,
                        "senders": senders,
                        "senders_per_node": shares,
                        "commands": done,
                        "errors": sum(x["errors"] for x in loads),
                        "commands_per_s": r(sum(x["achieved_per_s"] for x in loads), 1),
                        "p50_ms": r(max(x["req_p50_ms"] for x in loads), 2),
                        "p99_ms": r(max(x["req_p99_ms"] for x in loads), 2),
                        "node_cpu_ms_per_command": r(cpu / max(1, done) * 1e3, 3),
                        "node_cpu_util": r(cpu / elapsed, 2),
                        "postgres_cpu_ms_per_command": None
                        if pg_used is None
                        else r(pg_used / max(1, done) * 1e3, 3),
                    }
                    if any(x.get("error_sample") for x in loads):
                        res["error_sample"] = next(
                            x["error_sample"] for x in loads if x.get("error_sample")
                        )
                    emit(BENCH, kind="throughput", **res)
                    results.append(res)
    return results


@contextmanager
def _sqlite_file(workdir: Path, count: int) -> Iterator[str]:
    if count != 1:
        raise ValueError("SQLite is one node's file")
    path = workdir / f"tp-{uuid.uuid4().hex[:8]}.db"
    yield str(path)


# --- 2. fan-out over 1, 2 and 3 nodes --------------------------------------------------


class SubscriberProcess:
    """One `_fanout_worker.py subs` process holding `n` subscriptions to one node."""

    def __init__(self, node: Node, n: int, since: int) -> None:
        ws_url = node.url.replace("http://", "ws://") + "/v1/stream"
        self.proc = subprocess.Popen(
            [sys.executable, WORKER, "subs", ws_url, TOKEN, str(n), str(since)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"subscriber process failed: {line!r}")

    def ask(self, lo: int, hi: int, t0: float) -> None:
        self.proc.stdin.write(f"report {lo} {hi} {t0}\n")
        self.proc.stdin.flush()

    def answer(self) -> dict:
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_process(self.proc)


def fanout_cell(args, nodes: list[Node], over: int, label: str) -> dict:
    shares = spread(args.subs, over)
    with httpx.Client(timeout=5, trust_env=False) as http:
        since = min(http.get(f"{node.url}/v1/health").json()["seq"] for node in nodes)
    subs = [SubscriberProcess(node, n, since) for node, n in zip(nodes, shares, strict=False)]
    try:
        for sub in subs:
            sub.wait_ready()
        cpu0 = nodes_cpu(nodes)
        load = finish_load(start_load(nodes[0].url, args.rate, args.seconds, 8), args.seconds)
        lo, hi = load["first_seq"] - 1, load["last_seq"]
        for sub in subs:
            sub.ask(lo, hi, load["t0_wall"])
        reports = [sub.answer() for sub in subs]
        cpu = nodes_cpu(nodes) - cpu0
    finally:
        for sub in subs:
            sub.close()
    delivered = sum(x["delivered"] for x in reports)
    expected = sum(x["expected"] for x in reports)
    span = max((x["span_s"] or 0) for x in reports) or float("nan")
    parts = [(x["delivered"], x["samples"]) for x in reports]
    cell = {
        "system": label,
        "subs": args.subs,
        "nodes_with_subs": over,
        "subs_per_node": shares,
        "offered_per_s": args.rate,
        "appended_per_s": r(load["achieved_per_s"], 1),
        "load_errors": load["errors"],
        "delivered_frames": delivered,
        "expected_frames": expected,
        "lost_frames": expected - delivered,
        "delivered_per_s": r(delivered / span, 1),
        "p50_ms": r(weighted_pct(parts, 50) or float("nan"), 2),
        "p99_ms": r(weighted_pct(parts, 99) or float("nan"), 2),
        "max_ms": r(max((x["max_ms"] or 0) for x in reports), 2),
        "p99_ms_per_node": [r(x["p99_ms"] or float("nan"), 2) for x in reports],
        "subscribers_closed": sum(x["closed"] for x in reports),
        "node_cpu_us_per_delivered": r(cpu / max(1, delivered) * 1e6, 1),
    }
    emit(BENCH, kind="fanout", **cell)
    return cell


def fanout_case(args, pg: Postgres, workdir: Path) -> list[dict]:
    cells = []
    with _sqlite_file(workdir, 1) as db, Nodes(db, workdir, 1, "fo-sqlite") as nodes:
        book_on(nodes, args.units)
        cells.append(fanout_cell(args, nodes, 1, "sqlite"))
    with pg.schema() as db, Nodes(db, workdir, 3, "fo-pg") as nodes:
        book_on(nodes, args.units)
        for over in (1, 2, 3):
            cells.append(fanout_cell(args, nodes, over, "postgresql"))
    return cells


# --- 3. failover time -------------------------------------------------------------------


class StatusLog:
    """Every status a console's link took, with the monotonic time it took it."""

    def __init__(self) -> None:
        self.entries: list[tuple[float, LinkStatus]] = []

    def __call__(self, status: LinkStatus) -> None:
        self.entries.append((time.monotonic(), status))

    def first(self, state: LinkState, after: float) -> tuple[float, LinkStatus] | None:
        for at, status in self.entries:
            if at >= after and status.state == state:
                return at, status
        return None


class BackgroundLoad:
    """Paced locate_unit commands through the client library's sender, one loop per node.

    Each loop starts at its own node and fails over along the list as the sender does,
    so while one node is down the others' loops keep going: a stretch in which *no*
    loop got an answer is a stall of the whole cluster's command path.
    """

    def __init__(self, urls: list[str], rate: float, callsigns: list[str]) -> None:
        self.urls = urls
        self.rate = rate
        self.callsigns = callsigns
        self.answered: list[float] = []  # monotonic times of accepted commands
        self.failed = 0

    async def run(self, stop: asyncio.Event) -> None:
        if self.rate <= 0:
            await stop.wait()
            return
        loops = [self._loop(i, stop) for i in range(len(self.urls))]
        await asyncio.gather(*loops)

    async def _loop(self, i: int, stop: asyncio.Event) -> None:
        rng = random.Random(11 + i)
        urls = self.urls[i:] + self.urls[:i]
        sender = CommandSender(urls, TOKEN, rng=rng)
        pause = len(self.urls) / self.rate
        try:
            while not stop.is_set():
                command = LocateUnit(
                    idempotency_key=new_key(),
                    workstation="bench",
                    callsign=rng.choice(self.callsigns),
                    position=Position(
                        lat=51.45 + rng.random() * 0.1, lon=-0.2 + rng.random() * 0.2
                    ),
                )
                try:
                    await sender.send(command)
                    self.answered.append(time.monotonic())
                except ClientError:  # refused, or no node answered in the sender's tries
                    self.failed += 1
                await asyncio.sleep(pause)
        finally:
            await sender.aclose()

    def longest_stall(self, start: float, end: float) -> float:
        """The longest stretch within [start, end] in which no command was accepted."""
        points = [start, *(t for t in self.answered if start < t < end), end]
        return max(b - a for a, b in itertools.pairwise(points))


def _port(url: str | None) -> int | None:
    try:
        return int(url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    except (AttributeError, IndexError, ValueError):
        return None


async def failover_rounds(
    nodes: list[Node],
    consoles: int,
    rounds: int,
    timeout: float,
    how: str,
    load: BackgroundLoad,
) -> dict:
    """Rounds of: the consoles' node fails (`how`: kill -9, or freeze with SIGSTOP, a hung
    host that sends nothing more), timed until every console is live elsewhere; and the
    longest stretch in each round in which no node accepted a command."""
    urls = [node.url for node in nodes]
    logs = [StatusLog() for _ in range(consoles)]
    clients = [DispatchClient(urls, TOKEN, workstation="bench", on_status=log) for log in logs]
    by_port = {node.port: node for node in nodes}
    per_console: list[float] = []  # kill -> live again, every console of every round
    all_live: list[float] = []  # kill -> the last console of the round live again
    noticed: list[float] = []  # kill -> the console says it is reconnecting
    stalls: list[float] = []  # per round: longest time no node accepted a command
    never = 0
    slowest: dict | None = None
    for client in clients:
        client.start()
    try:
        await asyncio.gather(*(client.wait_live(timeout=30) for client in clients))
        for round_no in range(rounds):
            where = {_port(client.status.url) for client in clients}
            node = by_port[_port(clients[0].status.url)]
            t0 = time.monotonic()
            if how == "kill":
                node.kill()
            else:
                os.kill(node.process.pid, signal.SIGSTOP)
            deadline = t0 + timeout
            while time.monotonic() < deadline:
                if all(log.first(LinkState.LIVE, t0) for log in logs):
                    break
                await asyncio.sleep(0.01)
            times = []
            for log in logs:
                live = log.first(LinkState.LIVE, t0)
                lost = log.first(LinkState.RECONNECTING, t0)
                if lost:
                    noticed.append(lost[0] - t0)
                if live is None:
                    never += 1
                    continue
                times.append(live[0] - t0)
                if slowest is None or live[0] - t0 > slowest["live_s"]:
                    slowest = {
                        "round": round_no,
                        "live_s": r(live[0] - t0, 3),
                        "steps": [
                            {
                                "at_s": r(at - t0, 3),
                                "state": status.state.value,
                                "url": status.url,
                                "attempts": status.attempts,
                                "reason": status.reason,
                            }
                            for at, status in log.entries
                            if at >= t0 and at <= live[0]
                        ],
                    }
            per_console.extend(times)
            if len(times) == consoles:
                all_live.append(max(times))
            if how == "kill":
                await asyncio.to_thread(node.start)
            else:
                os.kill(node.process.pid, signal.SIGCONT)
            for _ in range(800):  # until it answers again, bounded
                answer = await health(node.url)
                if answer is not None and answer["status"] == "ok":
                    break
                await asyncio.sleep(0.05)
            # The whole round, the failed node's return included: a node that comes
            # back (SIGCONT) may still hold the append lock it was frozen with.
            stalls.append(load.longest_stall(t0, time.monotonic()))
            emit(
                BENCH,
                kind="failover_round",
                how=how,
                consoles=consoles,
                round=round_no,
                failed_node=node.name,
                consoles_on_it=len(where) == 1,
                live_again_s=[r(t, 3) for t in times],
                not_live_within_s=timeout if len(times) < consoles else None,
                commands_stalled_s=r(stalls[-1], 2),
            )
    finally:
        for client in clients:
            await client.close()
    return {
        "how": how,
        "consoles": consoles,
        "rounds": rounds,
        "live_again_p50_s": r(pct(per_console, 50), 3),
        "live_again_max_s": r(max(per_console, default=float("nan")), 3),
        "all_live_p50_s": r(pct(all_live, 50), 3),
        "all_live_max_s": r(max(all_live, default=float("nan")), 3),
        "noticed_p50_s": r(pct(noticed, 50), 3),
        "noticed_max_s": r(max(noticed, default=float("nan")), 3),
        "not_live_within_timeout": never,
        "commands_stalled_max_s": r(max(stalls, default=float("nan")), 2),
        "rounds_stalled_over_3_s": sum(1 for x in stalls if x > 3.0),
        "under_3_s": sum(1 for t in per_console if t < 3.0),
        "measured": len(per_console),
        "slowest": slowest,
    }


async def failover_async(args, nodes: list[Node], callsigns: list[str]) -> list[dict]:
    stop = asyncio.Event()
    load = BackgroundLoad([n.url for n in nodes], args.failover_rate, callsigns)
    loading = asyncio.create_task(load.run(stop))
    results = []
    began = time.monotonic()
    try:
        runs = [("kill", 1, args.failovers), ("kill", args.consoles, args.failovers)]
        if args.freezes:
            runs.append(("freeze", args.consoles, args.freezes))
        for how, consoles, rounds in runs:
            res = await failover_rounds(nodes, consoles, rounds, args.failover_timeout, how, load)
            emit(BENCH, kind="failover", **res)
            results.append(res)
    finally:
        stop.set()
        await loading
    # Paced at --failover-rate, but a loop whose node is down first waits for the
    # refusal (or a 5 s timeout, for a frozen node) and a backoff, so fewer are sent.
    achieved = r(len(load.answered) / (time.monotonic() - began), 1)
    emit(
        BENCH,
        kind="failover_background_load",
        accepted=len(load.answered),
        failed=load.failed,
        accepted_per_s=achieved,
    )
    for res in results:
        res["background_commands_per_s"] = achieved
    return results


def _in_write_turn(pg: Postgres) -> bool:
    """Whether a session idles in a transaction holding the append lock.

    A write turn locks the head row (FOR UPDATE: a row-share lock on the table) and
    updates it (row-exclusive); a plain read of the head takes neither, so a session
    that only read it is not counted.
    """
    with psycopg.connect(pg.url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_stat_activity a ON a.pid = l.pid"
            " WHERE c.relname = 'cadterm_head' AND l.granted"
            " AND l.mode IN ('RowShareLock', 'RowExclusiveLock')"
            " AND a.state LIKE 'idle in transaction%'"
        ).fetchall()
    return bool(rows)


def frozen_in_turn(args, pg: Postgres, nodes: list[Node]) -> dict:
    """A node frozen inside its write turn: how long the other nodes cannot append.

    The first node takes a closed loop of commands; it is frozen (SIGSTOP) again and
    again until PostgreSQL shows its session idle in a transaction that updated the
    head row, i.e. holding the append lock. Then commands go to the other nodes, one
    after another, until one is accepted (or `--failover-timeout` passes), and only
    then is the node resumed. Only on the bench's own PostgreSQL, where every session
    is one of these nodes'.
    """
    if pg.own is None:
        return {"skipped": "needs the bench's own PostgreSQL (no --pg) to read its sessions"}
    frozen, others = nodes[0], nodes[1:]
    load = start_load(frozen.url, 0, 600, 8)
    tries = 0
    found = False
    try:
        time.sleep(1.0)
        while tries < 60 and not found:
            tries += 1
            os.kill(frozen.process.pid, signal.SIGSTOP)
            t0 = time.monotonic()
            time.sleep(0.2)
            found = _in_write_turn(pg)
            if not found:
                os.kill(frozen.process.pid, signal.SIGCONT)
                time.sleep(0.3)
        if not found:
            return {"tries": tries, "caught_in_turn": False}
        refused: dict[int, int] = {}
        accepted_after = None
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        with httpx.Client(timeout=10, trust_env=False, headers=headers) as http:
            n = 0
            while time.monotonic() - t0 < args.failover_timeout:
                n += 1
                command = LocateUnit(
                    idempotency_key=f"bench-probe-{n:06d}",
                    workstation="bench",
                    callsign=callsign(n % args.units),
                    position=Position(lat=51.5, lon=-0.1),
                )
                node = others[n % len(others)]
                try:
                    reply = http.post(f"{node.url}/v1/commands", content=command.model_dump_json())
                    status = reply.status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    accepted_after = time.monotonic() - t0
                    break
                refused[status] = refused.get(status, 0) + 1
        after = None if accepted_after is None else r(accepted_after, 2)
        return {
            "tries": tries,
            "caught_in_turn": True,
            "other_nodes_accepted_after_s": after,
            "refused_meanwhile": refused,
        }
    finally:
        os.kill(frozen.process.pid, signal.SIGCONT)
        stop_process(load)
        for _ in range(400):  # until the frozen node answers again, bounded
            try:
                if httpx.get(f"{frozen.url}/v1/health", timeout=2, trust_env=False).is_success:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)


def failover_case(args, pg: Postgres, workdir: Path) -> list[dict]:
    with pg.schema() as db, Nodes(db, workdir, 3, "fail") as nodes:
        callsigns = book_on(nodes, args.units)
        results = asyncio.run(failover_async(args, nodes, callsigns))
        if args.freezes:
            stuck = frozen_in_turn(args, pg, nodes)
            emit(BENCH, kind="frozen_in_write_turn", **stuck)
            results.append({"how": "frozen_in_turn", **stuck})
        return results


# --- 4. the soak ------------------------------------------------------------------------


async def soak_async(args, own: PrivatePostgres, cluster: Cluster) -> dict:
    rng = random.Random(args.seed)
    # Two stops: the subscribers follow on after the writers stop, until they have
    # everything (one task per subscriber throughout, so nothing is recorded twice).
    writers_stop, subscribers_stop = asyncio.Event(), asyncio.Event()
    token = cluster.tokens.dispatcher
    urls = cluster.urls
    subscribers = [Subscriber(urls[i:] + urls[:i], token) for i in range(len(urls))]
    writers = [Writer(f"w{i}", urls, token) for i in range(args.writers)]
    following = [asyncio.create_task(s.run(subscribers_stop)) for s in subscribers]
    done = {"kills": 0, "node_start_failures": 0, "pg_restarts": 0, "pg_down_s": 0.0}

    # Every subscriber is live before the first command, so each must see every event.
    for _ in range(400):
        if all(s.ready for s in subscribers):
            break
        await asyncio.sleep(0.05)
    t_start = time.monotonic()
    writing = [
        asyncio.create_task(w.run(writers_stop, random.Random(i))) for i, w in enumerate(writers)
    ]

    restart_s: list[float] = []  # kill -9 -> the node serving again

    async def start_again(node: Node, after: float) -> None:
        killed = time.monotonic()
        await asyncio.sleep(after)
        for _ in range(5):
            try:
                await asyncio.to_thread(node.start)
                restart_s.append(time.monotonic() - killed)
                return
            except RuntimeError:
                done["node_start_failures"] += 1
                await asyncio.sleep(0.5)

    seconds = args.soak_seconds
    plan = sorted(
        [(rng.uniform(0.5, seconds - 0.5), "kill") for _ in range(args.kills)]
        + [(seconds * (i + 1) / (args.pg_restarts + 1), "pg") for i in range(args.pg_restarts)]
    )
    restarting: dict[str, asyncio.Task[None]] = {}
    late = 0.0  # how far behind its plan the last fault came
    try:
        # A killed node starts again in the background while the plan goes on, so two
        # may be down at once, but never all three: one node always takes commands. The
        # database is only stopped once no node is starting (a node cannot load its
        # picture without it), and every fault is done even if the plan runs late.
        for at, what in plan:
            await asyncio.sleep(max(0.0, t_start + at - time.monotonic()))
            late = max(late, time.monotonic() - t_start - at)
            if what == "kill":
                while True:
                    up = [
                        n
                        for n in cluster.nodes
                        if n.name not in restarting or restarting[n.name].done()
                    ]
                    if len(up) >= 2:
                        break
                    await asyncio.wait(
                        [t for t in restarting.values() if not t.done()],
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                node = rng.choice(up)
                node.kill()
                done["kills"] += 1
                restarting[node.name] = asyncio.create_task(start_again(node, rng.random() * 0.3))
            else:
                await asyncio.gather(*restarting.values())
                down = time.monotonic()
                await asyncio.to_thread(own.stop, "immediate")
                await asyncio.sleep(0.5 + rng.random())
                await asyncio.to_thread(own.start)
                done["pg_restarts"] += 1
                done["pg_down_s"] += time.monotonic() - down
        await asyncio.gather(*restarting.values())
        await asyncio.sleep(max(0.0, t_start + seconds - time.monotonic()))
    finally:
        writers_stop.set()
        await asyncio.gather(*writing, *restarting.values(), return_exceptions=True)
    written_s = time.monotonic() - t_start

    head = await asyncio.to_thread(table_head, cluster.db_url)
    caught_up = False
    for _ in range(600):  # up to 30 s for the subscribers to have everything written
        if all(s.last_seq >= head for s in subscribers) or all(t.done() for t in following):
            caught_up = all(s.last_seq >= head for s in subscribers)
            break
        await asyncio.sleep(0.05)
    subscribers_stop.set()
    ended = await asyncio.gather(*following, return_exceptions=True)
    failed = [repr(x) for x in ended if isinstance(x, BaseException)]

    table = await asyncio.to_thread(table_events, cluster.db_url)
    truth = truth_figures(table, subscribers, writers)
    pictures = await picture_figures(urls, token, table)
    healthy = [await health(url) for url in urls]
    return {
        "seconds_planned": seconds,
        "seconds_written": r(written_s, 1),
        "writers": args.writers,
        **done,
        "pg_down_s": r(done["pg_down_s"], 1),
        "node_restart_p50_s": r(pct(restart_s, 50), 2),
        "node_restart_max_s": r(max(restart_s, default=float("nan")), 2),
        "faults_late_max_s": r(late, 1),
        "acknowledged_per_s": r(truth["acknowledged"] / written_s, 1),
        **{k: v for k, v in truth.items() if k != "subscribers"},
        "subscribers_caught_up": caught_up,
        "subscriber_tasks_failed": failed,
        "subscribers": truth["subscribers"],
        "pictures_equal_to_fold": sum(1 for p in pictures if p["equal_to_fold"]),
        "pictures": pictures,
        "nodes_healthy_after": sum(1 for h in healthy if h and h["status"] == "ok"),
    }


def soak_case(args, own: PrivatePostgres, workdir: Path) -> dict:
    folder = workdir / "soak"
    folder.mkdir()
    with psycopg.connect(own.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA cadterm_soak")
    cluster = Cluster(in_schema(own.url, "cadterm_soak"), folder, size=3).start()
    try:
        res = asyncio.run(soak_async(args, own, cluster))
    finally:
        cluster.close()
    emit(BENCH, kind="soak", **res)
    return res


# --- the run ----------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(CASES), help="any of " + ",".join(CASES))
    parser.add_argument(
        "--seconds", type=float, default=4.0, help="load per throughput/fanout cell"
    )
    parser.add_argument("--units", type=int, default=50, help="units booked on first")
    parser.add_argument("--subs", type=int, default=60, help="fan-out subscribers in all")
    parser.add_argument("--rate", type=float, default=100.0, help="fan-out offered events/s")
    parser.add_argument(
        "--failovers", type=int, default=10, help="kill -9 rounds per console count"
    )
    parser.add_argument("--consoles", type=int, default=5, help="consoles on the killed node")
    parser.add_argument("--failover-rate", type=float, default=20.0, help="background commands/s")
    parser.add_argument(
        "--freezes", type=int, default=3, help="SIGSTOP rounds (a hung node), 0: none"
    )
    parser.add_argument("--failover-timeout", type=float, default=60.0)
    parser.add_argument("--soak-seconds", type=float, default=60.0)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pg-restarts", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1309, help="the soak's faults")
    parser.add_argument("--pg", help="run throughput/fanout/failover on this PostgreSQL URL")
    args = parser.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    unknown = set(cases) - set(CASES)
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")
    needs_own = "soak" in cases or (args.pg is None and set(cases) - {"soak"})
    reason = why_no_private_postgres()
    if needs_own and reason:
        parser.error(f"a PostgreSQL of the bench's own cannot be made here: {reason}")

    started = time.monotonic()
    emit(BENCH, kind="machine", **machine())
    results: dict[str, object] = {}
    with scratch_dir("cluster") as tmp:
        workdir = Path(tmp)
        speed = {**machine_speed(), **fsync_speed(workdir)}
        emit(BENCH, kind="speed", when="start", **speed)
        own = PrivatePostgres() if needs_own else None
        try:
            if own is not None:
                own.start()
            pg = Postgres(args.pg, None) if args.pg else Postgres(own.url, own)
            for case in cases:
                t = time.monotonic()
                if case == "throughput":
                    results[case] = throughput_case(args, pg, workdir)
                elif case == "fanout":
                    results[case] = fanout_case(args, pg, workdir)
                elif case == "failover":
                    results[case] = failover_case(args, pg, workdir)
                else:
                    results[case] = soak_case(args, own, workdir)
                emit(BENCH, kind="case_done", case=case, seconds=r(time.monotonic() - t, 1))
        finally:
            if own is not None:
                own.close()
        speed_after = {**machine_speed(), **fsync_speed(workdir)}
        emit(BENCH, kind="speed", when="end", **speed_after)
    summary(results)
    for when, figures in (("start", speed), ("end", speed_after)):
        print(
            f"machine speed at the {when}: json.loads {figures['json_loads_per_s']:,}/s, "
            f"fsync {figures['fsync_per_s']:,}/s"
        )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


def summary(results: dict[str, object]) -> None:
    """The figures again, for people."""
    if "throughput" in results:
        print("\nthroughput: durable locate_unit commands, closed loop")
        print(
            f"{'system':>10} {'nodes':>5} {'senders':>7} {'cmds/s':>7} {'p50 ms':>7} "
            f"{'p99 ms':>7} {'node ms/cmd':>11} {'pg ms/cmd':>9} {'errors':>6}"
        )
        for x in results["throughput"]:
            pg_ms = x["postgres_cpu_ms_per_command"]
            print(
                f"{x['system']:>10} {x['nodes']:>5} {x['senders']:>7} {x['commands_per_s']:>7.0f} "
                f"{x['p50_ms']:>7.2f} {x['p99_ms']:>7.2f} {x['node_cpu_ms_per_command']:>11.3f} "
                f"{'-' if pg_ms is None else f'{pg_ms:.3f}':>9} {x['errors']:>6}"
            )
    if "fanout" in results:
        print("\nfan-out: latency = receipt - event 'at' (stamped on the node posted to)")
        print(
            f"{'system':>10} {'subs/node':>12} {'offered':>7} {'appended':>8} {'deliv/s':>8} "
            f"{'p50':>6} {'p99':>7} {'max':>7} {'lost':>5}"
        )
        for x in results["fanout"]:
            print(
                f"{x['system']:>10} {'/'.join(map(str, x['subs_per_node'])):>12} "
                f"{x['offered_per_s']:>7.0f} {x['appended_per_s']:>8.1f} "
                f"{x['delivered_per_s']:>8.0f} {x['p50_ms']:>6.1f} {x['p99_ms']:>7.1f} "
                f"{x['max_ms']:>7.1f} {x['lost_frames']:>5}"
            )
    if "failover" in results:
        print("\nfailover: the consoles' node fails -> live again on another")
        for x in results["failover"]:
            if x["how"] == "frozen_in_turn":
                print(
                    f"a node frozen inside its write turn (caught after {x.get('tries')} "
                    f"SIGSTOPs): the other nodes accepted a command again after "
                    f"{x.get('other_nodes_accepted_after_s')} s; refused meanwhile: "
                    f"{x.get('refused_meanwhile')}"
                )
                continue
            print(
                f"{'kill -9' if x['how'] == 'kill' else 'SIGSTOP'}, "
                f"{x['consoles']} console(s), {x['rounds']} rounds: each live again p50 "
                f"{x['live_again_p50_s']:.3f} s, max {x['live_again_max_s']:.3f} s; all live "
                f"p50 {x['all_live_p50_s']:.3f} s, max {x['all_live_max_s']:.3f} s; "
                f"noticed p50 {x['noticed_p50_s']:.3f} s; under 3 s: {x['under_3_s']}/"
                f"{x['measured']}; never live: {x['not_live_within_timeout']}; longest time no "
                f"node accepted a command: {x['commands_stalled_max_s']:.2f} s"
            )
    if "soak" in results:
        x = results["soak"]
        subs = x["subscribers"]
        print(
            f"\nsoak: {x['seconds_written']} s, {x['writers']} writers, {x['kills']} kill -9 "
            f"({x['node_start_failures']} failed restarts), {x['pg_restarts']} PostgreSQL "
            f"restarts ({x['pg_down_s']} s down)"
        )
        print(
            f"acknowledged {x['acknowledged']} ({x['acknowledged_per_s']}/s), unanswered "
            f"{x['unanswered']}, lost {x['lost']}, applied twice {x['applied_twice']}, "
            f"acknowledged at another seq {x['acknowledged_at_another_seq']}"
        )
        print(
            f"table: {x['events']} events, gap-free {x['gap_free']}; subscribers identical "
            f"to it: {sum(1 for s in subs if s['identical'])}/{len(subs)}, lost "
            f"{sum(s['lost'] for s in subs)}, doubled {sum(s['doubled'] for s in subs)}, "
            f"out of order {sum(s['out_of_order'] for s in subs)}, reconnects "
            f"{sum(s['reconnects'] for s in subs)}, snapshots {sum(s['snapshots'] for s in subs)}"
        )
        print(
            f"pictures equal to the fold of the table: {x['pictures_equal_to_fold']}/"
            f"{len(x['pictures'])}; nodes healthy after: {x['nodes_healthy_after']}; "
            f"subscribers caught up: {x['subscribers_caught_up']}; subscriber tasks failed: "
            f"{len(x['subscriber_tasks_failed'])}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
