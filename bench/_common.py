"""Shared pieces for the benchmarks in this folder (not a benchmark itself).

- `Workload`: a seeded, realistic dispatch workload. It drives the server's own rules
  (`decide`) and the protocol fold (`apply`) on a shadow picture, so every event it
  yields is valid in sequence for the picture it started from.
- `ServerProcess`: the backend as a subprocess (``python -m cadterm.cli.main server
  --port 0``), with its CPU time read from ``/proc/<pid>/stat`` (or psutil if
  installed). A process of its own, not the in-process `EmbeddedBackend` the tests
  use, because the benchmarks charge the server's CPU to its pid and must not share a
  GIL with the load they drive.
- `seed_store`: write events straight into a SQLite store (seeding only, not durable).
- Small helpers: percentiles, JSON-line output, a bench config with the test tokens.

Run the benchmarks as scripts (``.venv/bin/python bench/bench_ingest.py``): Python puts
the script's folder on ``sys.path``, which is how they find this module.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import random
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cadterm.client.queries import QueryError, fetch_health
from cadterm.domain.rules import Codes, Refused, decide
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import (
    AddNote,
    AssessRisk,
    AssignUnit,
    BookOff,
    BookOn,
    CloseIncident,
    CreateIncident,
    GradeIncident,
    LocateUnit,
    RelocateIncident,
    SetUnitState,
    UnassignUnit,
)
from cadterm.protocol.domain import (
    AVAILABLE_STATES,
    Caller,
    Capability,
    Grade,
    Location,
    Operator,
    Position,
    Risk,
    Role,
    SourceChannel,
    UnitState,
    UnitType,
)
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState, apply
from cadterm.server.auth import hash_token
from cadterm.server.config import (
    Limits,
    OperatorEntry,
    ServerConfig,
    WorkstationEntry,
    write_config,
)
from cadterm.server.store.base import StoredCommand
from cadterm.server.store.sqlite import SQLiteEventStore

ROOT = Path(__file__).resolve().parent.parent

# The same tokens as tests/conftest.py, so a bench backend accepts what the tests use.
TOKENS = {
    Role.DISPATCHER: "dispatcher-token-0123456789abcdef",
    Role.SUPERVISOR: "supervisor-token-0123456789abcdef",
    Role.READ_ONLY: "readonly-token-0123456789abcdef",
}
OPERATOR_IDS = {Role.DISPATCHER: "disp1", Role.SUPERVISOR: "sup1", Role.READ_ONLY: "view1"}
TOKEN = TOKENS[Role.DISPATCHER]


# --- output --------------------------------------------------------------------------


def emit(bench: str, **figures: object) -> None:
    """Print one JSON line of figures (machine-readable; the summary follows at the end)."""
    print(json.dumps({"bench": bench, **figures}, default=str), flush=True)


def machine() -> dict[str, object]:
    """What ran the benchmark: cores, load, Python, date."""
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - not on Linux
        load = (0.0, 0.0, 0.0)
    return {
        "date": datetime.now(UTC).date().isoformat(),
        "nproc": os.cpu_count(),
        "loadavg_1m_at_start": round(load[0], 2),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
    }


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def r(value: float, digits: int = 3) -> float:
    """Round for printing (keeps NaN)."""
    return round(value, digits) if value == value else value


# --- config and processes --------------------------------------------------------------


#: Workstations a bench server knows: two control rooms' desks and the bench tools' own.
BENCH_WORKSTATIONS = (
    *(f"CR1-WS{i:02d}" for i in range(1, 41)),
    *(f"CR2-WS{i:02d}" for i in range(1, 6)),
    "bench",
    "bench-resume",
    "cadterm",
)


def bench_config(**overrides: object) -> ServerConfig:
    """A config with one operator of each role (the tokens in `TOKENS`) and the
    workstations in `BENCH_WORKSTATIONS`.

    Benchmarks send far more than one operator's 20 commands/s, so the per-operator rate
    limit is lifted unless `limits` is given.
    """
    limits = overrides.pop("limits", None) or Limits(command_rate=1e9, command_burst=10**9)
    overrides.setdefault("workstations", [WorkstationEntry(id=ws) for ws in BENCH_WORKSTATIONS])
    return ServerConfig(
        operators=[
            OperatorEntry(
                id=OPERATOR_IDS[role],
                name=f"Bench {role.value}",
                role=role,
                token_sha256=hash_token(token),
            )
            for role, token in TOKENS.items()
        ],
        limits=limits,
        **overrides,
    )


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary folder for databases and configs, removed on exit."""
    return tempfile.TemporaryDirectory(prefix=f"cadterm-{prefix}-")


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process `pid` (all its threads)."""
    try:
        import psutil  # type: ignore[import-not-found]

        times = psutil.Process(pid).cpu_times()
        return times.user + times.system
    except ImportError:
        pass
    with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
        text = fh.read()
    # The command name (field 2) may hold spaces; fields after its ')' are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLK_TCK


#: The line `cadterm server` prints once it has bound its port.
_SERVER_ON = re.compile(r"cadterm server on http://127\.0\.0\.1:(\d+) ")
_SERVER_NAMES = itertools.count(1)


class ServerProcess:
    """`cadterm server` as a subprocess on a loopback port; stopped on exit, always.

    The server binds port 0 itself and prints the port it got, so there is no window in
    which another process can take a port picked for it.
    """

    def __init__(self, db: Path, config: ServerConfig, workdir: Path) -> None:
        self.db = db
        self.port = 0  # known once started
        name = f"server-{next(_SERVER_NAMES)}"
        self.cfg = workdir / f"{name}.toml"
        write_config(self.cfg, config)
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def start(self, timeout: float = 60.0) -> ServerProcess:
        self.port = 0
        cmd = [
            sys.executable,
            "-m",
            "cadterm.cli.main",
            "server",
            "--db",
            str(self.db),
            "--config",
            str(self.cfg),
            "--port",
            "0",
            "--log-level",
            "warning",
        ]
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
            if not self.port:
                announced = _SERVER_ON.search(self.log.read_text())
                if announced:
                    self.port = int(announced.group(1))
            if self.port:
                try:
                    self.health()
                    return self
                except QueryError:
                    pass
            # Not listening yet (it says its port once the picture is rebuilt).
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server did not start in time")
            time.sleep(0.05)

    def health(self) -> dict[str, object]:
        return fetch_health(self.url, timeout=2).model_dump()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_process(proc: subprocess.Popen[bytes] | subprocess.Popen[str] | None) -> None:
    """Terminate one child we started (by its handle), killing it if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


