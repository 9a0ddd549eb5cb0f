"""Campaigns on real worker processes: RabbitMQ, PostgreSQL and the simulated gateway, all on loopback.

Workers are ``sms-async worker`` processes; campaigns are created, started,
followed, exported and cancelled with the ``sms-async campaign`` commands.
The simulator counts what the gateway really received.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cluster_support import (
    Cluster,
    Simulator,
    Worker,
    numbers,
    query,
    rabbitmqctl,
    require_postgres,
    require_rabbitmq,
    wait_for,
    write_numbers,
)

pytest.importorskip("celery")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ACCOUNTS = ("acct:pw-main-1", "acctb:pw-bee-2", "acctc:pw-sea-3")
# The rate is kept where requests leave the workers; the simulator counts them where they
# arrive, after the scheduling delays of a busy machine, which bunch a fraction of a second's
# sends together. Over a few seconds that jitter is small next to the rate, so the check holds
# the limit without failing on a loaded machine.
RATE_WINDOW = 3.0


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """The simulated gateway, in a process of its own, with 20 ms of latency on every request."""
    require_postgres()
    require_rabbitmq()
    started = Simulator(ACCOUNTS, latency=0.02)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def cluster(sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A schema and a RabbitMQ vhost for this module, dropped afterwards."""
    made = Cluster(tmp_path_factory.mktemp("cluster"))
    yield made
    made.close()


@pytest.fixture(scope="module")
def pool(cluster: Cluster, sim: Simulator) -> list[Worker]:
    """Three workers of account ``acct`` on the queue ``main``."""
    workers = [cluster.worker(sim, "main", "acct", "pw-main-1") for _ in range(3)]
    for worker in workers:
        worker.wait_ready()
    return workers


@pytest.fixture
def fresh(sim: Simulator) -> Simulator:
    """The simulator with its counters at zero."""
    from sms_async.testing import SimulatorClient  # noqa: PLC0415

    with SimulatorClient(sim.origin) as client:
        client.reset()
    return sim


@pytest.fixture
def keeping() -> Iterator[Simulator]:
    """A simulator of the test's own that keeps every message, to say which text each number got."""
    started = Simulator(ACCOUNTS[:1], latency=0.02, store_messages=True)
    yield started
    started.stop()


@contextlib.contextmanager
def workers(
    cluster: Cluster, sim: Simulator, queue: str, account: str, count: int, **options: int
) -> Iterator[None]:
    """``count`` more workers on ``queue`` for the test, stopped after it."""
    username, password = account.split(":")
    started = [cluster.worker(sim, queue, username, password, **options) for _ in range(count)]
    for worker in started:
        worker.wait_ready()
    try:
        yield
    finally:
        for worker in started:
            worker.process.send_signal(signal.SIGTERM)
        for worker in started:
            worker.stop()


def on_wire(e164: str) -> str:
    """How the simulated ITON gateway counts a number: digits, no plus sign."""
    return e164[1:]


def kill_between_claims(victim: Worker, cluster: Cluster, sim: Simulator) -> None:
    """SIGKILL ``victim`` at a moment when none of its claims is between its commit and its request's write.

    A claim is committed before its request is written (that is the
    guarantee); a kill in the millisecond between the two leaves a batch
    unknown that never reached the gateway: what unknown allows, but not what
    this test checks. So the worker is frozen (SIGSTOP), its requests on the
    wire are given time to arrive, and it is killed only if every batch it
    holds has reached the gateway; otherwise it is thawed and tried again.
    """
    owned = f"%:{victim.pid}:%"
    for _ in range(20):
        victim.process.send_signal(signal.SIGSTOP)
        time.sleep(0.15)  # the gateway's latency is 20 ms: whatever it wrote has arrived
        held = query(
            f'SELECT i.e164 FROM "{cluster.schema}".batches b JOIN "{cluster.schema}".inputs i '  # noqa: S608
            "ON i.campaign = b.campaign AND i.position = b.first_position "
            "WHERE b.state = 'sending' AND b.owner LIKE %s",
            owned,
        )
        received = sim.stats(numbers=True).numbers if held else {}
        if all(on_wire(e164) in received for (e164,) in held):
            victim.kill()
            return
        victim.process.send_signal(signal.SIGCONT)
        time.sleep(0.3)
    pytest.fail("the worker was caught between a claim and its request twenty times")


