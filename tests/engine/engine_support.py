"""Helpers shared by the engine tests: a scripted in-test gateway, senders over it, accounting checks."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable

import anyio
import anyio.lowlevel
import httpx

from sms_async import BulkResult, BulkSender, ItecPay, Iton, Outcome, RetryPolicy

FAST = RetryPolicy(initial_wait=0.001, max_wait=0.01)


PASSWORD = "pw-engine-1"


Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]


Fault = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"+9198{i:08d}" for i in range(start, start + count)]


class FakeGateway:
    """Answers ITON or ItecPay sends: each call takes the next scripted fault, then succeeds.

    A success gives every number its own id (``id-<digits>``). It records how often each number
    reached it, the size of every batch, and the most calls it ever had in progress at once.
    """

    def __init__(
        self, faults: list[Fault] | None = None, *, always: Fault | None = None, delay: float = 0
    ) -> None:
        self.faults = list(faults or [])
        self.always = always
        self.delay = delay
        self.calls = 0
        self.sent: Counter[str] = Counter()
        self.batches: list[int] = []
        self.active = 0
        self.max_active = 0

    @staticmethod
    def recipients(request: httpx.Request) -> list[str]:
        """The E.164 numbers a send request carries, for either gateway."""
        if request.method == "GET":
            return ["+" + n for n in request.url.params["to"].split(",")]
        return json.loads(request.content)["recipients"].split(",")

    @classmethod
    def success_fault(cls) -> Fault:
        """A scripted answer that succeeds, to place among faults."""
        return lambda request: cls.success(request, cls.recipients(request))

    @staticmethod
    def success(request: httpx.Request, recipients: list[str]) -> httpx.Response:
        """A success that gives each number its own id, in the gateway's own form."""
        if request.method == "GET":
            return httpx.Response(200, json={n[1:]: f"id-{n[1:]}" for n in recipients})
        messages = [{"recipient": n, "messageid": f"id-{n[1:]}", "status": 200} for n in recipients]
        return httpx.Response(200, json={"status": 200, "description": "Success", "messages": messages})

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        """Record the request, then answer with the next fault or a success."""
        self.calls += 1
        recipients = self.recipients(request)
        self.sent.update(recipients)
        self.batches.append(len(recipients))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            if self.delay:
                await anyio.sleep(self.delay)
            fault = self.faults.pop(0) if self.faults else self.always
            if fault is None:
                return self.success(request, recipients)
            response = fault(request)
            if not isinstance(response, httpx.Response):
                response = await response
            return response
        finally:
            self.active -= 1


def raise_(cls: type[httpx.HTTPError]) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        raise cls(f"simulated {cls.__name__}", request=request)

    return fault


def respond(status: int, text: str = "", headers: dict[str, str] | None = None) -> Fault:
    def fault(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=text, headers=headers)

    return fault


def sleep_forever(request: httpx.Request) -> Awaitable[httpx.Response]:
    async def forever() -> httpx.Response:
        await anyio.sleep(30)
        return httpx.Response(200, text="Success Your MessageId is late")

    return forever()


def iton() -> Iton:
    return Iton(username="user1", password=PASSWORD)


def itecpay() -> ItecPay:
    return ItecPay("user1", PASSWORD, base_url="https://gateway.itecpay.example")


def sender(
    gateway: FakeGateway, *, driver=None, retry: RetryPolicy = FAST, concurrency: int = 4, **kw
) -> BulkSender:
    return BulkSender(
        driver or iton(),
        concurrency=concurrency,
        default_region="IN",
        retry=retry,
        transport=httpx.MockTransport(gateway),
        **kw,
    )


async def send(gateway: FakeGateway, recipients, text: str = "Hello", **kw) -> BulkResult:
    async with sender(gateway, **kw) as bulk:
        return await bulk.send(recipients, text, sender_id="ITONAB")


def assert_accounted(result: BulkResult, inputs: int) -> None:
    """Every input ends in exactly one outcome."""
    assert result.total == inputs
    assert result.total == len(result.message_ids) + len(result.failed) + sum(result.duplicates.values())
    assert not set(result.message_ids) & set(result.failed)
    assert sum(result.counts().values()) == inputs


def outcomes(result: BulkResult) -> Counter[Outcome]:
    return Counter(failure.outcome for failure in result.failed.values())
