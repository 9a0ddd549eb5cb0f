"""Delivery polling on real worker processes: one polling chain per campaign, and a worker killed mid-poll.

Workers are ``sms-async worker`` processes on RabbitMQ and PostgreSQL;
campaigns are created, started, followed and exported with the ``sms-async
campaign`` commands. The simulated gateway runs in this process on a test
clock, and the workers (and the commands) read the same time from the file
that ``SMS_ASYNC_TEST_CLOCK`` names: the test moves both, so the hours of a
campaign's polling pass in seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cluster_support import (
    Cluster,
    Worker,
    numbers,
    query,
    rabbitmqctl,
    require_postgres,
    require_rabbitmq,
    wait_for,
    write_numbers,
)

from sms_async.testing import DeliveryPlan, DeliveryRule, Fault, RequestLog, SimulatedGateway, TestClock

pytest.importorskip("celery")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HOUR = 3600.0
START = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
#: Recipients of the drill (a multiple of 20: exactly 80% delivered at once, 15% after an
#: hour, 5% never). The suite runs 10,000; SMS_ASYNC_DRILL_SIZE=50000 runs the full drill.
DRILL_SIZE = int(os.environ.get("SMS_ASYNC_DRILL_SIZE", "10000"))


class SharedClock:
    """The gateway's test clock, and the file the workers and commands read the same time from."""

    def __init__(self, path: Path, start: datetime) -> None:
        self.path = path
        self.gateway = TestClock(start)
        self._write()

    def now(self) -> datetime:
        """The time on both."""
        return self.gateway.now()

    def advance_to(self, when: datetime) -> None:
        """Move both on to ``when``."""
        self.gateway.advance_to(when)
        self._write()

    def advance(self, seconds: float) -> None:
        """Move both on by ``seconds``."""
        self.advance_to(self.now() + timedelta(seconds=seconds))

    def _write(self) -> None:
        # Replaced at once: a reader never sees half a time.
        fresh = self.path.with_suffix(".new")
        fresh.write_text(self.gateway.now().isoformat(), encoding="utf-8")
        fresh.replace(self.path)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    """A schema and a RabbitMQ vhost for this module (dropped afterwards), the workers on a test clock."""
    require_postgres()
    require_rabbitmq()
    tmp = tmp_path_factory.mktemp("delivery")
    made = Cluster(tmp, SMS_ASYNC_TEST_CLOCK=str(tmp / "clock"))
    yield made
    made.close()


@pytest.fixture
def clock(cluster: Cluster) -> SharedClock:
    return SharedClock(Path(cluster.env["SMS_ASYNC_TEST_CLOCK"]), START)


def table(cluster: Cluster, name: str) -> str:
    return f'"{cluster.schema}".{name}'


def pending_numbers(cluster: Cluster, campaign: int) -> int:
    rows = query(
        f"SELECT count(*) FROM {table(cluster, 'results')} WHERE campaign = %s AND delivery = 'pending'",  # noqa: S608
        campaign,
    )
    return int(rows[0][0])


def chain(cluster: Cluster, campaign: int) -> int | None:
    rows = query(f"SELECT generation FROM {table(cluster, 'poll_chains')} WHERE campaign = %s", campaign)  # noqa: S608
    return int(rows[0][0]) if rows else None