def test_a_worker_killed_mid_run_loses_nothing_and_sends_nothing_twice(cluster, pool, fresh, tmp_path):
    """A worker of three killed mid-run: the others finish, no number twice, every unknown one received."""
    rate = 5000
    path = write_numbers(tmp_path / "kill.txt", numbers(100_000, prefix="+9197"))
    campaign = cluster.create(path, "--rate", str(rate), "--queue", "main")
    cluster.cli("campaign", "start", str(campaign))
    wait_for(lambda: fresh.stats().accepted >= 30_000, 60, "a third of the campaign to be sent")
    busy = {row[0] for row in query(f'SELECT pid FROM "{cluster.schema}".runners')}  # noqa: S608
    victim = next((worker for worker in pool if worker.pid in busy), pool[0])
    kill_between_claims(victim, cluster, fresh)
    code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "120")
    pool[pool.index(victim)] = replacement = cluster.worker(fresh, "main", "acct", "pw-main-1")
    assert status["state"] == "done", status
    stats = fresh.stats(numbers=True)
    assert not stats.duplicates
    rows = cluster.export(campaign)
    assert [row["row"] for row in rows] == list(range(1, 100_001))
    unknown = [row for row in rows if row["outcome"] == "unknown"]
    accepted = [row for row in rows if row["outcome"] == "accepted"]
    assert len(accepted) + len(unknown) == 100_000
    assert all(on_wire(row["e164"]) in stats.numbers for row in unknown)
    assert {on_wire(row["e164"]) for row in accepted} <= stats.numbers.keys()
    assert stats.max_in_window(RATE_WINDOW, account="acct") <= 1.1 * rate * RATE_WINDOW
    assert code == (0 if not unknown else 1)
    replacement.wait_ready()


def test_lost_database_and_broker_connections_lose_and_double_nothing(cluster, pool, fresh, tmp_path):
    """Every worker's PostgreSQL connection terminated, then every broker connection closed: all sent once."""
    path = write_numbers(tmp_path / "cut.txt", numbers(40_000, prefix="+9196"))
    campaign = cluster.create(path, "--rate", "4000", "--queue", "main", "--shard-size", "50")
    cluster.cli("campaign", "start", str(campaign))
    wait_for(lambda: fresh.stats().accepted >= 8_000, 60, "a fifth of the campaign to be sent")
    terminated = query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
        f"sms-async-worker {cluster.schema}",
    )
    assert terminated
    wait_for(lambda: fresh.stats().accepted >= 20_000, 60, "half of the campaign to be sent")
    rabbitmqctl("close_all_connections", "--vhost", cluster.vhost, "--limit", "100", "closed by a test")
    code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "120")
    assert (code, status["state"]) == (0, "done"), status
    assert status["outcomes"]["accepted"] == 40_000
    stats = fresh.stats()
    assert not stats.duplicates
    assert stats.accepted == 40_000
    assert len(cluster.export(campaign)) == 40_000


def test_two_accounts_side_by_side_each_within_its_own_rate(cluster, fresh, tmp_path):
    """Two campaigns of two accounts at once (each shard queued twice): each account stays within its rate."""
    first = cluster.create(
        write_numbers(tmp_path / "b.txt", numbers(15_000, prefix="+9195")),
        *("--rate", "4000", "--queue", "qb", "--shard-size", "30"),
    )
    second = cluster.create(
        write_numbers(tmp_path / "c.txt", numbers(15_000, prefix="+9194")),
        *("--rate", "2500", "--queue", "qc", "--shard-size", "30"),
    )
    with workers(cluster, fresh, "qb", ACCOUNTS[1], 2), workers(cluster, fresh, "qc", ACCOUNTS[2], 1):
        # Both started at once, so that one's start does not wait on the other's
        # interpreter: a slow machine could otherwise finish `first` before `second` began.
        with ThreadPoolExecutor(2) as starting:
            starts = [starting.submit(cluster.cli, "campaign", "start", str(c)) for c in (first, second)]
        for start in starts:
            start.result()
        cluster.cli("campaign", "start", str(first))  # the second start of `first` queues its shards again
        for campaign in (first, second):
            code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "120")
            assert (code, status["state"]) == (0, "done"), status
    stats = fresh.stats()
    assert not stats.duplicates
    assert stats.accepted_by_account == {"acctb": 15_000, "acctc": 15_000}
    assert stats.max_in_window(RATE_WINDOW, account="acctb") <= 1.1 * 4000 * RATE_WINDOW
    assert stats.max_in_window(RATE_WINDOW, account="acctc") <= 1.1 * 2500 * RATE_WINDOW
    # Side by side: the slower campaign was sending while the faster one was.
    b_times = [at for at, _ in stats.accepted_series["acctb"]]
    c_times = [at for at, _ in stats.accepted_series["acctc"]]
    assert c_times[0] < b_times[-1]


