"""The ``campaign`` and ``worker`` commands and the shard task on a Celery app of one's own."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from cluster_support import (
    BROKER_HOST,
    BROKER_PORT,
    DATABASE_URL,
    drop_schema,
    new_schema,
    numbers,
    query,
    rabbitmqctl,
    require_postgres,
    require_rabbitmq,
)

from sms_async import Failure, Outcome
from sms_async.cli import cli
from sms_async.testing import SimulatedGateway

pytest.importorskip("celery")

from celery import Celery

from sms_async.cli._cluster import COLUMNS, encode_row
from sms_async.cluster.celery import TASK_NAME, configure, register, shutdown


@pytest.fixture
def env(tmp_path):
    """The store's variables, in a schema of their own (dropped afterwards), and no credentials."""
    require_postgres()
    schema = new_schema()
    values = {
        "SMS_ASYNC_DATABASE_URL": DATABASE_URL,
        "SMS_ASYNC_DATABASE_SCHEMA": schema,
        "SMS_ASYNC_BROKER_URL": "amqp://someone:broker-Secret-77@127.0.0.1:1//",
        "SMS_ASYNC_USERNAME": None,
        "SMS_ASYNC_PASSWORD": None,
        "SMS_ASYNC_GATEWAY": None,
        "SMS_ASYNC_CONFIG": None,
        "HOME": str(tmp_path),
    }
    yield values
    drop_schema(schema)


@pytest.fixture
def broker(env):
    """``env`` with a RabbitMQ vhost of its own as its broker (deleted afterwards); no worker listens."""
    require_rabbitmq()
    vhost = env["SMS_ASYNC_DATABASE_SCHEMA"]
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield {**env, "SMS_ASYNC_BROKER_URL": f"amqp://guest:guest@{BROKER_HOST}:{BROKER_PORT}/{vhost}"}
    rabbitmqctl("delete_vhost", vhost)


def run(args, env, stdin=None):
    return CliRunner().invoke(cli, args, env=env, input=stdin, catch_exceptions=False)


def created(env, tmp_path, lines, *options):
    path = tmp_path / "numbers.csv"
    path.write_text("phone,name\n" + "".join(f"{line},x\n" for line in lines))
    done = run(["campaign", "create", str(path), "-t", "Hello", "-s", "ITONAB", "--json", *options], env)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)["id"]


def test_create_prints_the_id_and_needs_no_credential(env, tmp_path):
    """``create`` prints the id alone (or {"id": ...}) and says on stderr what it loaded."""
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join([*numbers(150), "nonsense"]) + "\n")
    done = run(["campaign", "create", str(path), "--text", "Hello", "--sender-id", "ITONAB"], env)
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().isdigit()
    assert "151 inputs, 150 recipients, 2 batches" in done.stderr
    second = created(env, tmp_path, numbers(3), "--rate", "500", "--queue", "other")
    assert json.loads(run(["campaign", "status", str(second), "--json"], env).stdout)["queue"] == "other"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--text", "", "--sender-id", "ITONAB"], "empty"),
        (["--text", "Hello", "--sender-id", "THIS-IS-FAR-TOO-LONG"], "sender"),
        (["--text", "Hello", "--sender-id", "ITONAB", "--gateway", "nowhere"], "unknown gateway"),
        (["--text", "Hello", "--sender-id", "ITONAB", "--region", "XX"], "region"),
    ],
)
def test_create_refuses_bad_options_with_status_2(env, tmp_path, options, message):
    """A bad text, sender id, gateway or region: one line saying what is wrong, status 2, nothing stored."""
    path = tmp_path / "n.txt"
    path.write_text("+919800000001\n")
    done = run(["campaign", "create", str(path), *options], env)
    assert done.exit_code == 2
    assert message in done.stderr.lower()
    assert "Traceback" not in done.output


