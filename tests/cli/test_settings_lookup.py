"""One settings lookup: the config file read once for commands and workers; flags from the drivers' keys."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from cli_support import env_for, invoke

from sms_async import ConfigurationError
from sms_async.campaign import (
    DEFAULT_GATEWAY,
    choose_gateway,
    gateway_settings,
    load_config,
)
from sms_async.cluster import driver_from_environment

PACKAGE = Path(__file__).resolve().parents[2] / "sms_async"


def write_config(home: Path, text: str) -> Path:
    """A config file at the default place under ``home``, readable by its owner only."""
    path = home / ".config" / "sms-async" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
    return path


def bare_env(home: Path, **extra: str) -> dict[str, str]:
    """An environment with a home of its own and no SMS_ASYNC_ variable but those given."""
    return {"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), **extra}


def test_the_command_line_and_a_worker_find_the_same_settings(tmp_path):
    """The file's section, under the environment's variables, gives a worker what it gives a send."""
    write_config(
        tmp_path,
        '[itecpay]\nusername = "file-user"\npassword = "file-pass"\nbase_url = "https://gw.example"\n'
        'send_path = "/from/file"\n[itecpay.params]\ntemplateid = "1107"\n',
    )
    env = bare_env(tmp_path, SMS_ASYNC_SEND_PATH="/from/env")
    found = gateway_settings("itecpay", env=env)
    assert dict(found.values) == {
        "username": "file-user",
        "password": "file-pass",
        "base_url": "https://gw.example",
        "send_path": "/from/env",
    }
    assert found.sources["send_path"] == "the environment"
    assert dict(found.params) == {"templateid": "1107"}
    from sms_async.cli._config import resolve_settings  # noqa: PLC0415 - the command line's face of it

    settings = resolve_settings(gateway="itecpay", config_path=None, env=env)
    assert dict(settings.values) == dict(found.values)
    assert dict(settings.params) == {"templateid": "1107"}
    driver = driver_from_environment("itecpay", env)
    assert driver.origin.url.startswith("https://gw.example")
    assert dict(driver.params) == {"templateid": "1107"}  # type: ignore[attr-defined]


def test_a_worker_refuses_a_misspelt_key_as_the_command_line_does(tmp_path):
    """A key the driver does not read (a misspelt password) is an error naming it, for workers too."""
    write_config(tmp_path, '[iton]\nusername = "me"\npasword = "secret-value"\n')
    env = bare_env(tmp_path)
    with pytest.raises(ConfigurationError, match=r"unknown key 'pasword' in \[iton\]") as refused:
        driver_from_environment("iton", env)
    assert "secret-value" not in str(refused.value)
    result = invoke(["balance"], env_for_none(tmp_path))
    assert result.exit_code == 2
    assert "unknown key 'pasword' in [iton]" in result.stderr


def env_for_none(home: Path) -> dict[str, str | None]:
    """The test runner's environment with every SMS_ASYNC_ setting of these tests cleared."""
    return {
        "SMS_ASYNC_USERNAME": None,
        "SMS_ASYNC_PASSWORD": None,
        "SMS_ASYNC_TOKEN": None,
        "SMS_ASYNC_BASE_URL": None,
        "SMS_ASYNC_GATEWAY": None,
        "SMS_ASYNC_CONFIG": None,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }


def test_a_named_config_file_that_is_missing_is_one_error_everywhere(tmp_path):
    """SMS_ASYNC_CONFIG naming no file is the same error for the library, a worker and a command."""
    env = bare_env(tmp_path, SMS_ASYNC_CONFIG=str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"nope\.toml does not exist"):
        load_config(env=env)
    with pytest.raises(ConfigurationError, match=r"nope\.toml does not exist"):
        driver_from_environment("iton", env)
    result = invoke(["balance"], {**env_for_none(tmp_path), "SMS_ASYNC_CONFIG": str(tmp_path / "nope.toml")})
    assert result.exit_code == 2
    assert "nope.toml does not exist" in result.stderr


