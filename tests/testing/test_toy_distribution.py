"""The toy gateway, a distribution of its own written with public names only, works everywhere a gateway can.

``tests/toy_gateway_dist`` is packaged as another project would package a
gateway: a driver and a simulator protocol, declared by entry points. These
tests prove it imports nothing private, is found by name once installed, and
works from Python, from a crash-safe campaign and from the command line (the
simulator and ``send`` in processes of their own).
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from collections import Counter
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from toy_gateway import Toy, ToyProtocol

from sms_async import BulkSender, ConfigurationError, DeliveryStatus
from sms_async.campaign import run_campaign
from sms_async.providers import _registry as providers_registry
from sms_async.providers import gateway, gateway_names, unregister_gateway
from sms_async.testing import SimulatedGateway, SimulatorClient, registered_protocols, unregister_protocol
from sms_async.testing import _registry as testing_registry
from sms_async.testing import main as simulator_main

DIST = Path(__file__).parents[1] / "toy_gateway_dist"


def numbers(count: int) -> list[str]:
    return [f"+9198{i:08d}" for i in range(count)]


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, by its full dotted name."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_toy_imports_no_private_name():
    """No module of the toy's distribution imports an underscored sms_async module or name."""
    sources = sorted((DIST / "src").rglob("*.py"))
    assert len(sources) >= 3
    for source in sources:
        private = sorted(
            name
            for name in imported_modules(source)
            if name.split(".")[0] == "sms_async" and any(part.startswith("_") for part in name.split("."))
        )
        assert not private, f"{source.name} imports {private}"
        text = source.read_text()
        assert not re.search(r"sms_async\._", text), source.name


def test_the_private_name_check_can_fail(tmp_path):
    """The import check sees a private import when one is there."""
    source = tmp_path / "leaky.py"
    source.write_text("from sms_async._wire import WireRequest\nimport sms_async.providers._base\n")
    assert {"sms_async._wire", "sms_async.providers._base"} <= imported_modules(source)


def test_entry_points_find_the_toy_without_registration(toy_distribution):
    """Installed, the toy is listed and found by name, and found again after it is forgotten."""
    assert "toy" in gateway_names()
    assert gateway("toy") is Toy
    unregister_gateway("toy")
    assert gateway("toy") is Toy
    assert ToyProtocol in registered_protocols()
    unregister_protocol("toy")
    assert ToyProtocol in registered_protocols()
    with SimulatedGateway() as gw:
        assert gw.protocols[:2] == ("iton", "itecpay")
        assert "toy" in gw.protocols


async def test_the_toy_from_python(toy_distribution):
    """BulkSender sends through the toy's driver to its simulated protocol: every input accounted for once."""
    with SimulatedGateway(status_delays=(0, 0)) as gw:
        driver = gateway("toy").from_settings(
            {"username": gw.username, "password": gw.password, "base_url": gw.url("toy")}
        )
        recipients = [*numbers(120), "+919800000001", "not a number"]
        async with BulkSender(driver, concurrency=4) as bulk:
            result = await bulk.send(recipients, "Hello from the toy", sender_id="TOYCO")
            reports = await bulk.delivery_reports(set(result.message_ids.values()))
        assert result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())
        assert set(result.message_ids) == set(numbers(120))
        assert result.duplicates == {"+919800000001": 1}
        assert list(result.failed) == ["not a number"]
        assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
        stats = gw.stats
        assert stats.requests["toy.send"] == 3  # 50 + 50 + 20: the toy's own max_batch
        assert not stats.duplicate_numbers()
        assert stats.accepted == 120


async def test_the_toy_in_a_campaign(toy_distribution, tmp_path):
    """A crash-safe campaign runs through the toy; resuming it sends nothing twice."""
    recipients = [*numbers(75), "12"]
    with SimulatedGateway() as gw:
        driver = Toy(gw.username, gw.password, base_url=gw.url("toy"))
        results = tmp_path / "results.jsonl"
        async with BulkSender(driver) as bulk:
            report = await run_campaign(bulk, recipients, "Hello", sender_id="TOYCO", results=results)
        assert {k: v for k, v in report.totals.counts.items() if v} == {"accepted": 75, "invalid": 1}
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        assert Counter(row["outcome"] for row in rows) == {"accepted": 75, "invalid": 1}
        async with BulkSender(driver) as bulk:
            await run_campaign(bulk, recipients, "Hello", sender_id="TOYCO", results=results, resume=True)
        assert gw.stats.requests["toy.send"] == 2
        assert not gw.stats.duplicate_numbers()