def test_commands_without_a_store_say_which_variable_to_set(env, tmp_path):
    """No SMS_ASYNC_DATABASE_URL: every command names it and exits 2."""
    env = {**env, "SMS_ASYNC_DATABASE_URL": None}
    for args in (["campaign", "status", "1"], ["worker"]):
        done = run(args, env)
        assert done.exit_code == 2
        assert "SMS_ASYNC_DATABASE_URL" in done.stderr


def test_status_export_and_cancel_of_a_campaign_never_started(env, tmp_path):
    """A ready campaign: status exits 1; export is refused until --partial; cancel makes everything unsent."""
    campaign = created(env, tmp_path, [*numbers(120), "bad", "+919800000000"])
    status = run(["campaign", "status", str(campaign), "--json"], env)
    assert status.exit_code == 1
    document = json.loads(status.stdout)
    assert document["state"] == "ready"
    assert document["outcomes"]["invalid"] == 1
    assert document["outcomes"]["duplicate"] == 1
    assert document["not_settled"] == 120
    output = tmp_path / "out.csv"
    refused = run(["campaign", "export", str(campaign), "--output", str(output)], env)
    assert refused.exit_code == 2
    assert "--partial" in refused.stderr
    assert run(["campaign", "export", str(campaign), "-o", str(output), "--partial"], env).exit_code == 0
    rows = list(csv.reader(io.StringIO(output.read_text())))
    assert rows[0] == [*COLUMNS, "delivery", "delivered_at"]
    assert len(rows) == 1 + 122
    # Each row names the input's line in the CSV, as send's results do (the header is line 1).
    assert [int(row[0]) for row in rows[1:]] == list(range(2, 124))
    assert rows[121] == ["122", "bad", "", "invalid", "", rows[121][5], "", ""]
    assert rows[122][:4] == ["123", "+919800000000", "+919800000000", "duplicate"]
    cancelled = run(["campaign", "cancel", str(campaign)], env)
    assert cancelled.exit_code == 0, cancelled.output
    assert (
        cancelled.stdout
        == f"campaign {campaign} cancelled: 120 inputs unsent; 0 batches in flight will finish\n"
    )
    after = run(["campaign", "status", str(campaign), "--json"], env)
    assert after.exit_code == 1  # finished, but not every input accepted
    status = json.loads(after.stdout)
    assert (status["state"], status["finished"], status["outcomes"]["unsent"]) == ("cancelled", True, 120)
    again = run(["campaign", "start", str(campaign)], env)
    assert again.exit_code == 2
    assert "cancelled" in again.stderr


def test_start_without_a_broker_says_so_without_its_password(env, tmp_path):
    """The broker cannot be reached: status 3, what to do, and never the broker's password."""
    campaign = created(env, tmp_path, numbers(10))
    done = run(["campaign", "start", str(campaign)], env)
    assert done.exit_code == 3
    assert f"campaign {campaign} was not started" in done.stderr
    assert "broker-Secret-77" not in done.output
    # Nothing was marked: the campaign does not look started to anyone.
    status = json.loads(run(["campaign", "status", str(campaign), "--json"], env).stdout)
    assert status["state"] == "ready"


def test_unknown_campaign_is_a_usage_error(env, tmp_path):
    """Asking after a campaign that does not exist: status 2 and its number."""
    created(env, tmp_path, numbers(1))
    done = run(["campaign", "status", "999999"], env)
    assert done.exit_code == 2
    assert "999999" in done.stderr


