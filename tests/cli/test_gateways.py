"""Gateways from the registry on the command line: a toy one, config sections, settings, extra parameters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cli_support import env_for, invoke

from sms_async.testing import (
    SimulatedGateway,
)

SECRET_PARAM = "Dlt-Secret-Value-42"


def numbers(count: int) -> list[str]:
    return [f"98{i:08d}" for i in range(count)]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_toy_gateway_works_from_the_command_line(toy_gateway, tmp_path, sms_gateway_factory):
    """A gateway registered at run time works with --gateway toy; what it lacks is refused cleanly."""
    gw = sms_gateway_factory(status_delays=(0.0, 0.0))
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(120)) + "\n")
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.url("toy"))
    args = [
        "send",
        str(source),
        "--text",
        "Hi",
        "--sender-id",
        "ITONAB",
        "-o",
        str(output),
        "--gateway",
        "toy",
    ]
    result = invoke(args, env)
    assert result.exit_code == 0, result.output
    assert Counter(r["outcome"] for r in read_rows(output)) == {"accepted": 120}
    assert gw.stats.requests["toy.send"] == 3  # the driver's max_batch of 50
    result = invoke(["status", str(output), "--gateway", "toy"], env)
    assert result.exit_code == 0, result.output
    assert "delivered" in result.stdout
    for command in (["balance"], ["dnd", "9812345678"]):
        result = invoke([*command, "--gateway", "toy"], env)
        assert result.exit_code == 2, result.output
        assert "toy has no" in result.stderr
    result = invoke([*args, "--skip-dnd", "--overwrite"], env)
    assert result.exit_code == 2
    assert "do-not-disturb" in result.stderr
    result = invoke([*args, "--gateway", "nope"], env)
    assert result.exit_code == 2
    assert "toy" in result.stderr  # the registered gateways are listed
    result = invoke([*args, "--send-path", "/x"], env)
    assert result.exit_code == 2
    assert "--send-path: the toy gateway has no such setting" in result.stderr


def _config(home: Path, text: str) -> Path:
    config = home / ".config" / "sms-async" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)
    config.chmod(0o600)
    return config


def test_a_config_with_one_gateway_section_uses_that_gateway(tmp_path, sms_gateway):
    """A config holding only [itecpay] sends through ItecPay, sender id and all, without --gateway."""
    gw = sms_gateway
    _config(
        tmp_path,
        f'[itecpay]\nusername = "{gw.username}"\npassword = "{gw.password}"\n'
        f'base_url = "{gw.itecpay_url}"\nsender_id = "CFGPAY"\n',
    )
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(10)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_USERNAME=None, SMS_ASYNC_PASSWORD=None, SMS_ASYNC_BASE_URL=None)
    result = invoke(["send", str(source), "--text", "Hi", "-o", str(tmp_path / "r.jsonl")], env)
    assert result.exit_code == 0, result.output
    assert gw.stats.requests["itecpay.send"] == 1
    assert next(iter(gw.messages.values())).sender == "CFGPAY"


def test_errors_point_at_the_default_gateway(toy_gateway, tmp_path, sms_gateway):
    """With sections for other gateways only, a missing setting says the gateway is iton by default."""
    gw = sms_gateway
    _config(tmp_path, '[itecpay]\nsender_id = "CFGPAY"\n[toy]\nsender_id = "CFGTOY"\n')
    source = tmp_path / "numbers.txt"
    source.write_text("9812345678\n")
    env = env_for(gw, tmp_path)
    result = invoke(["send", str(source), "--text", "Hi", "-o", str(tmp_path / "r.jsonl")], env)
    assert result.exit_code == 2
    assert "no sender id" in result.stderr
    assert "the gateway is iton by default" in result.stderr
    assert "--gateway itecpay" in result.stderr
    # Named explicitly, the gateway is not second-guessed.
    env = env_for(gw, tmp_path, SMS_ASYNC_GATEWAY="iton")
    result = invoke(["send", str(source), "--text", "Hi", "-o", str(tmp_path / "r.jsonl")], env)
    assert result.exit_code == 2
    assert "by default" not in result.stderr
    assert sum(gw.stats.requests.values()) == 0


def test_insecure_http_and_paths_from_the_command_line(tmp_path, sms_gateway):
    """http:// to another host is refused with the CLI's own words; --send-path reaches ItecPay's path."""
    gw = sms_gateway
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(5)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL="http://sms.example.invalid/api/")
    result = invoke(["balance"], env)
    assert result.exit_code == 2
    assert "--allow-insecure-http" in result.stderr
    assert "allow_insecure_http=True" not in result.stderr
    result = invoke(
        ["send", str(source), "--text", "Hi", "-s", "ITONAB", "--gateway", "itecpay", "-o", "x.jsonl"],
        env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=None),
    )
    assert result.exit_code == 2
    assert "--base-url" in result.stderr
    assert "SMS_ASYNC_BASE_URL" in result.stderr