# --- the workload ----------------------------------------------------------------------

_STREETS = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Mill Lane",
    "Queens Road",
    "Kings Road",
    "Park Avenue",
    "London Road",
    "Manor Way",
    "Green Lane",
    "The Broadway",
    "Albert Embankment",
    "Marsh Wall",
    "Coldharbour Lane",
)
_TOWNS = ("Lambeth", "Southwark", "Croydon", "Brixton", "Peckham", "Deptford", "Lewisham")
_NAMES = ("A. Khan", "J. Smith", "M. O'Neill", "P. Kowalski", "S. Adeyemi", "R. Evans")
_RELATION = ("victim", "witness", "neighbour", "security guard", "passer-by", "relative")
_NOTES = (
    "Caller states male now walking towards the park, wearing dark hoodie and jeans.",
    "Informant recontacted: vehicle has left the scene heading north on the A23.",
    "PNC check complete, no markers on the vehicle. Keeper details passed to unit.",
    "Ambulance requested via EOC, ETA 12 minutes. Caller advised to stay on the line.",
    "Unit reports area search negative, will conduct further patrol before resuming.",
    "CCTV operator has eyes on, suspect described as IC1 male, approx 30, slim build.",
    "Neighbour reports shouting has stopped. Unit to carry out welfare check anyway.",
    "Supervisor aware. Risk reviewed, grade to remain. Update informant when attended.",
    "Keyholder contacted and attending, ETA 20 minutes. Premises appear secure.",
    "Partner agency (social services) informed; duty manager to call back the OIC.",
)
_DESCRIPTIONS = (
    "Two vehicle collision, one car on its roof, occupants believed trapped.",
    "Caller reports shouting and sounds of a struggle from the flat upstairs.",
    "Shop staff detained a male for theft, he is becoming aggressive.",
    "Elderly male missing from care home since 14:00, has dementia, no coat.",
    "Group of youths throwing stones at passing buses, damage to one window.",
    "Intruder alarm activation, rear door insecure on arrival of keyholder.",
)
_SUMMARIES = (
    "Words of advice given to both parties, no offences disclosed, no further action.",
    "Male arrested for theft and taken to custody; property recovered and returned.",
    "Area searched with negative result; informant updated and happy with outcome.",
    "Vehicles recovered by the local authority, road reopened, all parties exchanged details.",
)
_TYPES = ("RTC", "DOMESTIC", "THEFT", "MISSING", "ASB", "ALARM", "CONCERN", "ASSAULT")
_UNIT_TYPES = (
    (UnitType.PATROL_CAR, []),
    (UnitType.PATROL_CAR, [Capability.TASER]),
    (UnitType.VAN, [Capability.PUBLIC_ORDER]),
    (UnitType.ARMED_RESPONSE, [Capability.FIREARMS, Capability.TASER]),
    (UnitType.DOG, [Capability.DOG]),
    (UnitType.TRAFFIC, [Capability.TRAFFIC, Capability.FIRST_AID]),
    (UnitType.FOOT, []),
)
_WORKSTATIONS = ("CR1-WS01", "CR1-WS04", "CR1-WS07", "CR2-WS02", "CR2-WS05")
_OPERATORS = tuple(
    Operator(id=f"disp.{name}", name=name.title(), role=Role.DISPATCHER)
    for name in ("okafor", "hughes", "nowak", "campbell", "patel")
)