def test_rows_are_encoded_as_send_writes_them():
    """JSON Lines with null for empty fields, and CSV in the column order, from one function."""
    from sms_async._models import Entry  # noqa: PLC0415

    accepted = Entry(1, "098000 00001", "+919800000001", Outcome.ACCEPTED, "abc123", "")
    invalid = Entry(2, 'say "hi",\n', "", Outcome.INVALID, "", "not a number")
    assert json.loads(encode_row(accepted, "jsonl")) == {
        "row": 1,
        "input": "098000 00001",
        "e164": "+919800000001",
        "outcome": "accepted",
        "message_id": "abc123",
        "reason": None,
    }
    assert list(json.loads(encode_row(invalid, "jsonl"))) == list(COLUMNS)
    assert next(csv.reader(io.StringIO(encode_row(invalid, "csv")))) == [
        "2",
        'say "hi",\n',
        "",
        "invalid",
        "",
        "not a number",
    ]


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_exported_rows_are_byte_for_byte_those_of_send(kind):
    """For the same settled batch, encode_row writes exactly the bytes send's results writer writes."""
    from sms_async._batching import Batcher  # noqa: PLC0415
    from sms_async._message import Message  # noqa: PLC0415
    from sms_async._phone import PhoneNormaliser  # noqa: PLC0415
    from sms_async.campaign import ResultsEncoder  # noqa: PLC0415

    inputs = ["098000 00001", "+919800000002", 'say "hi",\u2028', "+919800000001", "x\ty", "+919800000003"]
    batcher = Batcher(PhoneNormaliser("IN"), 100, message=Message.create("Hello", "ITONAB"))
    (batch,) = batcher.feed(inputs) + batcher.finish()
    result = batch.to_result()
    result.message_ids = {"+919800000001": "id-1", "+919800000003": "id-3"}
    result.failed["+919800000002"] = Failure(Outcome.REJECTED, "blocked, with a comma")
    theirs, _ = ResultsEncoder(kind).encode(result)
    assert "".join(encode_row(entry, kind) for entry in result.entries()).encode() == theirs


def test_the_shard_task_runs_on_a_celery_app_of_ones_own(env, tmp_path, monkeypatch):
    """register() puts the task, with its options, on another app; run there, it sends the shard."""
    theirs = configure(Celery("theirs"), "memory://")
    task = register(theirs)
    assert task.name == TASK_NAME
    assert task.acks_late is True
    assert task.reject_on_worker_lost is True
    assert theirs.conf.worker_prefetch_multiplier == 1
    with SimulatedGateway() as gw:
        for name, value in env.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        monkeypatch.setenv("SMS_ASYNC_USERNAME", gw.username)
        monkeypatch.setenv("SMS_ASYNC_PASSWORD", gw.password)
        monkeypatch.setenv("SMS_ASYNC_BASE_URL", gw.iton_url)
        campaign = created(env, tmp_path, numbers(250))
        started = run(["campaign", "status", str(campaign), "--json"], env)
        assert json.loads(started.stdout)["state"] == "ready"
        schema = env["SMS_ASYNC_DATABASE_SCHEMA"]
        query(f"UPDATE \"{schema}\".campaigns SET state = 'running' WHERE id = %s", campaign)  # noqa: S608
        try:
            task.apply(args=(campaign, 0)).get()
        finally:
            shutdown()
        assert gw.stats.accepted == 250
    status = json.loads(run(["campaign", "status", str(campaign), "--json"], env).stdout)
    assert (status["state"], status["outcomes"]["accepted"]) == ("done", 250)


@pytest.mark.parametrize(("name", "content"), [("numbers.txt", "\n\n"), ("people.csv", "phone,name\n")])
def test_create_of_an_input_without_recipients_is_refused_as_send_refuses_it(env, tmp_path, name, content):
    """An empty input: exit 2 with the line send prints, and no campaign stored."""
    source = tmp_path / name
    source.write_text(content)
    done = run(["campaign", "create", str(source), "-t", "Hello", "-s", "ITONAB"], env)
    assert done.exit_code == 2, done.output
    assert f"{source} holds no input" in done.stderr
    schema = env["SMS_ASYNC_DATABASE_SCHEMA"]
    assert query(f'SELECT count(*) FROM "{schema}".campaigns')[0][0] == 0  # noqa: S608