def test_itecpay_paths_from_options_and_config(tmp_path, sms_gateway_factory):
    """--send-path and the config's send_path reach an ItecPay served on other paths."""
    gw = sms_gateway_factory(itecpay_send_path="/v2/send", itecpay_status_path="/v2/status")
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(5)) + "\n")
    env = env_for(gw, tmp_path, SMS_ASYNC_BASE_URL=gw.itecpay_url)
    args = ["send", str(source), "--text", "Hi", "-s", "ITONAB", "--gateway", "itecpay"]
    result = invoke([*args, "-o", str(tmp_path / "a.jsonl"), "--send-path", "/v2/send"], env)
    assert result.exit_code == 0, result.output
    _config(tmp_path, '[itecpay]\nsend_path = "/v2/send"\nstatus_path = "/v2/status"\n')
    result = invoke([*args, "-o", str(tmp_path / "b.jsonl")], env)
    assert result.exit_code == 0, result.output
    result = invoke(["status", str(tmp_path / "b.jsonl"), "--gateway", "itecpay"], env)
    assert result.exit_code in {0, 1}, result.output
    assert gw.stats.requests["itecpay.status"] == 1  # one batch, one message id


def test_gateway_params_from_options_and_config(tmp_path, sms_gateway):
    """--param and [iton.params] reach every send; an owned name is refused first; secrets stay hidden."""
    gw = sms_gateway
    _config(tmp_path, '[iton.params]\nentityid = "1101"\ntemplateid = "from-config"\n')
    source = tmp_path / "numbers.txt"
    source.write_text("\n".join(numbers(150)) + "\n")
    env = env_for(gw, tmp_path)
    base = ["send", str(source), "--text", "Hi", "-s", "ITONAB"]
    result = invoke([*base, "-o", str(tmp_path / "a.jsonl"), "--param", "templateid=1107"], env)
    assert result.exit_code == 0, result.output
    assert gw.stats.params["entityid=1101"] == 2
    assert gw.stats.params["templateid=1107"] == 2
    assert gw.stats.params["templateid=from-config"] == 0
    before = sum(gw.stats.requests.values())
    result = invoke([*base, "-o", str(tmp_path / "b.jsonl"), "--param", "password=x"], env)
    assert result.exit_code == 2
    assert "'password'" in result.stderr
    assert sum(gw.stats.requests.values()) == before
    assert not (tmp_path / "b.jsonl").exists()
    assert not (tmp_path / "b.jsonl.journal").exists()
    result = invoke(
        [*base, "-o", str(tmp_path / "c.jsonl"), "--param", f"api_key={SECRET_PARAM}", "--json"], env
    )
    assert result.exit_code == 0, result.output
    assert SECRET_PARAM not in result.output
    for path in tmp_path.iterdir():
        if path.is_file():
            assert SECRET_PARAM.encode() not in path.read_bytes()
    result = invoke([*base, "-o", str(tmp_path / "d.jsonl"), "--param", "novalue"], env)
    assert result.exit_code == 2
    assert "NAME=VALUE" in result.stderr


def test_simulated_gateway_serves_the_toy_beside_the_others(toy_gateway, sms_gateway: SimulatedGateway):
    """The toy protocol registered by the fixture is served by a new simulator (the CLI test relies on it)."""
    assert "toy" in sms_gateway.protocols


def test_every_text_setting_of_a_driver_comes_from_its_own_variable(tmp_path):
    """SMS_ASYNC_<KEY> gives each text settings key a driver declares, for the command line and workers
    alike; never the parameters table nor the plain-http opt-in.
    """  # noqa: D205
    from sms_async.campaign import environment_settings  # noqa: PLC0415
    from sms_async.cli._config import resolve_settings  # noqa: PLC0415

    env = {
        "SMS_ASYNC_SEND_PATH": "/api/v2/send",
        "SMS_ASYNC_FLAVOUR": "mint",
        "SMS_ASYNC_ALLOW_INSECURE_HTTP": "1",
        "SMS_ASYNC_PARAMS": "x",
        "HOME": str(tmp_path),
    }
    keys = {"send_path", "flavour", "allow_insecure_http", "params"}
    assert environment_settings(keys, env) == {"send_path": "/api/v2/send", "flavour": "mint"}
    settings = resolve_settings(gateway="itecpay", config_path=None, env=env)
    assert settings.values["send_path"] == "/api/v2/send"
    assert "allow_insecure_http" not in settings.values
