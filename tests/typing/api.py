"""Type-checked, never run: the public API as a user writes it (``mypy --strict``)."""

import json
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Self

import httpx

from sms_async import (
    BatchResult,
    BulkResult,
    BulkSender,
    CallStopped,
    DeliveryReport,
    DeliveryStatus,
    GatewayError,
    ItecPay,
    Iton,
    Message,
    Outcome,
    RetryPolicy,
    SendCancelled,
    SenderClosed,
    SenderStats,
    SendTimeout,
    UnsupportedOperationError,
)
from sms_async.providers import (
    Capabilities,
    Driver,
    Origin,
    PreparedSend,
    SendAnswer,
    WireRequest,
    WireResponse,
    body_excerpt,
    check_params,
    classify_http,
    classify_text_error,
    gateway,
    keep_secrets,
    register_gateway,
    setting,
)
from sms_async.testing import (
    GatewayState,
    Operation,
    Request,
    Response,
    SimulatedGateway,
    SimulatedProtocol,
    json_response,
    parse_query,
    register_protocol,
    text_response,
)


async def campaign(numbers: list[str]) -> None:
    """A typical service call."""
    async with BulkSender(
        Iton(username="u", password="p"), concurrency=32, default_region="IN", retry=RetryPolicy(attempts=3)
    ) as bulk:
        result: BulkResult = await bulk.send(numbers, "Hello", sender_id="ITONAB")
        ids: dict[str, str] = result.message_ids
        for key, failure in result.failed.items():
            outcome: Outcome = failure.outcome
            reason: str = failure.reason
            del key, outcome, reason
        async for batch in bulk.stream(iter(numbers), "Hello", sender_id="ITONAB"):
            partial: BatchResult = batch
            del partial
        reports: list[DeliveryReport] = await bulk.delivery_reports(ids.values())
        statuses: set[DeliveryStatus] = {r.status for r in reports}
        balance: Decimal = await bulk.balance()
        dnd: dict[str, bool] = await bulk.check_dnd(numbers)
        del statuses, balance, dnd


async def own_client() -> None:
    """A caller's own httpx client."""
    async with (
        httpx.AsyncClient() as client,
        BulkSender(ItecPay("u", "p", base_url="https://gateway.example"), client=client) as bulk,
    ):
        await bulk.send(["+919812345678"], "Hi", sender_id="ACME")


async def service_call(bulk: BulkSender, numbers: list[str]) -> None:
    """A call with its own deadline and a result that survives cancellation; a graceful close."""
    holder = BulkResult()
    result: BulkResult = await bulk.send(numbers, "Hi", sender_id="ACME", timeout=5.0, into=holder)
    stopped: bool = isinstance(result.aborted, SendTimeout | SenderClosed | SendCancelled | CallStopped)
    async for batch in bulk.stream(numbers, "Hi", sender_id="ACME", timeout=5.0):
        del batch
    stats: SenderStats = bulk.stats()
    busy: int = stats.slots_in_use + stats.calls_running + stats.requests_in_flight
    idle: int | None = stats.connections_idle
    pause: float | None = stats.pause_remaining
    await bulk.aclose(timeout=2.0)
    del stopped, busy, idle, pause


class Echo:
    """A third gateway's driver, written with the gateway SDK's public names only."""

    name: ClassVar[str] = "echo"
    capabilities: ClassVar[Capabilities] = Capabilities(status=False)
    settings_keys: ClassVar[frozenset[str]] = frozenset({"username", "password", "base_url"})
    max_batch = 10
    max_status_batch = 1
    max_dnd_batch = 1

    def __init__(self, user: str, key: str, base_url: str) -> None:
        self.origin = Origin.parse(base_url)
        keep_secrets(self, key)
        self._head = {"user": user, "key": key}

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Build from settings."""
        return cls(
            setting(settings, "username") or "",
            setting(settings, "password") or "",
            setting(settings, "base_url") or "",
        )

    def prepare_send(self, message: Message, params: Mapping[str, str] | None = None) -> PreparedSend:
        """Every send's constant part."""
        head = {**self._head, "text": message.text, **check_params(self, "Echo", frozenset(), params)}
        target = self.origin.join("/send")

        class Prepared:
            def build(self, numbers: Sequence[str]) -> WireRequest:
                return WireRequest("POST", target, (), json.dumps({**head, "to": list(numbers)}).encode())

        return Prepared()

    def parse_send(self, numbers: Sequence[str], response: WireResponse) -> SendAnswer:
        """One id per request."""
        error: GatewayError | None = classify_http(response)
        if error is not None:
            raise error
        if response.status >= 400:
            raise classify_text_error(response.text(), status_code=response.status)
        return SendAnswer(dict.fromkeys(numbers, response.text()), {}, body_excerpt(response))

    def build_status(self, message_ids: Sequence[str]) -> WireRequest:
        """No status look-up."""
        raise UnsupportedOperationError("echo has no status")

    def parse_status(self, message_ids: Sequence[str], response: WireResponse) -> list[DeliveryReport]:
        """No status look-up."""
        raise UnsupportedOperationError("echo has no status")

    def build_balance(self) -> WireRequest:
        """No balance."""
        raise UnsupportedOperationError("echo has no balance")

    def parse_balance(self, response: WireResponse) -> Decimal:
        """No balance."""
        raise UnsupportedOperationError("echo has no balance")

    def build_dnd(self, numbers: Sequence[str]) -> WireRequest:
        """No do-not-disturb list."""
        raise UnsupportedOperationError("echo has no do-not-disturb list")

    def parse_dnd(self, numbers: Sequence[str], response: WireResponse) -> dict[str, bool]:
        """No do-not-disturb list."""
        raise UnsupportedOperationError("echo has no do-not-disturb list")


register_gateway(Echo)
driver: Driver = Echo("u", "p", "https://echo.example")
found: type[Driver] = gateway("echo")


class EchoProtocol(SimulatedProtocol):
    """The same gateway as the simulator speaks it, with the simulator's public names only."""

    name = "echo"
    operations = frozenset({"echo.send"})
    default_paths: ClassVar[Mapping[str, str]] = {"send": "/send"}

    def read(self, request: Request) -> Operation:
        """Every request is a send."""
        operation = Operation("echo.send", self, request)
        operation.params = dict(parse_query(request.query))
        return operation

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Accept every number."""
        if state.login(operation.params.get("user"), operation.params.get("key")) is None:
            return json_response(401, {"error": "bad credentials"})
        return text_response(200, state.new_id())


register_protocol(EchoProtocol)
served: tuple[str, ...] = SimulatedGateway(
    answer_forms={"echo": "default"}, paths={"echo": {"send": "/s"}}
).protocols
