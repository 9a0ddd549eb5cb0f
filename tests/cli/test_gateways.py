"""Gateways from the registry on the command line: a toy one, config sections, settings, extra parameters."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import quote

import pytest
from cli_support import env_for, invoke

from sms_async import Message
from sms_async._exceptions import UnsupportedOperationError
from sms_async._models import DeliveryReport, DeliveryStatus
from sms_async._redact import keep_secrets
from sms_async._wire import Origin, WireRequest, WireResponse
from sms_async.providers import Capabilities, SendAnswer, register_gateway, unregister_gateway
from sms_async.providers._base import body_excerpt, classify_http
from sms_async.testing import (
    GatewayState,
    Operation,
    Request,
    Response,
    SimulatedGateway,
    SimulatedProtocol,
    json_response,
    register_protocol,
    unregister_protocol,
)
from sms_async.testing._protocol import parse_query

SECRET_PARAM = "Dlt-Secret-Value-42"


def numbers(count: int) -> list[str]:
    return [f"98{i:08d}" for i in range(count)]


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- a toy gateway: one driver class, one simulator protocol, one registration each ---------------


class _ToySend:
    def __init__(self, target: str, head: dict[str, Any]) -> None:
        self._target, self._head = target, head

    def build(self, numbers: Sequence[str]) -> WireRequest:
        body = json.dumps({**self._head, "to": list(numbers)}).encode()
        return WireRequest("POST", self._target, (("Content-Type", "application/json"),), body, "send")


class Toy:
    """A made-up gateway: JSON sends, status by id in the query, no balance, no do-not-disturb list."""

    name: ClassVar[str] = "toy"
    capabilities: ClassVar[Capabilities] = Capabilities(status=True, balance=False, dnd=False)
    settings_keys: ClassVar[frozenset[str]] = frozenset(
        {"username", "password", "base_url", "allow_insecure_http", "params"}
    )
    max_batch = 50
    max_status_batch = 1
    max_dnd_batch = 1

    def __init__(self, username: str, password: str, *, base_url: str, allow_insecure_http: bool = False):
        self.origin = Origin.parse(base_url, allow_insecure_http=allow_insecure_http)
        keep_secrets(self, password)
        self.username, self._password = username, password

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from username, password, base_url and allow_insecure_http."""
        return cls(
            settings["username"],
            settings["password"],
            base_url=settings["base_url"],
            allow_insecure_http=bool(settings.get("allow_insecure_http")),
        )

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> _ToySend:
        """The JSON every send of ``message`` carries."""
        head = {"user": self.username, "key": self._password, "text": message.text, **(params or {})}
        return _ToySend(self.origin.join("/toy/v1/messages"), head)

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """One id for the whole request."""
        error = classify_http(response)
        if error is not None:
            raise error
        message_id = json.loads(response.body)["id"]
        return SendAnswer(dict.fromkeys(numbers, message_id), {}, body_excerpt(response))

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """A status look-up of one id."""
        query = f"?user={quote(self.username)}&key={quote(self._password)}&id={quote(message_ids[0])}"
        return WireRequest("GET", self.origin.join("/toy/v1/status") + query, (), b"", "status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """One report per number of the message."""
        states = json.loads(response.body)["states"]
        return [
            DeliveryReport(message_ids[0], "+" + number.lstrip("+"), DeliveryStatus(state), state)
            for number, state in states.items()
        ]

    def build_balance(self) -> WireRequest:
        """None: the toy has no balance."""
        raise UnsupportedOperationError("the toy gateway has no balance command")

    def parse_balance(self, response: WireResponse) -> Decimal:
        """None: the toy has no balance."""
        raise UnsupportedOperationError("the toy gateway has no balance command")

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """None: the toy has no do-not-disturb list."""
        raise UnsupportedOperationError("the toy gateway has no do-not-disturb list")

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """None: the toy has no do-not-disturb list."""
        raise UnsupportedOperationError("the toy gateway has no do-not-disturb list")


class ToyProtocol(SimulatedProtocol):
    """The toy gateway as the simulator speaks it."""

    name = "toy"
    operations = frozenset({"toy.send", "toy.status"})
    default_paths: ClassVar[dict[str, str]] = {"send": "/toy/v1/messages", "status": "/toy/v1/status"}

    def read(self, request: Request) -> Operation:
        """A send is a JSON body; a status look-up takes everything from the query."""
        if request.path == self.paths["send"]:
            operation = Operation("toy.send", self, request)
            operation.data = json.loads(request.body)
            return operation
        operation = Operation("toy.status", self, request)
        operation.params = dict(parse_query(request.query))
        return operation

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Send through the shared state, or report each number's stage."""
        if operation.name == "toy.send":
            data = operation.data
            account = state.login(data.get("user"), data.get("key"))
            if account is None:
                return json_response(401, {"error": "bad credentials"})
            numbers = [n.lstrip("+") for n in data["to"]]
            state.received(len(numbers))
            state.charge(account, data["text"], len(numbers))
            state.record_send(account, numbers, [])
            message_id = state.new_id()
            state.store(
                message_id,
                tuple(numbers),
                gateway=self.name,
                text=data["text"],
                sender="TOY",
                account=account,
            )
            return json_response(201, {"id": message_id})
        params = operation.params
        account = state.login(params.get("user"), params.get("key"))
        message = state.message_for(params.get("id", ""), self.name, account)
        if account is None or message is None:
            return json_response(404, {"error": "no such message"})
        stage = state.stage(message, state.now())
        states = {
            n: stage if stage != "final" else state.outcome(message.message_id, n) for n in message.numbers
        }
        return json_response(200, {"id": message.message_id, "states": states})


@pytest.fixture
def toy():
    register_gateway(Toy)
    register_protocol(ToyProtocol)
    yield Toy
    unregister_protocol("toy")
    unregister_gateway("toy")


def test_a_toy_gateway_works_from_the_command_line(toy, tmp_path, sms_gateway_factory):
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


def test_errors_point_at_the_default_gateway(toy, tmp_path, sms_gateway):
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


def test_simulated_gateway_serves_the_toy_beside_the_others(toy, sms_gateway: SimulatedGateway):
    """The toy protocol registered by the fixture is served by a new simulator (the CLI test relies on it)."""
    assert "toy" in sms_gateway.protocols