def status_into_a_closed_pipe(env, campaign, *options):
    """``campaign status ID OPTIONS`` with its standard output read by nobody: its exit status and stderr."""
    import os  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    environment = {k: v for k, v in os.environ.items() if k not in env}
    environment.update({k: v for k, v in env.items() if v is not None})
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-m", "sms_async", "campaign", "status", str(campaign), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before the first line is written
    _, errors = process.communicate(timeout=60)
    return process.returncode, errors


def test_status_into_a_closed_pipe_ends_quietly(env, tmp_path):
    """``status | head -1``: a reader gone away is no internal error and no traceback."""
    campaign = created(env, tmp_path, numbers(5))
    code, errors = status_into_a_closed_pipe(env, campaign)
    assert code == 1
    assert b"internal error" not in errors
    assert b"Traceback" not in errors
    assert b"BrokenPipeError" not in errors


def test_status_wait_into_a_closed_pipe_ends_quietly(broker, tmp_path):
    """``status --wait | head -1`` on a running campaign: the reader goes away while it waits, and the
    status it prints once it stops waiting ends quietly, with the status of a campaign not finished.
    """  # noqa: D205
    campaign = created(broker, tmp_path, numbers(5))
    assert run(["campaign", "start", str(campaign)], broker).exit_code == 0  # no worker takes it
    code, errors = status_into_a_closed_pipe(
        broker, campaign, "--wait", "--interval", "0.1", "--timeout", "1"
    )
    assert code == 1
    assert b"internal error" not in errors
    assert b"Traceback" not in errors
    assert b"BrokenPipeError" not in errors
    assert b"Exception ignored" not in errors


def test_a_partial_export_labels_unsettled_rows_pending_and_status_says_so(env, tmp_path):
    """Unsettled rows are exported as pending, never unknown; status on the file advises a later export."""
    campaign = created(env, tmp_path, [*numbers(120), "bad"])
    output = tmp_path / "out.csv"
    assert run(["campaign", "export", str(campaign), "-o", str(output), "--partial"], env).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(output.read_text())))
    assert [row["outcome"] for row in rows] == ["pending"] * 120 + ["invalid"]
    status = run(["status", str(output)], env)
    assert status.exit_code == 1, status.output
    text = " ".join(status.stdout.split())
    assert "120 rows are pending" in text
    assert "sms-async campaign status ID --wait" in text
    assert "unknown" not in text
    assert "--resend-unknown" not in text


@pytest.mark.parametrize(
    ("path", "words"),
    [
        (
            "postgres@127.0.0.1:5432/sms_async_no_such_database",
            'database "sms_async_no_such_database" does not exist',
        ),
        (
            "sms_async_no_such_user:Pw-Secret-88@127.0.0.1:5432/test",
            'role "sms_async_no_such_user" does not exist',
        ),
    ],
)
def test_a_store_that_refuses_the_connection_is_one_line_at_once(env, path, words):
    """A missing database or user is permanent: one line saying so, status 3, no retries, no password."""
    env = {**env, "SMS_ASYNC_DATABASE_URL": f"postgresql://{path}", "SMS_ASYNC_PATIENCE": "3600"}
    done = run(["campaign", "status", "1"], env)
    assert done.exit_code == 3, done.output
    assert done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr
    assert "trying again cannot cure" in done.stderr
    assert "Pw-Secret-88" not in done.output


def test_a_store_on_a_dead_port_is_one_line_at_once(env):
    """Nothing listens on the port: one line naming host and port, status 3, no minute of retries."""
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **env,
        "SMS_ASYNC_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/test",
        "SMS_ASYNC_PATIENCE": "3600",
    }
    done = run(["campaign", "status", "1"], env)
    assert done.exit_code == 3, done.output
    assert done.stderr.count("\n") == 1, done.stderr
    assert f"port {port} failed: Connection refused" in done.stderr
    assert "check the host and port" in done.stderr