def test_credentials_refused_mid_campaign_abort_it_across_workers(cluster, tmp_path):
    """The gateway refuses the account's sends (a password revoked after the workers started): the campaign
    aborts, both workers stop after their requests; all unsent.
    """  # noqa: D205
    revoked = Simulator(["acct:revoked-password-9"], faults=["auth_failure:1:ops=iton.sendSMS"])
    try:
        path = write_numbers(tmp_path / "bad.txt", numbers(20_000, prefix="+9193"))
        campaign = cluster.create(path, "--queue", "qbad", "--shard-size", "20")
        with workers(cluster, revoked, "qbad", "acct:revoked-password-9", 2, concurrency=4):
            cluster.cli("campaign", "start", str(campaign))
            code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "120")
        stats = revoked.stats()
    finally:
        revoked.stop()
    assert code == 3
    assert status["state"] == "aborted"
    assert "AuthenticationError" in status["stop_reason"]
    assert "revoked-password-9" not in status["stop_reason"]
    assert status["outcomes"]["unsent"] == 20_000
    assert stats.accepted == 0
    assert stats.requests.get("iton.sendSMS", 0) <= 2 * 4 + 2
    rows = cluster.export(campaign)
    assert {row["outcome"] for row in rows} == {"unsent"}
    assert "revoked-password-9" not in Path(cluster.tmp / f"export-{campaign}.jsonl").read_text()


