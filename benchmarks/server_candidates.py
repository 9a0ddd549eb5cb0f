"""Which HTTP server should carry the simulated gateway? Measure, then choose.

Each candidate serves the same gateway logic (``sms_async.testing``'s router,
protocols and state) in a
process of its own; a load generator in another process keeps N keep-alive
connections busy with ITON ``sendSMS`` requests of 100 numbers each for a fixed
time. Reported: requests/s, recipients/s, the client's latency percentiles,
and the server process's CPU time per request (read from /proc, so that it
means something even when the client is the limit).

Candidates, each on asyncio's own loop and on uvloop:

* ``bare``: the ``asyncio.Protocol`` server of ``sms_async.testing`` (``_http``).
* ``aiohttp``: ``aiohttp.web`` with one catch-all route calling the same core.

A run is named ``server:loop:form[:connections]``, e.g. ``bare:uvloop:text:256``.

``inprocess`` splits the bare server's cost per request, with no sockets: the
HTTP parsing alone (what a C parser such as httptools could speed up) against
the whole path from bytes in to bytes out.

Usage::

    .venv/bin/python benchmarks/server_candidates.py            # full matrix, prints the table
    .venv/bin/python benchmarks/server_candidates.py --write    # ... and writes results/server-candidates.md
    .venv/bin/python benchmarks/server_candidates.py --duration 3 --candidates bare:uvloop:text
    .venv/bin/python benchmarks/server_candidates.py inprocess
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import uvloop
from aiohttp import web

from sms_async.testing import SimulatedGateway
from sms_async.testing._admin import SimulatorAdmin
from sms_async.testing._faults import FaultPlan
from sms_async.testing._http import HttpServer, _Connection
from sms_async.testing._itecpay import ItecPayProtocol
from sms_async.testing._iton import ItonProtocol
from sms_async.testing._protocol import Request
from sms_async.testing._router import Router
from sms_async.testing._state import GatewayState
from sms_async.testing._stats import GatewayStats

HOST = "127.0.0.1"
ITON_PATH = "/ItonSMSAPI/smsService/api/"
RESULTS = Path(__file__).parent / "results" / "server-candidates.md"
DEFAULT_MATRIX = (
    "bare:asyncio:text",
    "bare:uvloop:text",
    "aiohttp:asyncio:text",
    "aiohttp:uvloop:text",
    "bare:uvloop:json",
    "bare:uvloop:text:256",
    "aiohttp:asyncio:text:256",
)


# ---------------------------------------------------------------------------- servers


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    return uvloop.new_event_loop() if kind == "uvloop" else asyncio.new_event_loop()


def serve_bare(port: int, loop_kind: str, form: str) -> None:
    gateway = SimulatedGateway(
        port=port,
        use_uvloop=loop_kind == "uvloop",
        iton_send_form=form,
        store_messages=False,
        track_numbers=False,
        credits=10**15,
    )
    gateway.serve_forever(on_ready=lambda gw: print(f"READY {gw.port}", flush=True))


def serve_aiohttp(port: int, loop_kind: str, form: str) -> None:
    stats = GatewayStats()
    rng = random.Random(0)
    plan = FaultPlan((), rng)
    state = GatewayState(
        stats=stats,
        rng=rng,
        seed=0,
        dnd_numbers=(),
        dnd_action="allow",
        status_delays=(0.05, 0.2),
        undelivered_rate=0.0,
        failed_rate=0.0,
        store_messages=False,
        track_numbers=False,
    )
    state.add_account("demo", "demo-password", "demo-token", 10**15)
    protocols = [ItonProtocol(paths={"endpoint": ITON_PATH}, answer_form=form), ItecPayProtocol()]
    router = Router(protocols, state, admin=SimulatorAdmin(reset=stats.reset))

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        req = Request(request.method, request.path, request.query_string, headers, body, True)
        call = router.read(req)
        stats.requests[call.name] += 1
        plan.select(call.name, stats)
        status, content_type, payload, extra = router.carry_out(call)
        return web.Response(
            status=status, body=payload, headers={"Content-Type": content_type, **dict(extra)}
        )

    async def main() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, HOST, port, backlog=1024)
        await site.start()
        print(f"READY {port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        await stop.wait()
        await runner.cleanup()

    loop = _new_loop(loop_kind)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


# ---------------------------------------------------------------------------- load generator


def build_requests(port: int, variants: int = 64) -> list[bytes]:
    rng = random.Random(1)
    requests = []
    for _ in range(variants):
        numbers = ",".join(f"91{rng.randrange(7_000_000_000, 9_999_999_999)}" for _ in range(100))
        query = (
            f"username=demo&password=demo-password&cmd=sendSMS&sender=ITONAB&uniCode=0"
            f"&message={quote('Your order #123 is ready & waiting: 100% done.')}&to={numbers}"
        )
        requests.append(
            f"GET {ITON_PATH}?{query} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAccept: */*\r\n\r\n".encode()
        )
    return requests


async def _connection_loop(
    port: int,
    requests: list[bytes],
    *,
    deadline: float,
    latencies: list[float],
    counts: dict[str, int],
    offset: int,
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    i = offset
    try:
        while time.perf_counter() < deadline:
            data = requests[i % len(requests)]
            i += 1
            start = time.perf_counter()
            writer.write(data)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if head.startswith(b"HTTP/1.1 200") and body.startswith((b"Success", b"{")):
                counts["ok"] += 1
            else:
                counts["errors"] += 1
    finally:
        writer.close()
        await writer.wait_closed()


async def run_load(port: int, connections: int, duration: float, warmup: float) -> dict[str, float]:
    requests = build_requests(port)
    counts = {"ok": 0, "errors": 0}
    warm = {"ok": 0, "errors": 0}
    # Warm-up: fill the server's caches and let connections settle, then measure.
    warm_deadline = time.perf_counter() + warmup
    await asyncio.gather(
        *(
            _connection_loop(port, requests, deadline=warm_deadline, latencies=[], counts=warm, offset=k)
            for k in range(connections)
        )
    )
    latencies: list[float] = []
    start = time.perf_counter()
    deadline = start + duration
    await asyncio.gather(
        *(
            _connection_loop(port, requests, deadline=deadline, latencies=latencies, counts=counts, offset=k)
            for k in range(connections)
        )
    )
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": counts["ok"] + counts["errors"],
        "warmup_requests": warm["ok"] + warm["errors"],
        "errors": counts["errors"],
        "seconds": elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
    }


def load_main(port: int, connections: int, duration: float, warmup: float) -> None:
    loop = _new_loop("uvloop")
    try:
        result = loop.run_until_complete(run_load(port, connections, duration, warmup))
    finally:
        loop.close()
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------- in-process split


class _NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


def _bare_connection(form: str) -> _Connection:
    gateway = SimulatedGateway(iton_send_form=form, store_messages=False, track_numbers=False, credits=10**15)
    http: HttpServer = gateway._http  # noqa: SLF001  (the benchmark drives the server without sockets)
    connection = _Connection(http)
    connection.transport = _NullTransport()  # type: ignore[assignment]
    return connection


def inprocess(count: int = 20000) -> str:
    requests = build_requests(1234)
    lines = ["| measured in-process, no sockets | µs/request |", "|---|---:|"]
    parser = _bare_connection("text")
    best = []
    for _ in range(5):
        start = time.perf_counter()
        for i in range(count):
            parser.buffer += requests[i % len(requests)]
            parser._parse()  # noqa: SLF001  (the parser alone is what is measured)
        best.append((time.perf_counter() - start) / count * 1e6)
    lines.append(f"| HTTP parsing only (request line, headers, body split) | {min(best):.1f} |")
    for form in ("text", "json"):
        connection = _bare_connection(form)
        best = []
        for _ in range(5):
            start = time.perf_counter()
            for i in range(count):
                connection.data_received(requests[i % len(requests)])
            best.append((time.perf_counter() - start) / count * 1e6)
        lines.append(f"| whole path, bytes in to bytes out, {form} form | {min(best):.1f} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- orchestration


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(spec: str, default_connections: int, duration: float, warmup: float) -> dict[str, Any]:
    candidate, loop_kind, form, *rest = spec.split(":")
    connections = int(rest[0]) if rest else default_connections
    port = _free_port()
    cpu_at_start = 0.0
    server = subprocess.Popen(
        [sys.executable, __file__, "serve", candidate, loop_kind, form, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"{spec}: server did not start: {line!r}")
        cpu_at_start = _cpu_seconds(server.pid)
        client = subprocess.run(
            [sys.executable, __file__, "load", str(port), str(connections), str(duration), str(warmup)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(client.stdout.strip().splitlines()[-1])
    finally:
        cpu = _cpu_seconds(server.pid) - cpu_at_start
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    requests = result["requests"]
    return {
        "candidate": candidate,
        "loop": loop_kind,
        "form": form,
        "connections": connections,
        "rps": requests / result["seconds"],
        "recipients_per_s": requests * 100 / result["seconds"],
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "errors": result["errors"],
        # Server CPU from ready to the end of the load, over every request it served.
        "cpu_us_per_req": cpu / (requests + result["warmup_requests"]) * 1e6,
    }


def table(rows: list[dict[str, Any]], duration: float, repeat: int) -> str:
    lines = [
        (
            "| server | loop | send form | connections | requests/s | recipients/s | p50 ms | p99 ms "
            "| server CPU µs/request | errors |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {row['candidate']} | {row['loop']} | {row['form']} | {row['connections']} | {row['rps']:,.0f} | "
        f"{row['recipients_per_s']:,.0f} | {row['p50_ms']:.2f} | {row['p99_ms']:.2f} | "
        f"{row['cpu_us_per_req']:.0f} | {row['errors']} |"
        for row in rows
    )
    lines.append("")
    lines.append(
        f"Load: ITON sendSMS GET, 100 numbers per request (a 1.6 KB request line), keep-alive connections, "
        f"{duration:g} s measured after a warm-up; median of {repeat} interleaved run(s). Client: raw "
        "asyncio streams on uvloop, in its own process. Server CPU is the server process's user+system "
        "time from /proc over every request it served."
    )
    return "\n".join(lines)


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key in ("rps", "recipients_per_s", "p50_ms", "p99_ms", "cpu_us_per_req"):
        row[key] = statistics.median(float(run[key]) for run in runs)
    row["errors"] = sum(int(run["errors"]) for run in runs)
    return row


def orchestrate(args: argparse.Namespace) -> None:
    specs = args.candidates.split(",") if args.candidates else list(DEFAULT_MATRIX)
    runs: dict[str, list[dict[str, Any]]] = {spec: [] for spec in specs}
    # Rounds interleave the candidates, so that a burst of other load on the
    # machine hits them all alike; each figure reported is the median of its runs.
    for round_number in range(1, args.repeat + 1):
        for spec in specs:
            row = measure(spec, args.connections, args.duration, args.warmup)
            runs[spec].append(row)
            print(
                f"[{round_number}/{args.repeat}] {spec:26s} {row['rps']:9,.0f} req/s "
                f"{row['recipients_per_s']:12,.0f} recipients/s  p50 {row['p50_ms']:.2f} ms  "
                f"p99 {row['p99_ms']:.2f} ms  cpu {row['cpu_us_per_req']:.0f} us/req  errors {row['errors']}",
                flush=True,
            )
    rows = [_median_row(runs[spec]) for spec in specs]
    text = table(rows, args.duration, args.repeat)
    print()
    print(text)
    if args.write:
        header = (
            "# Server candidates for `sms_async.testing`\n\n"
            f"Measured with `benchmarks/server_candidates.py` on {platform.python_implementation()} "
            f"{platform.python_version()}, {os.cpu_count()} CPU cores ({platform.machine()}).\n\n"
        )
        notes = Path(args.notes).read_text() if args.notes else ""
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(header + text + "\n" + notes)
        print(f"\nwritten to {RESULTS}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        candidate, loop_kind, form, port = sys.argv[2:6]
        {"bare": serve_bare, "aiohttp": serve_aiohttp}[candidate](int(port), loop_kind, form)
        return
    if len(sys.argv) > 1 and sys.argv[1] == "inprocess":
        print(inprocess())
        return
    if len(sys.argv) > 1 and sys.argv[1] == "load":
        port, connections, duration, warmup = sys.argv[2:6]
        load_main(int(port), int(connections), float(duration), float(warmup))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--candidates", help="comma-separated server:loop:form[:connections] (default: the matrix)"
    )
    parser.add_argument("--connections", type=int, default=64, help="connections when a run names none")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=1, help="interleaved rounds; medians are reported")
    parser.add_argument("--write", action="store_true", help=f"write the table to {RESULTS}")
    parser.add_argument("--notes", help="a file whose text is appended to the written results")
    orchestrate(parser.parse_args())


if __name__ == "__main__":
    main()