def _run_campaign_here(env, campaign, gw, monkeypatch):
    """Send every shard of ``campaign`` in this process, through the shard task on an app of its own."""
    theirs = configure(Celery("here"), "memory://")
    task = register(theirs)
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SMS_ASYNC_USERNAME", gw.username)
    monkeypatch.setenv("SMS_ASYNC_PASSWORD", gw.password)
    monkeypatch.setenv("SMS_ASYNC_BASE_URL", gw.iton_url)
    schema = env["SMS_ASYNC_DATABASE_SCHEMA"]
    query(f"UPDATE \"{schema}\".campaigns SET state = 'running' WHERE id = %s", campaign)  # noqa: S608
    try:
        task.apply(args=(campaign, 0)).get()
    finally:
        shutdown()


def test_create_personalises_texts_stores_parameters_and_keeps_columns(env, tmp_path, monkeypatch):
    """--text with {fields}, --param and --keep-columns: each row gets its own text and the parameter,
    and the export carries the kept columns, as send's results do.
    """  # noqa: D205
    path = tmp_path / "people.csv"
    people = numbers(30)
    path.write_text(
        "phone,name,city\n"
        + "".join(f"{n},Name{i},City{i % 3}\n" for i, n in enumerate(people))
        + "bad,X,Y\n"
    )
    done = run(
        [
            *("campaign", "create", str(path), "--text", "Hi {name} of {city}", "-s", "ITONAB"),
            *("--param", "templateid=1107-dlt", "--keep-columns", "--json"),
        ],
        env,
    )
    assert done.exit_code == 0, done.output
    campaign = json.loads(done.stdout)["id"]
    with SimulatedGateway() as gw:
        _run_campaign_here(env, campaign, gw, monkeypatch)
        texts = {number: message.text for message in gw.messages.values() for number in message.numbers}
        assert gw.stats.params["templateid=1107-dlt"] == len(gw.messages)
        assert gw.stats.duplicate_numbers() == {}
    assert texts == {n[1:]: f"Hi Name{i} of City{i % 3}" for i, n in enumerate(people)}
    status = json.loads(run(["campaign", "status", str(campaign), "--json"], env).stdout)
    assert status["state"] == "done"
    assert status["params"] == {"templateid": "1107-dlt"}
    assert (status["parts"], status["credits"]) == ({"fewest": 1, "most": 1}, 30)
    output = tmp_path / "out.jsonl"
    assert run(["campaign", "export", str(campaign), "-o", str(output)], env).exit_code == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["columns"] for row in rows] == [
        *({"name": f"Name{i}", "city": f"City{i % 3}"} for i in range(30)),
        {"name": "X", "city": "Y"},
    ]
    assert [row["outcome"] for row in rows] == ["accepted"] * 30 + ["invalid"]


def test_create_warns_of_a_long_text_and_status_shows_parts_and_credits(env, tmp_path):
    """A text of 14 parts is created with the warning send gives; status shows its parts per text."""
    campaign_text = "x" * 2000
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(numbers(3)) + "\n")
    done = run(["campaign", "create", str(path), "-t", campaign_text, "-s", "ITONAB"], env)
    assert done.exit_code == 0, done.output
    assert "warning: the text needs 14 SMS parts per recipient, and each part is charged" in done.stderr
    assert "--max-segments 14" in done.stderr
    campaign = done.stdout.strip()
    status = run(["campaign", "status", campaign], env)
    assert "parts       14 per text; credits spent: 0" in status.stdout
    quiet = run(
        ["campaign", "create", str(path), "-t", campaign_text, "-s", "ITONAB", "--max-segments", "14"], env
    )
    assert quiet.exit_code == 0
    assert "warning" not in quiet.stderr


def test_create_refuses_a_parameter_that_sounds_like_a_credential(env, tmp_path):
    """The store holds no credential: --param apikey=... is refused with where to put it instead."""
    path = tmp_path / "numbers.txt"
    path.write_text("\n".join(numbers(3)) + "\n")
    done = run(["campaign", "create", str(path), "-t", "Hi", "-s", "ITONAB", "--param", "apikey=Zz-99"], env)
    assert done.exit_code == 2
    assert "sounds like a credential" in done.stderr
    assert "Zz-99" not in done.output


