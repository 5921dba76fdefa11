"""Helper processes for bench_fanout.py (and bench_throughput.py); not a benchmark.

Roles (first argument):

``subs URL TOKEN N SINCE [BATCH]``
    Open N WebSocket subscriptions (subprotocol cadterm.v1, raw `websockets`, no cadterm
    client code), subscribe after SINCE (asking for ``events`` frames of up to BATCH
    events when BATCH is given and above 1), print ``ready`` once all are caught up, and
    record every event's seq and receive time (the events of one ``events`` frame share
    its receive time). Reads commands on stdin: ``report LO HI T0 [INTENDED]`` prints one
    JSON line about events with LO < seq <= HI (waiting up to 3 s for stragglers), with
    latencies from each event's ``at`` and, given INTENDED (a file the load role wrote),
    from the time the load meant to send the command that made it; ``quit`` exits.

``load MODE URL TOKEN RATE SECONDS CONNS [INTENDED]``
    Open-loop load at RATE events/s for SECONDS (RATE 0: closed loop, each of CONNS
    connections sending its next command as soon as the last is answered). MODE
    ``http`` posts ``locate_unit`` commands to ``URL/v1/commands`` (``http/N``, closed
    loop only: N commands a request to ``URL/v1/commands/batch``) over CONNS keep-alive
    HTTP/1.1 connections (a tiny raw client, so the generator costs little CPU); MODE
    ``ws`` sends one publish message per event to the bare broadcast server. Prints one
    JSON line: sent, completed, errors, first/last seq, start/end times. When the target
    is faster than the server, the backlog is capped, the rest of the schedule is skipped
    (and counted) and the achieved rate is reported.

    With INTENDED (a file path) the schedule is never thinned: every command keeps its
    intended send time however late it goes out, and the file gets ``[seq, intended
    wall time]`` for each, so latency is timed from when the command was meant to be
    sent (no coordinated omission). If the backlog passes one second of the schedule the
    server is not holding the rate: the rest of the schedule is skipped and counted, and
    the cell is reported as not held.

``bare PORT``
    The baseline: a bare `websockets` server. Subscribers send a subscribe frame and get
    ``caught_up``; each publish message makes one event frame of the same shape and size
    as cadterm's ``unit_located`` frame, stamped with the server time, sent to every
    subscriber with ``websockets.asyncio.server.broadcast``; the publisher gets the seq.
    Prints ``listening PORT`` once up (PORT 0 lets the system pick a free one).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys
import time
import uuid
from array import array
from datetime import UTC, datetime

from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve

SUBPROTOCOL = "cadterm.v1"
PREFIX = '{"type":"event","event":{"seq":'
BATCH_PREFIX = '{"type":"events","events":['
# Each event's seq and at, wherever it is in a frame (the bench's events carry no text
# that could look like this).
SEQ_AT = re.compile(r'\{"seq":(\d+),"at":"([^"]+)"')
CALLSIGNS = None  # filled by the load role from the server (or made up for bare)


def _read_json(path: str) -> list:
    # Small files read between cells, when nothing is being timed.
    with open(path, encoding="ascii") as fh:
        return json.load(fh)


def _write_json(path: str, value: object) -> None:
    with open(path, "w", encoding="ascii") as fh:
        json.dump(value, fh)


# --- subscribers -------------------------------------------------------------------------


class Recorder:
    def __init__(self) -> None:
        self.seqs = array("q")
        self.recv = array("d")
        self.at: dict[int, float] = {}
        self.max_seq: list[int] = []
        self.closed: list[str] = []
        self.closed_idx: set[int] = set()
        self.frames = [0]  # event-carrying frames received, for the events per frame


async def one_subscriber(
    url: str, token: str, since: int, rec: Recorder, idx: int, ready, batch: int = 0
):
    async with connect(
        url,
        subprotocols=[SUBPROTOCOL],
        additional_headers={"Authorization": f"Bearer {token}"},
        max_size=None,
        max_queue=None,
        compression=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=1,
    ) as ws:
        subscribe: dict[str, object] = {"type": "subscribe", "since": since}
        if batch > 1:
            subscribe["batch"] = batch
        await ws.send(json.dumps(subscribe))
        seqs, recv, at_of, maxes, frames = rec.seqs, rec.recv, rec.at, rec.max_seq, rec.frames
        now = time.time
        plen = len(PREFIX)
        try:
            async for msg in ws:
                if msg.startswith(PREFIX):
                    t = now()
                    frames[0] += 1
                    comma = msg.index(",", plen)
                    seq = int(msg[plen:comma])
                    seqs.append(seq)
                    recv.append(t)
                    if seq > maxes[idx]:
                        maxes[idx] = seq
                    if seq not in at_of:
                        start = comma + 7  # ,"at":"
                        at = msg[start : msg.index('"', start)]
                        at_of[seq] = datetime.fromisoformat(at).timestamp()
                elif msg.startswith(BATCH_PREFIX):
                    t = now()
                    frames[0] += 1
                    for match in SEQ_AT.finditer(msg):
                        seq = int(match[1])
                        seqs.append(seq)
                        recv.append(t)
                        if seq > maxes[idx]:
                            maxes[idx] = seq
                        if seq not in at_of:
                            at_of[seq] = datetime.fromisoformat(match[2]).timestamp()
                elif msg.startswith('{"type":"caught_up"'):
                    ready()
        except Exception as exc:  # a cut-off subscriber is a result, not a crash
            rec.closed.append(f"{type(exc).__name__}: {exc}")
            rec.closed_idx.add(idx)
            return
        rec.closed.append(f"closed {ws.close_code} {ws.close_reason}")
        rec.closed_idx.add(idx)


async def run_subs(url: str, token: str, n: int, since: int, batch: int = 0) -> None:
    rec = Recorder()
    rec.max_seq = [0] * n
    ready_count = 0
    all_ready = asyncio.Event()

    def ready() -> None:
        nonlocal ready_count
        ready_count += 1
        if ready_count == n:
            all_ready.set()

    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(one_subscriber(url, token, since, rec, i, ready, batch)))
        if i % 25 == 24:
            await asyncio.sleep(0.02)  # do not stampede the accept queue
    await asyncio.wait_for(all_ready.wait(), 60)
    print("ready", flush=True)

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or line.strip() == "quit":
            break
        _, lo, hi, t0, *rest = line.split()
        lo, hi, t0 = int(lo), int(hi), float(t0)
        intended: dict[int, float] = {}
        if rest:
            intended = {int(seq): when for seq, when in _read_json(rest[0])}
        for _ in range(60):  # up to 3 s for stragglers
            if all(m >= hi or i in rec.closed_idx for i, m in enumerate(rec.max_seq)):
                break
            await asyncio.sleep(0.05)
        lat = []
        late = []  # from the intended send time
        count = 0
        last = 0.0
        at_of = rec.at
        for seq, t in zip(rec.seqs, rec.recv, strict=True):
            if lo < seq <= hi:
                count += 1
                lat.append((t - at_of[seq]) * 1000.0)
                meant = intended.get(seq)
                if meant is not None:
                    late.append((t - meant) * 1000.0)
                if t > last:
                    last = t
        lat.sort()
        late.sort()
        print(
            json.dumps(
                {
                    "delivered": count,
                    "expected": (hi - lo) * n,
                    "last_recv": last,
                    "p50_ms": lat[len(lat) // 2] if lat else None,
                    "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None,
                    "max_ms": lat[-1] if lat else None,
                    "samples": [lat[int(i * len(lat) / 2000)] for i in range(2000)]
                    if len(lat) > 2000
                    else lat,
                    "closed": len(rec.closed),
                    "closed_reasons": sorted(set(rec.closed))[:3],
                    "span_s": last - t0 if last else None,
                    "intended_samples": [late[int(i * len(late) / 2000)] for i in range(2000)]
                    if len(late) > 2000
                    else late,
                    "intended_count": len(late),
                    "frames": rec.frames[0],
                    "intended_max_ms": late[-1] if late else None,
                }
            ),
            flush=True,
        )
        # Forget what was reported so memory stays flat across cells (in place: the
        # connection tasks hold references to these containers).
        del rec.seqs[:]
        del rec.recv[:]
        rec.at.clear()
        rec.frames[0] = 0
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# --- load ------------------------------------------------------------------------------


async def http_worker(
    host, port, token, tickets: asyncio.Queue, out: dict, callsigns, tag, closed_until=None, batch=1
):
    """Send commands: one per ticket, or back to back until `closed_until` (closed loop).

    With `batch` above 1 (closed loop only), each request is a `POST /v1/commands/batch`
    of that many commands, and every command answered 200 counts as completed.
    """
    reader, writer = await asyncio.open_connection(host, port)
    rng = random.Random(tag)
    run = uuid.uuid4().hex  # keys must differ across load processes, or they replay
    n = 0
    try:
        while True:
            meant = None
            if closed_until is None:
                item = await tickets.get()
                if item is None:
                    return
                meant = item
            else:
                await out["go"].wait()
                if time.perf_counter() >= closed_until[0]:
                    return
            commands = []
            for _ in range(batch):
                n += 1
                cs = rng.choice(callsigns)
                lat, lon = 51.45 + rng.random() * 0.1, -0.2 + rng.random() * 0.2
                commands.append(
                    f'{{"type":"locate_unit","idempotency_key":"load-{run}-{tag}-{n:09d}",'
                    f'"workstation":"bench","callsign":"{cs}","position":'
                    f'{{"lat":{lat:.6f},"lon":{lon:.6f}}}}}'
                )
            if batch == 1:
                path, body = "/v1/commands", commands[0].encode()
            else:
                path, body = "/v1/commands/batch", f'{{"commands":[{",".join(commands)}]}}'.encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            t = time.perf_counter()
            writer.write(head + body)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length)
            out["lat"].append(time.perf_counter() - t)
            if batch > 1 and b" 200 " in status_line:
                accepted = payload.count(b'{"status":200,')
                out["completed"] += accepted
                out["errors"] += batch - accepted
                if accepted < batch:
                    out["error_sample"] = payload[:300].decode("utf-8", "replace")
                seqs = [int(m) for m in re.findall(rb'"event":\{"seq":(\d+)', payload)]
                if seqs:
                    out["first_seq"] = min(out["first_seq"], seqs[0])
                    out["last_seq"] = max(out["last_seq"], seqs[-1])
            elif b" 200 " in status_line:
                out["completed"] += 1
                i = payload.find(b'"seq":')
                seq = int(payload[i + 6 : payload.index(b",", i)])
                if meant is not None:
                    out["intended"].append((seq, meant))
                out["first_seq"] = min(out["first_seq"], seq)
                out["last_seq"] = max(out["last_seq"], seq)
            else:
                out["errors"] += 1
                out["error_sample"] = payload[:200].decode("utf-8", "replace")
    finally:
        writer.close()


async def ws_worker(url, tickets: asyncio.Queue, out: dict):
    async with connect(
        url, subprotocols=[SUBPROTOCOL], compression=None, ping_interval=None, max_size=None
    ) as ws:
        await ws.send('{"type":"publisher"}')
        while True:
            item = await tickets.get()
            if item is None:
                return
            t = time.perf_counter()
            await ws.send("pub")
            seq = int(await ws.recv())
            out["lat"].append(time.perf_counter() - t)
            out["intended"].append((seq, item))
            out["completed"] += 1
            out["first_seq"] = min(out["first_seq"], seq)
            out["last_seq"] = max(out["last_seq"], seq)


async def run_load(
    mode: str,
    url: str,
    token: str,
    rate: float,
    seconds: float,
    conns: int,
    intended_path: str | None = None,
):
    out = {
        "completed": 0,
        "errors": 0,
        "first_seq": 10**18,
        "last_seq": 0,
        "lat": [],
        "intended": [],
    }
    tickets: asyncio.Queue = asyncio.Queue()
    closed = rate <= 0  # closed loop: every connection sends back to back
    closed_until = [float("inf")]
    out["go"] = asyncio.Event()
    # "http/N": N commands a request (POST /v1/commands/batch), closed loop only.
    mode, _, per_request = mode.partition("/")
    batch = int(per_request or 1)
    if batch > 1 and not closed:
        raise SystemExit("batched requests are for the closed loop (RATE 0) only")
    if mode == "http":
        host, port = url.split("//", 1)[1].split(":")
        # Imported here: the subscriber processes stay free of cadterm client code.
        from cadterm.client.queries import Queries

        async with Queries(url, token) as queries:
            callsigns = [unit.callsign for unit in await queries.units() if unit.on_duty]
        workers = [
            asyncio.create_task(
                http_worker(
                    host,
                    int(port),
                    token,
                    tickets,
                    out,
                    callsigns,
                    i,
                    closed_until if closed else None,
                    batch,
                )
            )
            for i in range(conns)
        ]
    else:
        workers = [asyncio.create_task(ws_worker(url, tickets, out)) for _ in range(conns)]
    await asyncio.sleep(0.2)  # connections up
    total = int(rate * seconds)
    t0_wall = time.time()
    t0 = time.perf_counter()
    sent = 0
    dropped = 0
    if closed:
        closed_until[0] = t0 + seconds
        out["go"].set()
    # Without INTENDED the backlog is capped at a few commands a connection and the
    # schedule thinned past it; with it, nothing is thinned until a second's worth waits.
    cap = 4 * conns if intended_path is None else max(4 * conns, int(rate))
    gave_up = None
    while not closed and sent + dropped < total:
        due = t0 + (sent + dropped) / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if tickets.qsize() > cap:
            if intended_path is not None:
                # Not holding the rate: stop here rather than time a backlog that only
                # grows. The rest of the schedule is skipped and counted.
                gave_up = time.perf_counter() - t0
                dropped = total - sent
                break
            dropped += 1
            continue
        tickets.put_nowait(t0_wall + (due - t0))
        sent += 1
    for _ in workers:
        tickets.put_nowait(None)
    await asyncio.gather(*workers)
    t_end = time.perf_counter()
    out.pop("go")
    lat = sorted(out.pop("lat"))
    intended = out.pop("intended")
    if intended_path is not None:
        _write_json(intended_path, intended)
    if closed:
        sent = total = out["completed"] + out["errors"]
    print(
        json.dumps(
            {
                **out,
                "target": total,
                "sent": sent,
                "skipped": dropped,
                "gave_up_at_s": gave_up,
                "t0_wall": t0_wall,
                "elapsed_s": t_end - t0,
                "achieved_per_s": out["completed"] / (t_end - t0),
                "req_p50_ms": lat[len(lat) // 2] * 1000 if lat else None,
                "req_p99_ms": lat[int(len(lat) * 0.99)] * 1000 if lat else None,
            }
        ),
        flush=True,
    )


# --- the bare broadcast baseline -------------------------------------------------------


async def run_bare(port: int) -> None:
    subscribers: set = set()
    seq = 0
    rng = random.Random(3)

    def now_iso() -> str:
        now = datetime.now(UTC)
        return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}000Z"

    async def handler(ws):
        nonlocal seq
        first = json.loads(await ws.recv())
        if first.get("type") == "publisher":
            async for _ in ws:
                seq += 1
                at = now_iso()
                frame = (
                    f'{{"type":"event","event":{{"seq":{seq},"at":"{at}","operator":"disp1",'
                    f'"workstation":"bench","type":"unit_located","callsign":"AX{seq % 300:02d}",'
                    f'"position":{{"lat":{51.45 + rng.random() * 0.1:.6f},'
                    f'"lon":{-0.2 + rng.random() * 0.2:.6f}}},"fixed_at":"{at}"}}}}'
                )
                broadcast(subscribers, frame)
                await ws.send(str(seq))
            return
        await ws.send(json.dumps({"type": "caught_up", "seq": seq}, separators=(",", ":")))
        subscribers.add(ws)
        try:
            await ws.wait_closed()
        finally:
            subscribers.discard(ws)

    async with serve(
        handler,
        "127.0.0.1",
        port,
        subprotocols=[SUBPROTOCOL],
        compression=None,
        ping_interval=None,
        max_size=None,
    ) as server:
        # With PORT 0 the system picks one: say which.
        print("listening", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


def main(argv: list[str]) -> int:
    role = argv[0]
    if role == "subs":
        url, token, n, since = argv[1], argv[2], int(argv[3]), int(argv[4])
        batch = int(argv[5]) if len(argv) > 5 else 0
        asyncio.run(run_subs(url, token, n, since, batch))
    elif role == "load":
        mode, url, token = argv[1], argv[2], argv[3]
        rate, seconds, conns = float(argv[4]), float(argv[5]), int(argv[6])
        intended_path = argv[7] if len(argv) > 7 else None
        asyncio.run(run_load(mode, url, token, rate, seconds, conns, intended_path))
    elif role == "bare":
        asyncio.run(run_bare(int(argv[1])))
    else:
        raise SystemExit(f"unknown role {role}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
