"""The rows that need the campaign store: ``campaign create`` of millions; a cluster worker beside ``send``.

Both treat the command line and the cluster as black boxes: ``campaign
create`` runs as ``python -m sms_async campaign create FILE`` in a process of
its own (wall time, and its peak RSS from ``wait4``), and the worker row
reuses ``benchmarks/bench_cluster.py``. Without PostgreSQL (or, for the
worker row, RabbitMQ and ``rabbitmqctl``) the row says what is missing
instead of a number.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio

ROOT = Path(__file__).resolve().parent.parent.parent
DATABASE_URL = os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BROKER = ("127.0.0.1", 5672)


@dataclass(frozen=True)
class CreateSample:
    """``campaign create`` of ``inputs`` lines: wall time, the process's peak RSS, and CPU.

    ``cpu_seconds`` is the client process's (user + system, from ``wait4``);
    ``server_cpu_seconds`` its PostgreSQL backend's, read from ``/proc`` while
    it runs (``None`` when the server is not on this machine).
    """

    inputs: int
    seconds: float
    rss_peak_kb: int
    cpu_seconds: float = 0.0
    server_cpu_seconds: float | None = None


def _reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=2):
        return True
    return False


def store_missing() -> str | None:
    """Why the store rows cannot run here, or ``None`` when PostgreSQL answers."""
    parts = urlsplit(DATABASE_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or 5432
    if not _reachable(host, port):
        return f"not measured: PostgreSQL is not reachable at {host}:{port} (SMS_ASYNC_TEST_DATABASE_URL)"
    try:
        import sms_async.cluster  # noqa: F401, PLC0415  (the cluster extra)
    except ImportError as error:
        return f"not measured: the cluster extra is not installed ({error})"
    return None


def cluster_missing() -> str | None:
    """Why the worker row cannot run here, or ``None``."""
    missing = store_missing()
    if missing is not None:
        return missing
    if not _reachable(*BROKER) or shutil.which("rabbitmqctl") is None:
        return "not measured: RabbitMQ on 127.0.0.1:5672 and rabbitmqctl are needed"
    return None


def write_inputs(path: Path, count: int) -> None:
    """``count`` lines as ``bench_cluster.py`` loads them: 1 % repeats of the line before, 1 % invalid."""
    with path.open("w") as file:
        step = 100_000
        for start in range(0, count, step):
            lines = []
            for n in range(start, min(start + step, count)):
                if n % 100 == 7:
                    lines.append("not a number\n")
                elif n % 100 == 13:
                    lines.append(f"+9197{(n - 1) % 10**8:08d}\n")
                else:
                    lines.append(f"+9197{n % 10**8:08d}\n")
            file.write("".join(lines))


def campaign_create(count: int, tmp: Path) -> CreateSample:
    """Run ``sms-async campaign create`` on ``count`` lines in a schema of its own, then drop the schema."""
    from sms_async.cluster import CampaignStore  # noqa: PLC0415

    if count > 10**8:
        raise SystemExit("campaign create: at most 100,000,000 distinct inputs are generated")
    path = tmp / f"create-{count}.txt"
    write_inputs(path, count)
    schema = f"sms_bench_{uuid.uuid4().hex[:8]}"
    env = {
        **os.environ,
        "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
        "SMS_ASYNC_DATABASE_SCHEMA": schema,
        "HOME": str(tmp),
    }
    command = [sys.executable, "-m", "sms_async", "campaign", "create", str(path)]
    command += ["--text", "Hello", "--sender-id", "ITONAB", "--queue", "bench-load", "--json"]
    try:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        status, usage, server_cpu = _wait_watching_backends(process.pid, schema)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        _, error = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"campaign create failed: {error.decode(errors='replace')[-2000:]}")
    finally:
        path.unlink(missing_ok=True)

        async def drop() -> None:
            async with CampaignStore(DATABASE_URL, schema=schema) as store:
                await store.drop()

        anyio.run(drop)
    return CreateSample(count, seconds, usage.ru_maxrss, usage.ru_utime + usage.ru_stime, server_cpu)


def _backend_cpu(pid: int) -> float | None:
    """A local process's CPU seconds (user + system) from ``/proc``, or ``None``."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_watching_backends(pid: int, schema: str) -> tuple[int, Any, float | None]:
    """Wait for ``pid``; its wait status, rusage, and the CPU of the backends that ran its statements.

    The backends are found in ``pg_stat_activity`` by their statements, which
    name the run's schema, and read from ``/proc`` every 0.1 s until the
    client ends (so the last 0.1 s of a backend may be missed).
    """
    import psycopg  # noqa: PLC0415  (the cluster extra)

    local = urlsplit(DATABASE_URL).hostname in {None, "", "127.0.0.1", "localhost"} and Path("/proc").is_dir()
    seen: dict[int, float] = {}
    with psycopg.connect(DATABASE_URL, autocommit=True) as monitor:
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                break
            if local:
                found = monitor.execute(
                    "SELECT pid FROM pg_stat_activity WHERE query LIKE %s AND pid <> pg_backend_pid()",
                    (f"%{schema}%",),
                ).fetchall()
                for (backend,) in found:
                    seen.setdefault(backend, 0.0)
                for backend in seen:
                    cpu = _backend_cpu(backend)
                    if cpu is not None:
                        seen[backend] = cpu
            time.sleep(0.1)
    return status, usage, sum(seen.values()) if local and seen else None


def run_campaign_create(count: int) -> CreateSample:
    with tempfile.TemporaryDirectory(prefix="sms-bench-create-") as tmp:
        return campaign_create(count, Path(tmp))


def run_cluster(recipients: int, rounds: int) -> dict[str, Any]:
    """One cluster worker against one ``BulkSender.send`` process at 20 ms, and the store's cost a batch."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import bench_cluster  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="sms-bench-cluster-") as tmp:
        services = bench_cluster.Services(Path(tmp))
        try:
            found = bench_cluster.throughput(
                services, recipients, rounds, kinds=("BulkSender.send", "cluster, 1 worker")
            )
            store = anyio.run(bench_cluster.store_cost, services)
        finally:
            services.close()
    return {"throughput": found, "store": store, "recipients": recipients, "rounds": rounds}
