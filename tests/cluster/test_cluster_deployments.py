"""Deployments other than the default: the store behind PgBouncer in transaction pooling, Redis as the broker.

Each runs a whole campaign on real worker processes and SIGKILLs one of them
midway: the campaign finishes, no number reaches the gateway twice, and a
number is ``unknown`` only if the gateway received it. PgBouncer is the one
``.ci/run`` starts (``SMS_ASYNC_TEST_PGBOUNCER_URL``); without it those tests
are skipped, saying so.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import (
    Cluster,
    Simulator,
    _unavailable,
    numbers,
    query,
    require_postgres,
    require_rabbitmq,
    wait_for,
    write_numbers,
)
from test_cluster_workers import kill_between_claims, on_wire

pytest.importorskip("celery")
pytest.importorskip("psycopg")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

logger = logging.getLogger("tests.deployments")

PGBOUNCER_URL = os.environ.get("SMS_ASYNC_TEST_PGBOUNCER_URL", "")
REDIS_URL = os.environ.get("SMS_ASYNC_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
ACCOUNT = ("acct", "pw-main-1")


def require_pgbouncer() -> str:
    """The PgBouncer URL, or skip (fail in CI) saying how to get one."""
    if not PGBOUNCER_URL:
        _unavailable(
            "no PgBouncer: set SMS_ASYNC_TEST_PGBOUNCER_URL to one in transaction pooling "
            "in front of the test database (.ci/run starts one)"
        )
    import psycopg  # noqa: PLC0415

    try:
        with psycopg.connect(PGBOUNCER_URL, connect_timeout=3, prepare_threshold=None) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        _unavailable(f"PgBouncer is not reachable at {PGBOUNCER_URL}: {str(error).strip()[:200]}")
    return PGBOUNCER_URL


def require_redis() -> None:
    """Skip (fail in CI) unless Redis accepts connections."""
    host, _, port = REDIS_URL.removeprefix("redis://").split("/")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        _unavailable(f"Redis is not reachable at {host}:{port}: {error}")


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The simulated gateway, in a process of its own, with 20 ms of latency on every request."""
    require_postgres()
    require_rabbitmq()
    started = Simulator([":".join(ACCOUNT)], latency=0.02)
    yield started
    started.stop()


def drill(cluster: Cluster, sim: Simulator, tmp_path: Path, count: int) -> float:
    """Run a campaign on two workers, SIGKILL one midway; check the outcome; the seconds from kill to done."""
    queue = f"q{uuid.uuid4().hex[:8]}"
    workers = [cluster.worker(sim, queue, *ACCOUNT) for _ in range(2)]
    for worker in workers:
        worker.wait_ready()
    path = write_numbers(tmp_path / "drill.txt", numbers(count, prefix="+9195"))
    campaign = cluster.create(path, "--rate", "2000", "--queue", queue, "--shard-size", "20")
    cluster.cli("campaign", "start", str(campaign))
    wait_for(lambda: sim.stats().accepted >= count // 3, 60, "a third of the campaign to be sent")
    busy = {row[0] for row in query(f'SELECT pid FROM "{cluster.schema}".runners')}  # noqa: S608
    victim = next((worker for worker in workers if worker.pid in busy), workers[0])
    kill_between_claims(victim, cluster, sim)
    killed = time.monotonic()
    code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "200")
    took = time.monotonic() - killed
    assert status["state"] == "done", status
    stats = sim.stats(numbers=True)
    assert not stats.duplicates
    rows = cluster.export(campaign)
    assert len(rows) == count
    unknown = [row for row in rows if row["outcome"] == "unknown"]
    accepted = [row for row in rows if row["outcome"] == "accepted"]
    assert len(accepted) + len(unknown) == count
    assert all(on_wire(row["e164"]) in stats.numbers for row in unknown)
    assert code == (0 if not unknown else 1)
    log = "".join(worker.log.read_text(errors="replace") for worker in workers)
    assert "prepared statement" not in log
    assert "internal error" not in log
    return took


@pytest.fixture
def fresh(sim: Simulator) -> Simulator:
    """The simulator with its counters at zero."""
    from sms_async.testing import SimulatorClient  # noqa: PLC0415

    with SimulatorClient(sim.origin) as client:
        client.reset()
    return sim


def test_a_campaign_through_pgbouncer_in_transaction_pooling_survives_a_killed_worker(fresh, tmp_path):
    """All behind PgBouncer (transaction pooling): done, nothing twice, no false unknown."""
    url = require_pgbouncer()
    cluster = Cluster(tmp_path, SMS_ASYNC_DATABASE_URL=url)
    try:
        took = drill(cluster, fresh, tmp_path, 12_000)
    finally:
        cluster.close()
    logger.info("PgBouncer: the campaign was done %.1f s after the kill", took)


def test_a_campaign_on_the_redis_broker_survives_a_killed_worker(fresh, tmp_path):
    """Redis as the broker: a killed worker's shard comes back (visibility timeout); the campaign finishes."""
    require_redis()
    # The visibility timeout is the shard's seconds + 15 (redis_transport_options): shards of 2 s bring
    # the killed worker's shard back within about 20 s of its delivery, rather than 30 s with 10 s shards.
    cluster = Cluster(tmp_path, SMS_ASYNC_BROKER_URL=REDIS_URL, SMS_ASYNC_SHARD_SECONDS="2")
    try:
        took = drill(cluster, fresh, tmp_path, 12_000)
    finally:
        cluster.close()
    logger.info("Redis: the campaign was done %.1f s after the kill", took)