def queued(cluster: Cluster, queue: str) -> int:
    """Messages in ``queue``, ready or held by a worker."""
    done = subprocess.run(  # noqa: S603 - fixed arguments of the test itself
        ["rabbitmqctl", "list_queues", "-p", cluster.vhost, "--no-table-headers", "-q", "name", "messages"],  # noqa: S607
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for line in done.stdout.splitlines():
        name, _, count = line.partition("\t")
        if name.strip() == queue:
            return int(count)
    return 0


def start_worker(cluster: Cluster, gw: SimulatedGateway, queue: str) -> Worker:
    started = cluster.worker(gw, queue, gw.username, gw.password)  # type: ignore[arg-type]
    started.wait_ready()
    return started


def test_repeated_starts_keep_one_polling_chain_and_a_start_brings_a_lost_one_back(cluster, clock):
    """Two starts make two chains, of which the older ends unpolled; the polling ends once all is final.
    A campaign whose chain was lost (its worker stopped, the queue purged) gets one back from a start
    that has nothing left to send, and that start says so; a start with nothing pending queues nothing.
    """  # noqa: D205
    plan = DeliveryPlan([DeliveryRule("delivered")])
    queue = "qchain"
    with SimulatedGateway(clock=clock.gateway, delivery=plan) as gw:
        first = cluster.create(write_numbers(cluster.tmp / "chain.txt", numbers(2_000)), "--queue", queue)
        assert "shards queued" in cluster.cli("campaign", "start", str(first)).stdout
        again = cluster.cli("campaign", "start", str(first)).stdout
        assert "is running: its unfinished shards are queued again" in again
        assert chain(cluster, first) == 2
        worker = start_worker(cluster, gw, queue)
        code, status = cluster.status(first, "--wait", "--interval", "0.2", "--timeout", "60")
        assert (code, status["state"]) == (0, "done"), status
        assert status["delivery"]["pending"] == 2_000
        # The clock stands still: nothing is due, the chain waits. Thirty seconds on, every id is.
        clock.advance(30)
        wait_for(lambda: pending_numbers(cluster, first) == 0, 60, "the numbers to be polled")
        wait_for(lambda: "polling ends" in worker.log.read_text(), 30, "the polling chain to end")
        wait_for(lambda: queued(cluster, queue) == 0, 30, "the queue to empty")
        log = worker.log.read_text()
        assert f"campaign {first} reports: this polling chain (generation 1) was replaced" in log
        polled = re.findall(rf"campaign {first} reports \(chain (\d+)\): (\d+) ids polled", log)
        assert polled == [("2", "20")]  # one chain polled: once, every id (100 numbers an id)
        assert log.count(f"campaign {first} reports: no number is pending") == 1

        # A chain lost: its worker stops (its message goes back to the queue) and the queue is purged.
        second = cluster.create(
            write_numbers(cluster.tmp / "lost.txt", numbers(1_000, 5_000)), "--queue", queue
        )
        cluster.cli("campaign", "start", str(second))
        code, status = cluster.status(second, "--wait", "--interval", "0.2", "--timeout", "60")
        assert (code, status["state"], status["delivery"]["pending"]) == (0, "done", 1_000), status
        worker.stop()
        rabbitmqctl("purge_queue", "-p", cluster.vhost, queue)
        assert queued(cluster, queue) == 0
        restarted = cluster.cli("campaign", "start", str(second)).stdout
        said = "nothing left to send (done); delivery polling queued for 1,000 pending numbers"
        assert f"campaign {second}: {said}" in restarted
        assert chain(cluster, second) == 2
        worker = start_worker(cluster, gw, queue)
        clock.advance(30)
        wait_for(lambda: pending_numbers(cluster, second) == 0, 60, "the numbers to be polled")
        wait_for(lambda: queued(cluster, queue) == 0, 30, "the queue to empty")
        # Nothing pending, nothing to send: a start queues nothing.
        idle = cluster.cli("campaign", "start", str(second)).stdout
        assert f"campaign {second}: nothing left to send (done)\n" in idle
        assert chain(cluster, second) == 2
        assert queued(cluster, queue) == 0
        worker.stop()
        assert gw.stats.accepted == 3_000
        assert not gw.stats.duplicate_numbers()


def drill_plan(recipients: list[str]) -> DeliveryPlan:
    """Exactly 80% delivered at once, 15% an hour after acceptance, 5% never (by position, 16:3:1 in 20)."""
    fates = [DeliveryRule("delivered")] * 16 + [DeliveryRule("delivered", after=HOUR)] * 3
    fates.append(DeliveryRule("never"))
    return DeliveryPlan(
        [DeliveryRule("failed")],  # no number falls to it: every one has an override
        overrides={number: fates[i % 20] for i, number in enumerate(recipients)},
    )


@pytest.mark.timeout(300)
def test_a_worker_killed_mid_poll_loses_nothing_and_its_ids_are_polled_after_its_lease(cluster, clock):
    """DRILL_SIZE numbers on two workers; the one polling is SIGKILLed after it leased the ids and before
    it recorded them. After the simulated 72 hours: status and export show exactly 80% delivered at once,
    15% delivered late and 5% expired; no number was sent twice; the killed worker's ids were polled
    again, by the other, once its lease had run out, and not before.
    """  # noqa: D205
    assert DRILL_SIZE % 20 == 0
    recipients = numbers(DRILL_SIZE, prefix="+9191")
    log = RequestLog()
    queue = "qdrill"
    deliveries, results = table(cluster, "deliveries"), table(cluster, "results")
    began = time.monotonic()
    with SimulatedGateway(clock=clock.gateway, delivery=drill_plan(recipients), request_log=log) as gw:
        campaign = cluster.create(write_numbers(cluster.tmp / "drill.txt", recipients), "--queue", queue)
        pool = [start_worker(cluster, gw, queue) for _ in range(2)]
        cluster.cli("campaign", "start", str(campaign))
        code, status = cluster.status(campaign, "--wait", "--interval", "0.2", "--timeout", "120")
        assert (code, status["state"], status["outcomes"]["accepted"]) == (0, "done", DRILL_SIZE), status
        assert status["delivery"]["pending"] == DRILL_SIZE
        sent = time.monotonic()

        # The first poll falls due; each status request takes 2 s, and the poller is killed in it.
        gw.set_faults([Fault("latency", rate=1.0, operations=["iton.message_status"], seconds=2.0)])
        clock.advance(30)
        owner_sql = f"SELECT DISTINCT lease_owner FROM {deliveries} WHERE lease_owner IS NOT NULL"  # noqa: S608
        wait_for(lambda: log.entries("iton.message_status") and query(owner_sql), 60, "a poll round")
        ((owner,),) = query(owner_sql)
        victim = next(worker for worker in pool if f":{worker.pid}:" in owner)
        victim.kill()
        gw.set_faults([])
        held = query(
            f"SELECT message_id, lease_until, polls FROM {deliveries} WHERE lease_owner = %s",  # noqa: S608
            owner,
        )
        assert held  # leased and never recorded: the killed round's ids
        assert {polls for _, _, polls in held} == {0}
        lease_end = max(until for _, until, _ in held)
        held_ids = [message_id for message_id, _, _ in held]
        killed_at = clock.now()

        # Time moves to each next poll once nothing due is left unpolled, as a day of polling would.
        polled_early = f"SELECT count(*) FROM {deliveries} WHERE message_id = ANY(%s) AND polls > 0"  # noqa: S608
        steps = 0
        while True:
            assert time.monotonic() - sent < 400, "polling did not finish"
            (row,) = query(
                f"SELECT count(*) FILTER (WHERE next_poll_at IS NOT NULL), "  # noqa: S608
                "count(*) FILTER (WHERE lease_owner IS NOT NULL AND lease_owner <> %s AND lease_until > %s), "
                "count(*) FILTER (WHERE next_poll_at <= %s AND (lease_until IS NULL OR lease_until <= %s)), "
                "min(greatest(next_poll_at, lease_until)) "
                f"FROM {deliveries} WHERE campaign = %s",
                owner,
                clock.now(),
                clock.now(),
                clock.now(),
                campaign,
            )
            waiting, polling, due, upcoming = row
            if clock.now() < lease_end:
                # The killed worker's ids wait for its lease, whoever polls meanwhile.
                assert query(polled_early, held_ids) == [(0,)]
            if not waiting:
                break
            if polling or due or upcoming is None or upcoming <= clock.now():
                time.sleep(0.05)  # a round is on its way
                continue
            clock.advance_to(upcoming)
            steps += 1
        polled_out = time.monotonic()
        survivor = next(worker for worker in pool if worker is not victim)
        wait_for(lambda: "polling ends" in survivor.log.read_text(), 30, "the polling chain to end")

        code, status = cluster.status(campaign)
        rows = cluster.export(campaign)
        stats = gw.stats
        at_lease_end = query(
            f"SELECT count(*), min(r.delivered_at) FROM {results} r WHERE r.campaign = %s "  # noqa: S608
            "AND r.message_id = ANY(%s) AND r.delivered_at < %s",
            campaign,
            held_ids,
            START + timedelta(hours=1),
        )
        survivor.stop()
    done = time.monotonic()
    at_once, late, never = DRILL_SIZE * 16 // 20, DRILL_SIZE * 3 // 20, DRILL_SIZE // 20
    assert status["delivery"] == {
        "accepted": DRILL_SIZE,
        "delivered": at_once + late,
        "undelivered": 0,
        "failed": 0,
        "expired": never,
        "pending": 0,
        "rate": (at_once + late) / DRILL_SIZE,
    }
    assert len(rows) == DRILL_SIZE
    ages = Counter(
        (row["delivery"], datetime.fromisoformat(row["delivered_at"]) - START >= timedelta(hours=1))
        for row in rows
    )
    assert ages == Counter(
        {("delivered", False): at_once, ("delivered", True): late, ("expired", True): never}
    )
    assert stats.accepted == DRILL_SIZE
    assert not stats.duplicate_numbers()
    # The killed worker's ids: polled first when its lease had run out (their numbers delivered
    # at once are dated then, a minute after the poll it died in), never before.
    (count, first) = at_lease_end[0]
    assert count > 0
    assert first == lease_end == killed_at + timedelta(seconds=60)
    print(  # noqa: T201 - the drill's numbers, with -s
        f"drill of {DRILL_SIZE:,}: sent in {sent - began:.1f} s, polled out in {polled_out - sent:.1f} s "
        f"({steps} steps of the clock, {len(log.entries('iton.message_status'))} status requests), "
        f"{done - began:.1f} s in all; delivery {status['delivery']}"
    )