def test_the_default_gateway_is_chosen_by_one_rule(tmp_path):
    """No name anywhere gives DEFAULT_GATEWAY; the file's only section, the variable or the option win."""
    env = bare_env(tmp_path)
    assert choose_gateway(env=env).name == DEFAULT_GATEWAY
    write_config(tmp_path, '[itecpay]\nusername = "me"\n')
    assert choose_gateway(env=env).name == "itecpay"
    assert choose_gateway(env={**env, "SMS_ASYNC_GATEWAY": "iton"}).name == "iton"
    assert choose_gateway("iton", env={**env, "SMS_ASYNC_GATEWAY": "itecpay"}).name == "iton"
    with pytest.raises(ConfigurationError, match="unknown gateway 'nosuch'"):
        choose_gateway("nosuch", env=env)


def test_no_gateway_is_named_outside_its_own_modules():
    """The names of the built-in gateways appear as string values only in the drivers, the simulator's
    modules of each gateway, and the one default (docstrings and examples aside).
    """  # noqa: D205
    allowed = {
        PACKAGE / "campaign" / "_defaults.py",
        PACKAGE / "testing" / "_iton.py",
        PACKAGE / "testing" / "_itecpay.py",
        PACKAGE / "testing" / "_builtin.py",
    }
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in allowed or (PACKAGE / "providers") in path.parents:
            continue
        found.extend(
            f"{path.relative_to(PACKAGE)}:{node.lineno}"
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and node.value in {"iton", "itecpay"}
        )
    assert found == []


def test_a_third_gateway_gets_its_own_flag_and_variable(toy_distribution, tmp_path, sms_gateway):
    """The toy's own setting (channel) is a send flag and SMS_ASYNC_CHANNEL, reaching its driver, with no
    list of settings kept in sms_async; another gateway refuses the flag.
    """  # noqa: D205
    help_text = invoke(["send", "--help"], {}).stdout
    assert "--channel" in help_text
    assert "SMS_ASYNC_CHANNEL" in help_text
    source = tmp_path / "numbers.txt"
    source.write_text("9810000001\n9810000002\n")
    output = tmp_path / "out.jsonl"
    env = env_for(sms_gateway, tmp_path, SMS_ASYNC_BASE_URL=sms_gateway.url("toy"))
    args = ["send", str(source), "--text", "Hi", "-s", "TOYCO", "-o", str(output), "--gateway", "toy", "-q"]
    refused = invoke([*args, "--channel", "loud"], env)
    assert refused.exit_code == 2
    assert "channel is one of promo, service, not 'loud'" in refused.stderr
    from_variable = invoke(args, {**env, "SMS_ASYNC_CHANNEL": "loud"})
    assert from_variable.exit_code == 2
    assert "not 'loud'" in from_variable.stderr
    assert not sms_gateway.stats.numbers
    elsewhere = invoke([*args[:-3], "--gateway", "iton", "--channel", "promo"], env)
    assert elsewhere.exit_code == 2
    assert "--channel: the iton gateway has no such setting" in elsewhere.stderr
    sent = invoke([*args, "--channel", "promo"], env)
    assert sent.exit_code == 0, sent.stderr
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["outcome"] for row in rows] == ["accepted", "accepted"]
    assert sorted(sms_gateway.stats.numbers) == ["+919810000001", "+919810000002"]


def test_the_demo_hint_names_the_gateway_it_sent_through(tmp_path, monkeypatch):
    """After a demo through ItecPay, the next-step hint gives --gateway itecpay and its URL, not ITON's."""
    monkeypatch.chdir(tmp_path)
    result = invoke(
        ["demo", "--count", "300", "--gateway", "itecpay", "--no-faults", "-q"], env_for_none(tmp_path)
    )
    assert result.exit_code == 0, result.output
    hint = " ".join(result.stdout.split())
    assert "--gateway itecpay --base-url http://127.0.0.1:8080'" in hint
    assert "ItonSMSAPI" not in hint