@pytest.mark.parametrize(
    ("credentials", "words"),
    [
        ({"SMS_ASYNC_USERNAME": "acct", "SMS_ASYNC_PASSWORD": "wrong-password-9"}, "refuses this worker's"),
        ({}, "has no usable iton account"),
    ],
)
def test_a_worker_without_a_usable_account_refuses_to_start(cluster, sim, credentials, words):
    """A wrong or missing password: the worker says so and exits 3 before taking any shard."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    env = {k: v for k, v in cluster.env.items() if k not in {"SMS_ASYNC_USERNAME", "SMS_ASYNC_PASSWORD"}}
    env.update({"SMS_ASYNC_BASE_URL": sim.iton_url, "HOME": str(cluster.tmp), **credentials})
    env.pop("SMS_ASYNC_CONFIG", None)
    done = subprocess.run(
        [sys.executable, "-m", "sms_async", "worker", "-Q", "nobody"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert words in done.stderr
    assert "the worker does not start" in done.stderr
    assert "wrong-password-9" not in done.stderr + done.stdout
    assert " ready." not in done.stderr + done.stdout


def test_cancel_stops_a_running_campaign(cluster, pool, fresh, tmp_path):
    """Cancelling mid-run: what was sent stays accepted, the rest is unsent and it cannot be started again."""
    path = write_numbers(tmp_path / "cancel.txt", numbers(20_000, prefix="+9192"))
    campaign = cluster.create(path, "--rate", "2000", "--queue", "main", "--shard-size", "20")
    cluster.cli("campaign", "start", str(campaign))
    wait_for(lambda: fresh.stats().accepted >= 2_000, 60, "some of the campaign to be sent")
    cancelled = cluster.cli("campaign", "cancel", str(campaign))
    assert cancelled.returncode == 0, cancelled.stderr
    said = re.fullmatch(
        rf"campaign {campaign} cancelled: ([\d,]+) inputs unsent; [\d,]+ batches in flight will finish\n",
        cancelled.stdout,
    )
    assert said is not None, cancelled.stdout
    code, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "60")
    assert (code, status["state"], status["finished"]) == (1, "cancelled", True)
    outcomes = status["outcomes"]
    # What cancel said was unsent is what stays unsent: the batches in flight finished, none became unsent.
    assert outcomes["unsent"] == int(said.group(1).replace(",", ""))
    assert outcomes["unknown"] == 0
    assert outcomes["accepted"] + outcomes["unsent"] == 20_000
    assert 2_000 <= outcomes["accepted"] < 20_000
    stats = fresh.stats()
    assert stats.accepted == outcomes["accepted"]
    assert not stats.duplicates
    refused = cluster.cli("campaign", "start", str(campaign), check=False)
    assert refused.returncode == 2
    assert "cancelled" in refused.stderr


# A text per row makes one batch a recipient: 8,000 batches through the store, of which the
# killed worker holds some at its death (a fifth is sent before the kill).
PEOPLE = 8_000


def test_a_personalised_campaign_on_two_workers_one_killed_exports_what_send_writes(
    cluster, keeping, tmp_path
):
    """The same CSV (a text per row, a DLT parameter, kept columns) sent by `send` and by two workers, one
    SIGKILLed: no number twice, each number got its own text with the parameter, and the rows are send's
    rows apart from message ids and the killed worker's unknown ones.
    """  # noqa: D205
    import csv  # noqa: PLC0415
    import io  # noqa: PLC0415

    from sms_async.testing import SimulatedGateway  # noqa: PLC0415

    people = numbers(PEOPLE, prefix="+9195")
    source = tmp_path / "people.csv"
    source.write_text(
        "phone,name,plan\n"
        + "".join(f"{n},Name {i},plan-{i % 5}\n" for i, n in enumerate(people))
        + "not a number,Nobody,none\n"
    )
    options = ["--text", "Hi {name}, your {plan} is ready", "-s", "ITONAB", "--param", "templateid=1107-5"]
    sent = tmp_path / "send.csv"
    with SimulatedGateway() as gw:
        here = {"SMS_ASYNC_USERNAME": gw.username, "SMS_ASYNC_PASSWORD": gw.password}
        cluster.cli(
            "send", str(source), *options, "--keep-columns", "--ordered", "-o", str(sent),
            env={**here, "SMS_ASYNC_BASE_URL": gw.iton_url},
        )  # fmt: skip
        assert gw.stats.accepted == PEOPLE
    made = cluster.cli(
        "campaign", "create", str(source), *options, "--keep-columns", "--json", "--queue", "qk"
    )
    campaign = json.loads(made.stdout)["id"]
    with workers(cluster, keeping, "qk", "acct:pw-main-1", 2, concurrency=8):
        cluster.cli("campaign", "start", str(campaign))
        wait_for(lambda: keeping.stats().accepted >= PEOPLE // 5, 60, "a fifth of the campaign to be sent")
        busy = {
            row[0]
            for row in query(f'SELECT pid FROM "{cluster.schema}".runners WHERE campaign = %s', campaign)  # noqa: S608
        }
        victim = next(worker for worker in cluster.workers if worker.pid in busy)
        kill_between_claims(victim, cluster, keeping)
        _, status = cluster.status(campaign, "--wait", "--interval", "0.5", "--timeout", "120")
    assert status["state"] == "done", status
    stats = keeping.stats(numbers=True, texts=True)
    assert not stats.duplicates
    requests = stats.requests.get("iton.sendSMS", 0)
    assert stats.params["templateid=1107-5"] == requests
    # Every number reached the gateway once (the unknown ones too: checked below), with its own text.
    own = {on_wire(n): f"Hi Name {i}, your plan-{i % 5} is ready" for i, n in enumerate(people)}
    assert stats.texts.keys() == stats.numbers.keys() == own.keys()
    wrong = {n: got for n, got in stats.texts.items() if got != [(own[n], {"templateid": "1107-5"})]}
    assert not wrong, list(wrong.items())[:5]
    exported = tmp_path / "campaign.csv"
    cluster.cli("campaign", "export", str(campaign), "-o", str(exported), "--no-delivery")
    theirs = list(csv.reader(io.StringIO(sent.read_text())))
    ours = list(csv.reader(io.StringIO(exported.read_text())))
    assert ours[0] == theirs[0]
    assert len(ours) == len(theirs) == PEOPLE + 2
    unknown = 0
    for mine, reference in zip(ours[1:], theirs[1:], strict=True):
        if mine[3] == "unknown":
            unknown += 1
            assert on_wire(mine[2]) in stats.numbers  # the killed worker's request had arrived
            continue
        assert mine[:4] + mine[5:] == reference[:4] + reference[5:]
    assert unknown < PEOPLE