def callsign(i: int) -> str:
    return f"{'ABCDEFGHJK'[i % 10]}{'XYZW'[i // 10 % 4]}{i:02d}"[:6]


class Workload:
    """A seeded control-room shift: commands through the server's rules and the fold.

    `events(n)` yields `n` more valid events. The mix is dominated by AVL fixes and unit
    state changes, with notes, new incidents, assignments and closures in between,
    keeping a roughly steady number of open incidents. `seed_state()` books units on and
    opens incidents to give a realistic starting picture.
    """

    def __init__(self, seed: int = 1, units: int = 300, start: datetime | None = None):
        self.rng = random.Random(seed)
        self.state = DispatchState()
        self.codes = Codes(INCIDENT_TYPES, CLOSING_CODES)
        self.clock = start or datetime(2026, 11, 27, 7, 0, tzinfo=UTC)
        self.n_units = units
        self.callsigns = [callsign(i) for i in range(units)]
        self.open: list[str] = []
        self.refused = 0
        self._keys = 0

    # -- plumbing --

    def _base(self) -> dict[str, object]:
        self._keys += 1
        return {
            "idempotency_key": f"bench-{self._keys:012d}",
            "workstation": self.rng.choice(_WORKSTATIONS),
        }

    def _tick(self) -> datetime:
        self.clock += timedelta(milliseconds=self.rng.randint(1, 40))
        return self.clock

    def _do(self, command) -> Event | None:
        at = self._tick()
        try:
            event = decide(self.state, command, self.rng.choice(_OPERATORS), at, self.codes)
        except Refused:
            self.refused += 1
            return None
        apply(self.state, event)
        return event

    def _position(self) -> Position:
        return Position(
            lat=round(51.45 + self.rng.random() * 0.1, 6),
            lon=round(-0.2 + self.rng.random() * 0.2, 6),
        )

    def _location(self) -> Location:
        rng = self.rng
        return Location(
            address=f"{rng.randint(1, 240)} {rng.choice(_STREETS)}, {rng.choice(_TOWNS)}",
            position=self._position(),
            sector=f"S{rng.randint(1, 12):02d}",
        )

    # -- the commands --

    def book_on(self, cs: str) -> Event | None:
        unit_type, caps = self.rng.choice(_UNIT_TYPES)
        return self._do(
            BookOn(
                **self._base(),
                callsign=cs,
                unit_type=unit_type,
                capabilities=caps,
                home_sector=f"S{self.rng.randint(1, 12):02d}",
                position=self._position(),
            )
        )

    def create(self) -> Event | None:
        rng = self.rng
        event = self._do(
            CreateIncident(
                **self._base(),
                grade=rng.choices(list(Grade), weights=(15, 35, 30, 15, 5))[0],
                incident_type=rng.choice(_TYPES),
                location=self._location(),
                description=" ".join(rng.sample(_DESCRIPTIONS, 2)),
                caller=Caller(
                    name=rng.choice(_NAMES),
                    phone=f"07{rng.randint(100000000, 999999999)}",
                    relationship=rng.choice(_RELATION),
                )
                if rng.random() < 0.8
                else None,
                source=rng.choice([SourceChannel.EMERGENCY_999, SourceChannel.NON_EMERGENCY_101]),
            )
        )
        if event is not None:
            self.open.append(event.reference)
        return event

    def locate(self) -> Event | None:
        cs = self.rng.choice(self.callsigns)
        if not self.state.units[cs].on_duty:
            return self.book_on(cs)
        fixed = self.clock - timedelta(milliseconds=self.rng.randint(0, 3000))
        return self._do(
            LocateUnit(**self._base(), callsign=cs, position=self._position(), fixed_at=fixed)
        )

    def note(self) -> Event | None:
        if not self.open:
            return self.create()
        ref = self.rng.choice(self.open)
        text = " ".join(self.rng.sample(_NOTES, self.rng.randint(2, 5)))
        return self._do(AddNote(**self._base(), reference=ref, text=text))

    def assign(self) -> Event | None:
        if not self.open:
            return self.create()
        ref = self.rng.choice(self.open)
        units = self.state.units
        for _ in range(8):
            cs = self.rng.choice(self.callsigns)
            unit = units[cs]
            if unit.on_duty and unit.incident is None and unit.state in AVAILABLE_STATES:
                return self._do(AssignUnit(**self._base(), reference=ref, callsign=cs))
        return self.locate()

    def state_change(self) -> Event | None:
        units = self.state.units
        for _ in range(8):
            cs = self.rng.choice(self.callsigns)
            unit = units[cs]
            if not unit.on_duty:
                continue
            if unit.state == UnitState.EN_ROUTE:
                new = UnitState.AT_SCENE
            elif unit.state == UnitState.AT_SCENE:
                new = UnitState.AVAILABLE_ON_PATROL  # clears it from the incident
            elif unit.state == UnitState.REFRESHMENTS:
                new = UnitState.AVAILABLE_ON_PATROL
            elif unit.state in AVAILABLE_STATES and unit.incident is None:
                new = self.rng.choice([UnitState.REFRESHMENTS, UnitState.AVAILABLE_AT_STATION])
                if new == unit.state:
                    continue
            else:
                continue
            return self._do(SetUnitState(**self._base(), callsign=cs, state=new))
        return self.locate()

    def close(self) -> Event | None:
        if not self.open:
            return self.create()
        ref = self.open.pop(self.rng.randrange(len(self.open)))
        code = self.rng.choice(list(CLOSING_CODES))
        summary = self.rng.choice(_SUMMARIES) if self.rng.random() < 0.7 else None
        return self._do(
            CloseIncident(**self._base(), reference=ref, closing_code=code, summary=summary)
        )

    def minor(self) -> Event | None:
        """A rarer incident or unit change: grade, risk, relocation, stand-down, book-off."""
        if not self.open:
            return self.create()
        rng = self.rng
        ref = rng.choice(self.open)
        incident = self.state.incidents[ref]
        pick = rng.random()
        if pick < 0.35:
            grade = rng.choice([g for g in Grade if g != incident.grade])
            return self._do(
                GradeIncident(**self._base(), reference=ref, grade=grade, reason="Reassessed")
            )
        if pick < 0.55:
            risk = Risk(threat="Verbal threats made", vulnerability="Caller lives alone")
            return self._do(AssessRisk(**self._base(), reference=ref, risk=risk))
        if pick < 0.7:
            return self._do(
                RelocateIncident(**self._base(), reference=ref, location=self._location())
            )
        if pick < 0.85 and incident.assigned:
            cs = rng.choice(incident.assigned)
            return self._do(
                UnassignUnit(**self._base(), reference=ref, callsign=cs, reason="Not required")
            )
        cs = rng.choice(self.callsigns)
        unit = self.state.units[cs]
        if unit.on_duty and unit.incident is None:
            return self._do(BookOff(**self._base(), callsign=cs))
        return self.locate()

    # -- driving --

    def seed_state(self, incidents: int = 80) -> list[Event]:
        """Book every unit on and open `incidents` incidents, some resourced."""
        out = [self.book_on(cs) for cs in self.callsigns]
        for _ in range(incidents):
            out.append(self.create())
        for _ in range(incidents // 2):
            out.append(self.assign())
        return [e for e in out if e is not None]

    def step(self) -> Event | None:
        p = self.rng.random()
        n_open = len(self.open)
        if p < 0.42:
            return self.locate()
        if p < 0.58:
            return self.state_change()
        if p < 0.78:
            return self.note()
        if p < 0.83 or n_open < 40:
            return self.create() if n_open < 160 else self.close()
        if p < 0.92:
            return self.assign()
        if p < 0.97 or n_open > 160:
            return self.close()
        return self.minor()

    def events(self, n: int) -> Iterator[Event]:
        """`n` more valid events, in seq order."""
        made = 0
        while made < n:
            event = self.step()
            if event is not None:
                made += 1
                yield event


def frame_json(event: Event) -> str:
    """The stream frame the server sends for `event` (as `DispatchService._publish`)."""
    from cadterm.protocol.frames import EventFrame

    return EventFrame(event=event).model_dump_json()


# --- seeding a store directly (not durable: seeding only) ------------------------------


@dataclass
class Seeded:
    """What `seed_store` wrote: the head, and states kept at chosen seqs (as JSON)."""

    head: int
    seconds: float
    states: dict[int, str]
    final_state: DispatchState


def seed_store(
    db: Path,
    workload: Workload,
    n_events: int,
    *,
    keep_states_at: tuple[int, ...] = (),
    keep_back: tuple[int, ...] = (),
    retain_events: int = 10**9,
    snapshot: bool = True,
) -> Seeded:
    """Append the workload's seed picture and `n_events` more events to the store at `db`.

    Uses `SQLiteEventStore.append` (one transaction per event, as the server does), but
    with ``PRAGMA synchronous=OFF`` on the seeding connection: it is seeding, not a
    durability test. Ends with a snapshot at the head so the server starts quickly.
    `keep_states_at` lists seqs whose picture is kept (as JSON) for resuming clients;
    `keep_back` lists distances back from the final head whose picture is kept too.
    """
    started = time.perf_counter()
    store = SQLiteEventStore(db, retain_events=retain_events)
    assert store._conn is not None
    store._conn.execute("PRAGMA synchronous=OFF")
    states: dict[int, str] = {}
    wanted = set(keep_states_at)
    try:

        def put(event: Event) -> None:
            record = StoredCommand(
                f"seed-{event.seq:012d}", event.operator, "0" * 64, 200, "{}", event.seq
            )
            store.append(event, record)
            if event.seq in wanted:
                states[event.seq] = workload.state.model_dump_json()

        if 0 in wanted:
            states[0] = workload.state.model_dump_json()
        if workload.state.seq == 0:
            for event in workload.seed_state():
                put(event)
        final = workload.state.seq + n_events
        wanted |= {final - k for k in keep_back}
        if workload.state.seq in wanted:
            states[workload.state.seq] = workload.state.model_dump_json()
        for event in workload.events(n_events):
            put(event)
        if snapshot:
            store.save_snapshot(workload.state)
        head = store.head()
    finally:
        store.close()
    return Seeded(head, time.perf_counter() - started, states, workload.state)


def seed_bulk(db: Path, n_events: int, *, seed: int = 7, units: int = 300) -> Seeded:
    """A log of `n_events` written with executemany (fast path for very long logs).

    The first events are a real `Workload` (units booked on, incidents open and
    resourced, a few thousand mixed events); the rest are AVL fixes (`unit_located`),
    written as JSON text in bulk inside large transactions with synchronous=OFF, each
    with its command row (a uuid4 key and a full-sized stored result), as the server
    would have written them. The picture after them is computed exactly (a fix only
    moves the unit and bumps its version) and stored as a snapshot at the head.
    """
    import uuid

    started = time.perf_counter()
    workload = Workload(seed=seed, units=units)
    head_events = min(n_events, 5000)
    seeded = seed_store(db, workload, max(0, head_events - workload.n_units - 120))
    state = seeded.final_state
    seq = seeded.head
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-200000")
        rng = random.Random(seed)
        clock = workload.clock
        on_duty = [cs for cs, unit in state.units.items() if unit.on_duty]
        last_fix: dict[str, tuple[float, float, str]] = {}
        bumps: dict[str, int] = {}
        batch = 50_000
        while seq < n_events:
            events = []
            commands = []
            for _ in range(min(batch, n_events - seq)):
                seq += 1
                clock += timedelta(milliseconds=rng.randint(1, 40))
                at = clock.isoformat().replace("+00:00", "Z")
                at = at[:23] + "Z" if len(at) > 24 else at
                cs = rng.choice(on_duty)
                lat = round(51.45 + rng.random() * 0.1, 6)
                lon = round(-0.2 + rng.random() * 0.2, 6)
                body = (
                    f'{{"seq":{seq},"at":"{at}","operator":"disp.okafor",'
                    f'"workstation":"CR1-WS01","type":"unit_located","callsign":"{cs}",'
                    f'"position":{{"lat":{lat},"lon":{lon}}},"fixed_at":"{at}"}}'
                )
                key = uuid.uuid4().hex
                result = (
                    f'{{"idempotency_key":"{key}","seq":{seq},"event":{body},"replayed":false}}'
                )
                events.append((seq, "unit_located", at, body))
                commands.append((key, "disp.okafor", "0" * 64, 200, result, seq))
                last_fix[cs] = (lat, lon, at)
                bumps[cs] = bumps.get(cs, 0) + 1
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events (seq, type, at, body) VALUES (?,?,?,?)", events)
            conn.executemany(
                "INSERT INTO commands (idempotency_key, operator, fingerprint, status, body, seq)"
                " VALUES (?,?,?,?,?,?)",
                commands,
            )
            conn.execute("COMMIT")
        for cs, (lat, lon, at) in last_fix.items():
            unit = state.units[cs]
            unit.position = Position(lat=lat, lon=lon)
            unit.position_at = datetime.fromisoformat(at)
            unit.version += bumps[cs]
        state.seq = seq
        conn.execute(
            "INSERT OR REPLACE INTO snapshots (seq, body) VALUES (?, ?)",
            (seq, state.model_dump_json()),
        )
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return Seeded(seq, time.perf_counter() - started, {}, state)