def test_waiting_on_a_campaign_nobody_works_on_stops_with_the_reason(broker, tmp_path):
    """Waiting stops at once on a campaign never started, and once no worker has touched a started one."""
    env = broker
    campaign = created(env, tmp_path, numbers(10))
    never = run(["campaign", "status", str(campaign), "--wait", "--interval", "0.1"], env)
    assert never.exit_code == 1
    assert f"stopped waiting: campaign {campaign} has not been started" in never.stderr
    # Started, but no worker serves its queue.
    started = run(["campaign", "start", str(campaign)], env)
    assert started.exit_code == 0, started.output
    idle = run(["campaign", "status", str(campaign), "--wait", "--interval", "0.1", "--idle", "0.3"], env)
    assert idle.exit_code == 1
    assert f"no worker has worked on campaign {campaign} for" in idle.stderr
    assert f"sms-async campaign start {campaign}" in idle.stderr
    assert "running" in idle.stdout


def test_starting_twice_says_what_happened_the_first_time(broker, tmp_path):
    """A second start names the first one and that the campaign is running; nothing is sent twice."""
    env = broker
    campaign = created(env, tmp_path, numbers(10))
    first = run(["campaign", "start", str(campaign)], env)
    assert first.exit_code == 0, first.output
    assert "was started at" not in first.output
    again = run(["campaign", "start", str(campaign)], env)
    assert again.exit_code == 0, again.output
    assert f"campaign {campaign} was started at" in again.stdout
    assert "is running: its unfinished shards are queued again" in again.stdout


def test_run_sends_a_campaign_from_this_process_without_a_broker(env, tmp_path):
    """Campaign run: every shard sent here, the status printed, exit 0; nothing twice at the gateway."""
    campaign = created(env, tmp_path, [*numbers(450), "bad"], "--shard-size", "2")
    with SimulatedGateway() as gw:
        here = {
            **env,
            "SMS_ASYNC_USERNAME": gw.username,
            "SMS_ASYNC_PASSWORD": gw.password,
            "SMS_ASYNC_BASE_URL": gw.iton_url,
        }
        done = run(["campaign", "run", str(campaign)], here)
        assert gw.stats.accepted == 450
        assert gw.stats.duplicate_numbers() == {}
    assert done.exit_code == 1, done.output  # the invalid input
    assert f"campaign {campaign}: done" in done.stdout
    status = json.loads(run(["campaign", "status", str(campaign), "--json"], env).stdout)
    assert (status["outcomes"]["accepted"], status["outcomes"]["invalid"]) == (450, 1)
    again = run(["campaign", "run", str(campaign)], here)
    assert "nothing" not in again.stderr
    assert f"campaign {campaign} was started at" in again.stdout


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_send_and_a_stored_campaign_write_the_same_results(env, tmp_path, kind):
    """The same CSV with a personalised text, a DLT parameter and kept columns, sent by `send` and by
    `campaign create` + `campaign run` on SQLite and on PostgreSQL: the results are byte for byte equal
    apart from message ids.
    """  # noqa: D205
    import re  # noqa: PLC0415

    source = tmp_path / "people.csv"
    people = numbers(250)
    source.write_text(
        "phone,name,plan\n"
        + "".join(f"{n},Name {i},plan-{i % 4}\n" for i, n in enumerate(people))
        + "not a number,Nobody,none\n"
        + f"{people[3]},Again,plan-x\n"
    )
    options = ["--text", "Hi {name}, your {plan} is ready", "-s", "ITONAB", "--param", "templateid=1107-77"]
    results: dict[str, str] = {}
    stores = {"sqlite": ["--store", f"sqlite:///{tmp_path / 'campaigns.db'}"], "postgresql": []}
    for way in ("send", "sqlite", "postgresql"):
        with SimulatedGateway() as gw:
            here = {
                **env,
                "SMS_ASYNC_USERNAME": gw.username,
                "SMS_ASYNC_PASSWORD": gw.password,
                "SMS_ASYNC_BASE_URL": gw.iton_url,
            }
            output = tmp_path / f"{way}.{kind}"
            if way == "send":
                done = run(
                    ["send", str(source), *options, "--keep-columns", "--ordered", "-o", str(output)], here
                )
            else:
                store = stores[way]
                made = run(
                    ["campaign", "create", str(source), *options, "--keep-columns", "--json", *store], here
                )
                campaign = json.loads(made.stdout)["id"]
                done = run(["campaign", "run", str(campaign), *store], here)
                exported = run(
                    ["campaign", "export", str(campaign), "-o", str(output), "--no-delivery", *store], here
                )
                assert exported.exit_code == 0
            assert done.exit_code == 1, done.output  # the invalid row
            assert gw.stats.duplicate_numbers() == {}
            assert gw.stats.params["templateid=1107-77"] == len(gw.messages) == 250
            texts = {number: message.text for message in gw.messages.values() for number in message.numbers}
            assert texts == {n[1:]: f"Hi Name {i}, your plan-{i % 4} is ready" for i, n in enumerate(people)}
            ids = set(gw.messages)
        text = output.read_text()
        for message_id in ids:
            text = text.replace(message_id, "ID")
        results[way] = text
    assert re.search("ID", results["send"])
    assert results["send"] == results["sqlite"] == results["postgresql"]


