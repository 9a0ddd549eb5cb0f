"""Benchmarks for sms_async: the library against a bare protocol client and raw aiohttp and httpx loops.

``python benchmarks/run.py`` (the same as ``--quick``, about 2.5 minutes) or
``--full`` (every configuration, roughly half an hour on 2 cores); ``nox -s bench
-- --full`` passes the flag on. The table goes to ``benchmarks/results/latest.md``.

How it measures (``benchmarks/README.md`` says why):

* The simulated gateway (``python -m sms_async.testing``) runs in a process of
  its own, pinned to CPU 0, with message storage and number tracking off so
  that its memory stays flat; one gateway per simulated latency.
* Every measurement is a fresh client process pinned to CPU 1. It builds its
  input (and, for the bare and raw clients, every request), warms its
  connections up, then times ``--repeat`` runs with ``time.perf_counter`` and
  ``time.process_time``, keeps the fastest, and reports its peak RSS
  (``ru_maxrss``). A run in which any recipient was not accepted, by the
  client's count or by the gateway's, stops the benchmark, so that a broken
  run cannot report a speed.
* In each round every client of every configuration runs once (the order
  rotating from round to round); figures are medians over the rounds, and
  ratios are medians of per-round ratios to the raw aiohttp loop of the same
  configuration, so that other work on the machine hits all of them alike.
  Client CPU per request is the first figure of every row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

# After the path fix above: the worktree's sms_async, and the harness beside this file.
from harness.clients import (  # noqa: E402
    CLIENT_CPU,
    HOST,
    PASSWORD,
    SERVER_CPU,
    USERNAME,
    Job,
    Sample,
    client_main,
    pin,
)
from harness.report import (  # noqa: E402
    REFERENCE_CLIENTS,
    Config,
    KeysRow,
    NormRow,
    Report,
    Row,
    ScaleRow,
    add_ratios,
    render,
    write_json,
)
from harness.services import cluster_missing, run_campaign_create, run_cluster, store_missing  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
GATEWAYS = ("iton", "itecpay")
SCALE_SIZES = (10_000, 100_000, 1_000_000, 10_000_000)
PERSONAL_COUNT = 20_000
#: The rows a run can measure (``--rows``); ``--quick`` measures the first six.
ROWS = ("send", "national", "personal", "stream", "keys", "normalise", "latency", "campaign", "cluster")
QUICK_ROWS = ROWS[:6]
CAMPAIGN_SIZE = 10_000_000
CLUSTER_RECIPIENTS = 200_000


# ---------------------------------------------------------------------------- the gateway process


class Gateway:
    """``python -m sms_async.testing`` in a process of its own, pinned to the server CPU."""

    def __init__(self, latency_ms: int) -> None:
        self.latency_ms = latency_ms
        self.port = _free_port()
        command = [
            sys.executable, "-m", "sms_async.testing",
            "--port", str(self.port), "--quiet", "--uvloop",
            "--username", USERNAME, "--password", PASSWORD, "--credits", str(10**15),
            "--no-store-messages", "--no-track-numbers",
        ]  # fmt: skip
        if latency_ms:
            command += ["--latency", str(latency_ms / 1000)]
        self.process = subprocess.Popen(command, cwd=ROOT)
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(self.process.pid, {SERVER_CPU})
        self._wait_until_ready()

    def _wait_until_ready(self, timeout: float = 15.0) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise SystemExit(f"the simulated gateway exited with status {self.process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise SystemExit(f"the simulated gateway accepted no connection within {timeout:g} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------- orchestration

#: Client processes that could not pin themselves (reported in the header).
UNPINNED: list[Job] = []


def run_job(job: Job) -> dict[str, Any]:
    """Run ``job`` in a fresh client process and return what it printed."""
    command = [sys.executable, str(Path(__file__).resolve()), "--client-job", json.dumps(asdict(job))]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"client process failed ({job}):\n{done.stderr[-3000:]}{done.stdout[-1000:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not data.pop("pinned"):
        UNPINNED.append(job)
        print(f"  (client not pinned: CPU {CLIENT_CPU} is not available)", flush=True)
    return data


def run_sample(job: Job) -> Sample:
    return Sample(**run_job(job))


def matrix_job(config: Config, client: str, port: int, repeat: int, recipients: int | None = None) -> Job:
    return Job(
        "matrix",
        port,
        client,
        config.gateway,
        config.concurrency,
        config.loop,
        config.spelling,
        config.texts,
        recipients or config.recipients,
        repeat,
    )


def calibrate(configs: list[Config], ports: dict[int, int], seconds: float) -> list[Config]:
    """Recipients per round so that the raw aiohttp loop takes about ``seconds`` (personalised: as given)."""
    sizes: dict[tuple[str, int, int, str], int] = {}
    out = []
    for config in configs:
        if config.texts == "personal":
            out.append(config)
            continue
        key = (config.gateway, config.concurrency, config.latency_ms, config.loop)
        if key not in sizes:
            probe_size = max(20_000, config.concurrency * 400)
            probe = matrix_job(
                replace(config, spelling="e164"), "aiohttp", ports[config.latency_ms], 1, probe_size
            )
            sample = run_sample(probe)
            rate = sample.recipients / sample.seconds
            sizes[key] = int(min(max(rate * seconds, 20_000), 600_000) // 1000 * 1000)
            print(f"calibrated {config.label}: {rate:,.0f} recipients/s, {sizes[key]:,} a round", flush=True)
        out.append(replace(config, recipients=sizes[key]))
    return out


def run_matrix(configs: list[Config], ports: dict[int, int], rounds: int, repeat: int) -> list[Row]:
    rows = {(config, client): Row(config, client) for config in configs for client in config.clients}
    for number in range(1, rounds + 1):
        for config in configs:
            shift = number % len(config.clients)
            for client in config.clients[shift:] + config.clients[:shift]:
                sample = run_sample(matrix_job(config, client, ports[config.latency_ms], repeat))
                rows[config, client].samples.append(sample)
                print(
                    f"[{number}/{rounds}] {config.label:43s} {client:8s} "
                    f"{sample.cpu / sample.requests * 1e6:6.0f} µs CPU/request "
                    f"{sample.recipients / sample.seconds:11,.0f} recipients/s "
                    f"{sample.rss_peak_kb / 1024:6.1f} MB",
                    flush=True,
                )
    out = list(rows.values())
    add_ratios(out)
    return out


def run_scaling(sizes: Sequence[int], port: int, rounds: int) -> list[ScaleRow]:
    rows = [ScaleRow(size) for size in sizes]
    for number in range(1, rounds + 1):
        for row in rows:
            job = Job("scale", port, "stream", "iton", 64, "uvloop", recipients=row.size)
            sample = run_sample(job)
            row.samples.append(sample)
            print(
                f"[{number}/{rounds}] stream of {row.size:>10,} from a generator: "
                f"{sample.seconds:.1f} s, {sample.seconds / sample.recipients * 1e6:.2f} µs/recipient, "
                f"RSS {sample.rss_start_kb / 1024:.1f} -> {sample.rss_peak_kb / 1024:.1f} MB",
                flush=True,
            )
    return rows


def run_keys(sizes: Sequence[int]) -> list[KeysRow]:
    data = run_job(Job("keys", recipients=max(sizes)))
    rows = [KeysRow(int(size), data["bytes"][size], data["worst"][size]) for size in data["bytes"]]
    for row in rows:
        print(
            f"key store at {row.size:>10,}: {row.bytes_per_number:.1f} B a number "
            f"(at most {row.worst_bytes_per_number:.1f} on the way)",
            flush=True,
        )
    return rows


def run_normalisation(count: int, rounds: int) -> list[NormRow]:
    data = run_job(Job("normalise", recipients=count, rounds=rounds))
    rows = [NormRow(s, data[f"{s}_fast"], data[f"{s}_reference"]) for s in ("e164", "national")]
    for row in rows:
        print(f"normalise {row.spelling}: {row.fast_per_s:,.0f}/s, phonenumbers {row.reference_per_s:,.0f}/s")
    return rows


def run_all(args: argparse.Namespace, configs: list[Config]) -> Report:
    report = Report()
    latencies = sorted(
        {c.latency_ms for c in configs} | ({0} if args.scale and "stream" in args.rows else set())
    )
    gateways: list[Gateway] = []
    try:
        gateways.extend(Gateway(latency) for latency in latencies)  # each one kept as soon as it runs
        ports = {g.latency_ms: g.port for g in gateways}
        if args.calibrate:
            configs = list(dict.fromkeys(calibrate(configs, ports, args.round_seconds)))
        if configs:
            report.rows = run_matrix(configs, ports, args.rounds, args.repeat)
        if args.scale and "stream" in args.rows:
            report.scale = run_scaling(args.scale, ports[0], args.scale_rounds)
    finally:
        for gateway in gateways:
            gateway.stop()
    if "keys" in args.rows and args.scale:
        report.keys = run_keys(args.scale)
    if args.normalise_count:
        report.norm = run_normalisation(args.normalise_count, args.rounds)
    if "campaign" in args.rows:
        report.campaign_missing = store_missing()
        if report.campaign_missing is None:
            report.campaign = run_campaign_create(args.campaign_size)
            print(
                f"campaign create of {report.campaign.inputs:,}: {report.campaign.seconds:.1f} s, "
                f"peak RSS {report.campaign.rss_peak_kb / 1024:.0f} MB",
                flush=True,
            )
        else:
            print(f"campaign create: {report.campaign_missing}", flush=True)
    if "cluster" in args.rows:
        report.cluster_missing = cluster_missing()
        if report.cluster_missing is None:
            report.cluster = run_cluster(args.cluster_recipients, args.rounds)
        else:
            print(f"cluster: {report.cluster_missing}", flush=True)
    return report


def header_lines(args: argparse.Namespace, pinned: bool) -> list[str]:
    packages = ("sms_async", "aiohttp", "httpx", "httpcore", "uvloop", "anyio", "phonenumbers")
    versions = ", ".join(f"{name} {_version(name)}" for name in packages)
    command = " ".join(["python benchmarks/run.py", *(shlex.quote(a) for a in args.argv)])
    machine = f"{platform.machine()}, {platform.system()} {platform.release()}"
    pinning = f"gateway on CPU {SERVER_CPU}, every client process on CPU {CLIENT_CPU}"
    commit = _commit()
    code = f"commit {commit}"
    if commit != args.commit_start:
        code = f"commit {args.commit_start} at the start, {commit} at the end"
    repeat = f"each client process times {args.repeat} back-to-back runs, the fastest kept (raw httpx: 1)"
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; took {args.took:.0f} s",
        f"- Machine: `nproc` {os.cpu_count()}, {machine}; load average at the start {args.load_start}",
        f"- Python: {platform.python_implementation()} {platform.python_version()}; {versions}",
        f"- Code: {code}, plus whatever was uncommitted in the working tree at the time",
        f"- Pinning: {pinning}"
        + ("" if pinned and not UNPINNED else " (NOT applied everywhere: not allowed here)"),
        f"- Rounds: {args.rounds}, alternating, medians reported; {repeat}",
        f"- Reproduce: `{command}`",
    ]


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return done.stdout.strip()


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------- command line


def build_configs(args: argparse.Namespace) -> list[Config]:
    if not args.matrix:
        return []
    configs = [
        Config(gateway, concurrency, latency, loop, recipients=size)
        for size in args.recipients
        for latency in args.latency
        for loop in args.loops
        for concurrency in args.concurrency
        for gateway in args.gateways
    ]
    if args.national:
        configs += [
            Config(gateway, 64, 0, "uvloop", "national", size, REFERENCE_CLIENTS)
            for size in args.recipients
            for gateway in args.gateways
        ]
    if args.personal_count:
        configs += [
            Config(gateway, 64, 0, "uvloop", "e164", args.personal_count, REFERENCE_CLIENTS, "personal")
            for gateway in args.gateways
        ]
    return configs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument(
        "--quick", action="store_true", help="c=64, 0 ms, uvloop, 100k recipients a round (the default)"
    )
    preset.add_argument(
        "--full", action="store_true", help="every row and configuration, at 100k and 500k recipients a round"
    )
    add = parser.add_argument
    add(
        "--rows",
        nargs="+",
        choices=(*ROWS, "all"),
        help=f"what to measure (default {' '.join(QUICK_ROWS)}; --full: all). send: E.164 at 0 ms "
        "(throughput and CPU); latency: the same at 20 ms too; stream: peak RSS from a generator; keys: "
        "the key store's bytes a number; campaign: `campaign create` (PostgreSQL); cluster: one worker "
        "beside one `send` process (PostgreSQL, RabbitMQ)",
    )
    add("--gateways", nargs="+", choices=GATEWAYS, default=list(GATEWAYS))
    add("--concurrency", nargs="+", type=int, help="default 64 (--full: 16 64 256)")
    add("--latency", nargs="+", type=int, help="simulated gateway latency in ms (default 0; --full: 0 20)")
    add("--loops", nargs="+", choices=("uvloop", "asyncio"), help="default uvloop (--full: both)")
    add("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    add(
        "--recipients",
        nargs="+",
        type=int,
        help="recipients a round, each size its own configurations (default 100k; --full: 100k 500k)",
    )
    add("--calibrate", action="store_true", help="size rounds so that raw aiohttp takes --round-seconds")
    add("--repeat", type=int, default=3, help="timed runs in each client process; the fastest is kept")
    add("--round-seconds", type=float, default=0.7, help="--calibrate: size runs for the raw aiohttp loop")
    add("--no-matrix", dest="matrix", action="store_false", help="skip every client comparison")
    add("--no-national", dest="national", action="store_false", help="skip the national-spelling case")
    add(
        "--personal-count",
        type=int,
        default=PERSONAL_COUNT,
        help=f"recipients of the personalised case, a text each (default {PERSONAL_COUNT:,}; 0 skips)",
    )
    add("--scale", nargs="*", type=int, help="stream sizes (default 10k 100k 1M 10M; give none to skip)")
    add("--normalise-count", type=int, default=20_000, help="numbers a spelling (0 skips)")
    add("--campaign-size", type=int, default=CAMPAIGN_SIZE, help="lines `campaign create` loads (10M)")
    add("--cluster-recipients", type=int, default=CLUSTER_RECIPIENTS, help="recipients of the worker row")
    add("--output", type=Path, default=RESULTS / "latest.md")
    args = parser.parse_args(argv)
    args.argv = argv
    rows = set(args.rows or (ROWS if args.full else QUICK_ROWS))
    args.rows = set(ROWS) if "all" in rows else rows
    args.matrix = args.matrix and bool(args.rows & {"send", "national", "personal", "latency"})
    args.national = args.national and "national" in args.rows
    if "personal" not in args.rows:
        args.personal_count = 0
    if "normalise" not in args.rows:
        args.normalise_count = 0
    args.concurrency = args.concurrency or ([16, 64, 256] if args.full else [64])
    if args.latency is None:
        args.latency = [0, 20] if args.full or "latency" in args.rows else [0]
    if "send" not in args.rows:
        args.latency = [latency for latency in args.latency if latency] or (
            [20] if "latency" in args.rows else []
        )
    args.loops = args.loops or (["uvloop", "asyncio"] if args.full else ["uvloop"])
    args.recipients = args.recipients or ([100_000, 500_000] if args.full else [100_000])
    args.scale = list(SCALE_SIZES) if args.scale is None else args.scale
    args.scale_rounds = args.rounds if args.full else 1
    args.load_start = _load()
    args.commit_start = _commit()
    return args


def _stop_on_sigterm(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_all's finally: the gateways are stopped


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    started = time.perf_counter()
    # The orchestrator mostly waits; it shares CPU 0 with the gateway, which inherits the pinning.
    pinned = pin(SERVER_CPU)
    report = run_all(args, build_configs(args))
    args.took = time.perf_counter() - started
    text = render(header_lines(args, pinned), report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    write_json(args.output.with_suffix(".json"), report)
    if args.full and args.output == RESULTS / "latest.md":
        (RESULTS / "full.md").write_text(text)
    print()
    print(text)
    print(f"written to {args.output} (every sample in {args.output.with_suffix('.json').name})")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--client-job":
        print(json.dumps(client_main(Job(**json.loads(sys.argv[2])))), flush=True)
    else:
        main(sys.argv[1:])