def _simulator(*args: str) -> tuple[subprocess.Popen[str], str]:
    """``sms-async simulate ARGS`` on a free port, and its origin, read from its banner."""
    process = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "sms_async", "simulate", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    banner = []
    for line in iter(process.stdout.readline, ""):
        banner.append(line)
        if line.startswith("Press Ctrl+C"):
            break
    text = "".join(banner)
    found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", text)
    assert found, text + process.stderr.read() if process.stderr else text
    return process, text


def test_the_toy_from_the_command_line(toy_distribution, tmp_path):
    """``sms-async simulate --gateway toy`` serves the toy alone; ``send --gateway toy`` sends through it."""
    simulator, banner = _simulator("--gateway", "toy", "--answer-form", "toy=verbose")
    try:
        origin = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)
        assert "Toy" in banner
        assert "ITON" not in banner
        source = tmp_path / "numbers.txt"
        source.write_text("\n".join(n.removeprefix("+") for n in numbers(60)) + "\n12\n")
        output = tmp_path / "results.jsonl"
        env = _command_line_env(origin, tmp_path)
        sent = subprocess.run(  # noqa: S603  (our own interpreter and module)
            [
                sys.executable,
                "-m",
                "sms_async",
                "send",
                str(source),
                "--text",
                "Hi",
                "--sender-id",
                "TOYCO",
                "-o",
                str(output),
                "--gateway",
                "toy",
                "--quiet",
            ],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert sent.returncode == 1, sent.stderr  # one input was invalid
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        assert Counter(row["outcome"] for row in rows) == {"accepted": 60, "invalid": 1}
        assert len(rows) == 61
        with SimulatorClient(origin) as client:
            stats = client.stats(numbers=True)
        assert stats.requests == {"toy.send": 2}
        assert stats.accepted == 60
        assert not stats.duplicates
    finally:
        simulator.terminate()
        simulator.communicate(timeout=30)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``sms-async ARGS`` in a process of its own."""
    return subprocess.run(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "sms_async", *args], capture_output=True, text=True, env=env, check=False
    )


def test_the_toy_as_a_stored_campaign_from_the_command_line(toy_distribution, tmp_path):
    """``campaign create --gateway toy`` then ``campaign run`` against ``simulate --gateway toy``: every
    recipient accounted for once, in the status and the export; a second run sends nothing.
    """  # noqa: D205
    simulator, banner = _simulator("--gateway", "toy")
    try:
        origin = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner).group(1)
        source = tmp_path / "numbers.txt"
        source.write_text("\n".join(n.removeprefix("+") for n in numbers(60)) + "\n919800000001\n12\n")
        store = f"sqlite:///{tmp_path / 'campaigns.db'}"
        env = _command_line_env(origin, tmp_path)
        created = _cli(
            env,
            "campaign",
            "create",
            str(source),
            "--text",
            "Hi",
            "--sender-id",
            "TOYCO",
            "--gateway",
            "toy",
            "--store",
            store,
            "--json",
        )
        assert created.returncode == 0, created.stderr
        campaign = str(json.loads(created.stdout.splitlines()[0])["id"])

        sent = _cli(env, "campaign", "run", campaign, "--store", store)
        assert sent.returncode == 1, sent.stderr  # one input was invalid
        assert f"campaign {campaign}: done (toy" in sent.stdout

        shown = _cli(env, "campaign", "status", campaign, "--json", "--store", store)
        status = json.loads(shown.stdout)
        assert (status["state"], status["finished"], status["gateway"]) == ("done", True, "toy")
        outcomes = {"accepted": 60, "duplicate": 1, "invalid": 1}  # the number of row 2 comes again
        assert {k: v for k, v in status["outcomes"].items() if v} == outcomes
        assert (status["inputs"], status["recipients"], status["not_settled"]) == (62, 60, 0)

        output = tmp_path / "results.jsonl"
        exported = _cli(env, "campaign", "export", campaign, "-o", str(output), "--store", store)
        assert exported.returncode == 0, exported.stderr
        rows = [json.loads(line) for line in output.read_text().splitlines()]
        assert [row["row"] for row in rows] == list(range(1, 63))
        assert Counter(row["outcome"] for row in rows) == outcomes
        assert all(row["message_id"] for row in rows if row["outcome"] == "accepted")

        again = _cli(env, "campaign", "run", campaign, "--store", store)
        assert again.returncode == 1, again.stderr
        with SimulatorClient(origin) as client:
            stats = client.stats(numbers=True)
        assert stats.requests == {"toy.send": 2}  # 50 + 10: the toy's own max_batch, and never again
        assert stats.accepted == 60
        assert not stats.duplicates
    finally:
        simulator.terminate()
        simulator.communicate(timeout=30)


def test_simulate_refuses_a_gateway_nobody_declared():
    """``--gateway`` names only registered or installed protocols."""
    refused = subprocess.run(
        [sys.executable, "-m", "sms_async.testing", "--port", "0", "--gateway", "nope"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert "invalid choice: 'nope'" in refused.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--answer-form", "iton"], "expected GATEWAY=FORM"),
        (["--answer-form", "iton=xml"], "the answer form must be one of"),
        (["--answer-form", "nope=json"], "neither registered nor given"),
    ],
)
def test_simulate_checks_answer_forms(args, message):
    """A bad --answer-form is a usage error that says what is wrong, before any port is opened."""
    refused = subprocess.run(  # noqa: S603  (our own interpreter and module)
        [sys.executable, "-m", "sms_async.testing", "--port", "0", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode == 2
    assert message in refused.stderr


def _command_line_env(origin: str, home: Path) -> dict[str, str]:
    """The environment of an ``sms-async`` process sending to the simulator at ``origin``, no user config."""
    env = {
        **os.environ,
        "SMS_ASYNC_USERNAME": "demo",
        "SMS_ASYNC_PASSWORD": "demo-password",
        "SMS_ASYNC_BASE_URL": origin,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    for name in ("SMS_ASYNC_TOKEN", "SMS_ASYNC_GATEWAY", "SMS_ASYNC_CONFIG", "SMS_ASYNC_DATABASE_URL"):
        env.pop(name, None)
    return env


def _declared_only(monkeypatch, module, *points: EntryPoint) -> None:
    """Make ``module`` see only ``points`` in its entry-point group."""
    monkeypatch.setattr(module, "entry_points", lambda group: [p for p in points if p.group == group])


def test_a_broken_driver_entry_point_says_which_package_to_look_at(monkeypatch):
    """A driver entry point that cannot be imported, or names a class of another name, is a clear error."""
    group = providers_registry.ENTRY_POINT_GROUP
    _declared_only(
        monkeypatch,
        providers_registry,
        EntryPoint("broken", "no_such_module_anywhere:Driver", group),
        EntryPoint("misnamed", "toy_gateway.driver:Toy", group),
    )
    assert {"broken", "misnamed"} <= set(gateway_names())
    with pytest.raises(ConfigurationError, match=r"'no_such_module_anywhere:Driver' cannot be loaded"):
        gateway("broken")
    with pytest.raises(ConfigurationError, match=r"whose 'name' is 'toy': the two must be the same"):
        gateway("misnamed")


def test_a_broken_protocol_entry_point_says_which_package_to_look_at(monkeypatch):
    """A simulator entry point that cannot be imported is named in the error, not skipped silently."""
    group = testing_registry.ENTRY_POINT_GROUP
    _declared_only(monkeypatch, testing_registry, EntryPoint("broken", "no_such_module_anywhere:P", group))
    with pytest.raises(ValueError, match=r"'no_such_module_anywhere:P' cannot be loaded"):
        registered_protocols()


def test_simulate_names_a_broken_protocol_entry_point(monkeypatch, capsys):
    """The simulator's command line says which installed protocol cannot be loaded, with status 2."""
    group = testing_registry.ENTRY_POINT_GROUP
    _declared_only(monkeypatch, testing_registry, EntryPoint("broken", "no_such_module_anywhere:P", group))
    assert simulator_main(["--port", "0"], prog="sms-async simulate") == 2
    assert "sms-async simulate: the simulator protocol 'broken'" in capsys.readouterr().err


@pytest.mark.parametrize("module", [providers_registry, testing_registry], ids=["drivers", "protocols"])
def test_the_installed_entry_points_are_read_once_for_many_look_ups(monkeypatch, module):
    """A read opens every installed distribution; the command line asks once per option it builds."""
    reads = Counter[str]()
    real = module.entry_points

    def counted(group: str) -> object:
        reads[group] += 1
        return real(group=group)

    monkeypatch.setattr(module, "entry_points", counted)
    for _ in range(20):
        assert "toy" in module._declared()
    assert reads == {module.ENTRY_POINT_GROUP: 1}