def test_a_campaign_in_a_sqlite_store_runs_here_and_is_refused_to_workers(env, tmp_path):
    """A SQLite store: create, run and status work here; start and workers are refused, saying why."""
    store = ["--store", f"sqlite:///{tmp_path / 'here.db'}"]
    campaign = created(env, tmp_path, numbers(120), *store)
    with SimulatedGateway() as gw:
        here = {**env, "SMS_ASYNC_USERNAME": gw.username, "SMS_ASYNC_PASSWORD": gw.password}
        done = run(["campaign", "run", str(campaign), *store], {**here, "SMS_ASYNC_BASE_URL": gw.iton_url})
        assert gw.stats.accepted == 120
    assert done.exit_code == 0, done.output
    status = json.loads(run(["campaign", "status", str(campaign), "--json", *store], env).stdout)
    assert (status["state"], status["outcomes"]["accepted"]) == ("done", 120)
    refused = run(["campaign", "start", str(campaign), *store], env)
    assert refused.exit_code == 2
    assert f"sms-async campaign run {campaign}" in refused.stderr
    worker = run(["worker"], {**env, "SMS_ASYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'here.db'}"})
    assert worker.exit_code == 2
    assert "workers share a PostgreSQL campaign store" in worker.stderr
    missing = run(["campaign", "status", "1", "--store", f"sqlite:///{tmp_path / 'nowhere.db'}"], env)
    assert missing.exit_code == 2
    assert "there is no campaign store" in missing.stderr
    assert not (tmp_path / "nowhere.db").exists()


def test_status_wait_shows_its_progress_on_a_terminal(tmp_path):
    """On a terminal, status --wait keeps a line saying how many inputs are settled of how many."""
    env = {"SMS_ASYNC_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}", "HOME": str(tmp_path)}
    campaign = created(env, tmp_path, [*numbers(10), "bad"])
    done = run(
        ["campaign", "status", str(campaign), "--wait", "--interval", "0.1"], {**env, "FORCE_COLOR": "1"}
    )
    assert done.exit_code == 1
    assert f"campaign {campaign} ready: 1 of 11 inputs settled, 0 accepted" in done.stderr
    quiet = run(["campaign", "status", str(campaign), "--wait", "--interval", "0.1"], env)
    assert "inputs settled" not in quiet.stderr
