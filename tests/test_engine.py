"""Engine tests over httpx.MockTransport: batching, de-duplication, faults, limits and accounting."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal

import anyio
import anyio.lowlevel
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import (
    AuthenticationError,
    BatchResult,
    BulkResult,
    BulkSender,
    ConfigurationError,
    DeliveryStatus,
    EndpointError,
    InvalidMessageError,
    InvalidSenderIdError,
    ItecPay,
    Iton,
    Outcome,
    OutOfCreditError,
    RetryPolicy,
    SendTimeout,
    UnsupportedOperationError,
)
from sms_async._batching import Batcher
from sms_async._dispatch import Lane
from sms_async.instrumentation import BatchSettled

FAST = RetryPolicy(initial_wait=0.001, max_wait=0.01)
PASSWORD = "pw-engine-1"

Handler = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]
Fault = Callable[[httpx.Request], "httpx.Response | Awaitable[httpx.Response]"]


def numbers(count: int, start: int = 0) -> list[str]:
    """``count`` distinct valid Indian mobile numbers in E.164."""
    return [f"+9198{i:08d}" for i in range(start, start + count)]


# -- a small in-test gateway -----------------------------------------------------------------


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


# -- batching and de-duplication -------------------------------------------------------------


@pytest.mark.parametrize(("count", "sizes"), [(1, [1]), (100, [100]), (101, [100, 1]), (250, [100, 100, 50])])
async def test_chunking(count, sizes):
    """Recipients go out in batches of at most 100: 101 as 100 + 1, 250 as 100 + 100 + 50."""
    gateway = FakeGateway()
    result = await send(gateway, numbers(count))
    assert sorted(gateway.batches, reverse=True) == sizes
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(count)}
    assert result.batches == len(sizes)
    assert result.requests == len(sizes)
    assert_accounted(result, count)


async def test_itecpay_chunking_and_ids():
    """ItecPay batches of 100 get each recipient its own id from the per-recipient list."""
    gateway = FakeGateway()
    result = await send(gateway, numbers(150), driver=itecpay())
    assert sorted(gateway.batches) == [50, 100]
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(150)}
    assert_accounted(result, 150)


async def test_duplicates_across_spellings_are_sent_once():
    """`+919812345678`, `098123 45678` and `9812345678` (region IN) are one number, sent once."""
    gateway = FakeGateway()
    result = await send(gateway, ["+919812345678", "098123 45678", "9812345678"])
    assert gateway.sent == Counter({"+919812345678": 1})
    assert result.message_ids == {"+919812345678": "id-919812345678"}
    assert result.duplicates == {"+919812345678": 2}
    assert result.failed == {}
    assert_accounted(result, 3)


async def test_invalid_inputs_fail_as_invalid_and_are_never_sent():
    """Inputs that are not numbers end INVALID with a reason naming them; a repeat counts as duplicate."""
    gateway = FakeGateway()
    inputs = ["hello", "+919812345678", "12", "+91 98123", "hello"]
    result = await send(gateway, inputs)
    assert gateway.sent == Counter({"+919812345678": 1})
    assert set(result.failed) == {"hello", "12", "+91 98123"}
    for raw, failure in result.failed.items():
        assert failure.outcome is Outcome.INVALID
        assert raw in failure.reason
    assert result.duplicates == {"hello": 1}
    assert_accounted(result, 5)


async def test_only_invalid_inputs_make_no_request():
    """A run with no valid number accounts for every input without a request."""
    gateway = FakeGateway()
    result = await send(gateway, ["nope", "", "0"])
    assert gateway.calls == 0
    assert outcomes(result) == Counter({Outcome.INVALID: 3})
    assert_accounted(result, 3)


async def test_empty_input():
    """An empty recipient list gives an empty result and no request."""
    gateway = FakeGateway()
    result = await send(gateway, [])
    assert gateway.calls == 0
    assert_accounted(result, 0)
    assert result.ok


# -- faults of the retry table ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ConnectError),
        raise_(httpx.ConnectTimeout),
        raise_(httpx.PoolTimeout),
        respond(429, "slow down", {"Retry-After": "0.01"}),
        respond(503, "busy", {"Retry-After": "0.01"}),
        respond(503, "busy"),
    ],
    ids=["connect-error", "connect-timeout", "pool-timeout", "429", "503-retry-after", "503"],
)
async def test_safe_faults_are_retried_then_accepted(fault):
    """A fault that means "never processed" is retried, and the retry is accepted."""
    gateway = FakeGateway([fault])
    result = await send(gateway, numbers(3))
    assert gateway.calls == 2
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(3)}
    assert result.requests == 2
    assert result.retries == 1
    assert result.ok
    assert_accounted(result, 3)


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.ReadError),
        raise_(httpx.WriteError),
        raise_(httpx.WriteTimeout),
        raise_(httpx.RemoteProtocolError),
        respond(500, "Internal Server Error"),
        respond(502, "<html>Bad Gateway</html>"),
        respond(504, "Gateway Timeout"),
        respond(200, "<html><body>maintenance</body></html>"),
        respond(200, ""),
        respond(200, '{"id-1": '),
        respond(200, "Success"),
    ],
    ids=[
        "read-timeout",
        "read-error",
        "write-error",
        "write-timeout",
        "remote-protocol-error",
        "500",
        "502",
        "504",
        "200-html",
        "200-empty",
        "200-truncated-json",
        "200-success-without-id",
    ],
)
async def test_ambiguous_faults_are_unknown_and_never_resent(fault):
    """A fault after which the gateway may have sent is UNKNOWN, and no number is sent twice."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(150))
    assert gateway.calls == 2
    assert set(gateway.sent.values()) == {1}
    assert result.message_ids == {}
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 150})
    assert result.retries == 0
    assert_accounted(result, 150)


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.RemoteProtocolError),
        respond(500),
        respond(200, "<html></html>"),
    ],
    ids=["read-timeout", "remote-protocol-error", "500", "200-html"],
)
async def test_retry_ambiguous_opts_in_to_resending(fault):
    """With `retry_ambiguous=True` an ambiguous fault is re-sent, and the retry is accepted."""
    gateway = FakeGateway([fault])
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.01, retry_ambiguous=True)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 2
    assert gateway.sent == Counter(dict.fromkeys(numbers(3), 2))
    assert result.message_ids == {n: f"id-{n[1:]}" for n in numbers(3)}
    assert_accounted(result, 3)


@pytest.mark.parametrize(
    "fault",
    [respond(400, "Invalid sender id"), respond(200, "Invalid sender id"), respond(404, "No such command")],
    ids=["400", "200-text", "404"],
)
async def test_rejections_carry_the_gateway_words_and_are_not_retried(fault):
    """A refusal is REJECTED with the gateway's own words, after one request."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(3))
    assert gateway.calls == 1
    assert outcomes(result) == Counter({Outcome.REJECTED: 3})
    expected = fault(httpx.Request("GET", "https://x.example/")).text
    assert {failure.reason for failure in result.failed.values()} == {expected}
    assert result.aborted is None
    assert_accounted(result, 3)


async def test_itecpay_partial_rejection():
    """ItecPay recipients refused with status 400 are REJECTED with the description; the others keep ids."""
    refused = numbers(2)[1]

    def partial(request: httpx.Request) -> httpx.Response:
        messages = [
            {"recipient": n, "messageid": f"id-{n[1:]}", "status": 200}
            if n != refused
            else {"recipient": n, "status": 400, "description": "Number is on DND"}
            for n in FakeGateway.recipients(request)
        ]
        return httpx.Response(200, json={"status": 200, "messages": messages})

    gateway = FakeGateway(always=partial)
    result = await send(gateway, numbers(2), driver=itecpay())
    assert result.message_ids == {numbers(2)[0]: f"id-{numbers(2)[0][1:]}"}
    assert result.failed[refused].outcome is Outcome.REJECTED
    assert result.failed[refused].reason == "Number is on DND"
    assert_accounted(result, 2)


async def test_partial_json_answer_accounts_for_missing_numbers():
    """Numbers an ITON JSON answer leaves out are accounted for as failures, not dropped."""

    def partial(request: httpx.Request) -> httpx.Response:
        first = request.url.params["to"].split(",")[0]
        return httpx.Response(200, json={"only-id": first})

    gateway = FakeGateway(always=partial)
    result = await send(gateway, numbers(5))
    assert len(result.message_ids) == 1
    assert len(result.failed) == 4
    assert gateway.calls == 1
    assert_accounted(result, 5)


@pytest.mark.parametrize(
    ("fault", "error_type"),
    [
        (respond(200, "Invalid username or password"), AuthenticationError),
        (respond(200, "Login failed"), AuthenticationError),
        (respond(401, ""), AuthenticationError),
        (respond(200, "Insufficient credits"), OutOfCreditError),
        (respond(200, "Low balance"), OutOfCreditError),
    ],
    ids=["bad-password", "login-failed", "401", "no-credit", "low-balance"],
)
async def test_auth_and_credit_failures_abort_the_run(fault, error_type):
    """Bad credentials or no credit stop the run: at most `concurrency` requests, the rest UNSENT."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(1000), concurrency=4)
    assert isinstance(result.aborted, error_type)
    assert gateway.calls <= 4
    assert result.message_ids == {}
    assert outcomes(result) == Counter({Outcome.UNSENT: 1000})
    assert not result.ok
    with pytest.raises(error_type):
        result.raise_for_abort()
    assert_accounted(result, 1000)


async def test_abort_keeps_ids_already_issued():
    """Batches accepted before an abort keep their ids; the rest are UNSENT."""
    bad = respond(200, "Invalid username or password")
    gateway = FakeGateway([FakeGateway.success_fault(), FakeGateway.success_fault(), bad], always=bad)
    result = await send(gateway, numbers(500), concurrency=1)
    assert gateway.calls == 3
    assert len(result.message_ids) == 200
    assert outcomes(result) == Counter({Outcome.UNSENT: 300})
    assert isinstance(result.aborted, AuthenticationError)
    assert_accounted(result, 500)


async def test_itecpay_out_of_credit_aborts():
    """An ItecPay failure about balance aborts the run with OutOfCreditError."""
    gateway = FakeGateway(
        always=respond(200, json.dumps({"status": 400, "description": "Insufficient balance"}))
    )
    result = await send(gateway, numbers(300), driver=itecpay(), concurrency=2)
    assert isinstance(result.aborted, OutOfCreditError)
    assert gateway.calls <= 2
    assert outcomes(result) == Counter({Outcome.UNSENT: 300})
    assert_accounted(result, 300)


async def test_connect_errors_forever_end_unsent_after_the_attempts():
    """A gateway that never accepts a connection leaves the batch UNSENT after `attempts` tries."""
    gateway = FakeGateway(always=raise_(httpx.ConnectError))
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(5), retry=policy)
    assert gateway.calls == 3
    assert result.requests == 3
    assert result.retries == 2
    assert outcomes(result) == Counter({Outcome.UNSENT: 5})
    assert_accounted(result, 5)


async def test_retry_budget_caps_the_attempts_of_a_dead_gateway():
    """Retries across the run stop at the shared budget, whatever `attempts` allows per batch."""
    gateway = FakeGateway(always=raise_(httpx.ConnectError))
    policy = RetryPolicy(attempts=5, initial_wait=0.001, max_wait=0.01, budget_min=2, budget_ratio=0.0)
    result = await send(gateway, numbers(500), retry=policy, concurrency=2)
    assert result.batches == 5
    assert result.retries <= 2
    assert gateway.calls == result.requests == 5 + result.retries
    assert gateway.calls <= 5 * policy.attempts
    assert outcomes(result) == Counter({Outcome.UNSENT: 500})
    assert_accounted(result, 500)


async def test_busy_forever_ends_unsent():
    """A gateway that answers 429 to every try leaves the batch UNSENT: it was never processed."""
    gateway = FakeGateway(always=respond(429, "", {"Retry-After": "0.001"}))
    policy = RetryPolicy(attempts=3, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 3
    assert outcomes(result) == Counter({Outcome.UNSENT: 3})
    assert_accounted(result, 3)


async def test_deadline_with_the_request_in_flight_is_unknown():
    """A batch whose deadline passes while its request is in flight is UNKNOWN and not re-sent."""
    gateway = FakeGateway(always=sleep_forever)
    policy = RetryPolicy(deadline=0.2, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 1
    assert_accounted(result, 3)
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})


async def test_deadline_accounts_for_every_number():
    """Whatever the outcome it gives, a batch cut off by its deadline accounts for each number, sent once."""
    gateway = FakeGateway(always=sleep_forever)
    policy = RetryPolicy(deadline=0.2, initial_wait=0.001, max_wait=0.01)
    result = await send(gateway, numbers(3), retry=policy)
    assert gateway.calls == 1
    assert result.message_ids == {}
    assert len(result.failed) == 3
    assert_accounted(result, 3)


async def leave_stream_early() -> tuple[list[BatchResult], FakeGateway]:
    """Take one batch from a stream whose next requests never answer, close it; return what hooks saw."""
    settled: list[BatchResult] = []
    done = anyio.Event()

    class Hooks:
        def on_batch(self, record: BatchSettled) -> None:
            settled.append(record.result)
            if record.result.failed:
                done.set()

    gateway = FakeGateway([FakeGateway.success_fault()], always=sleep_forever)
    async with sender(gateway, concurrency=2, hooks=Hooks()) as bulk:
        batches = bulk.stream(numbers(200), "Hello", sender_id="ITONAB")
        async for _ in batches:
            break
        await batches.aclose()  # type: ignore[attr-defined]
        with anyio.fail_after(5):
            await done.wait()
    return settled, gateway


async def test_cancelled_in_flight_batch_is_unknown():
    """Leaving `stream()` while a request is in flight reports that batch to hooks as UNKNOWN."""
    settled, _ = await leave_stream_early()
    cut = [b for b in settled if b.failed]
    assert len(cut) == 1
    assert {f.outcome for f in cut[0].failed.values()} == {Outcome.UNKNOWN}


async def test_cancelled_stream_reports_every_number_to_hooks():
    """Leaving `stream()` early still reports every read number to hooks exactly once."""
    settled, gateway = await leave_stream_early()
    seen = Counter(n for b in settled for n in [*b.message_ids, *b.failed])
    assert set(seen) == set(numbers(200))
    assert set(seen.values()) == {1}
    assert gateway.sent == Counter(dict.fromkeys(numbers(200), 1))


# -- limits ------------------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 3])
async def test_concurrency_bound(concurrency):
    """No more than `concurrency` requests are ever in progress at once."""
    gateway = FakeGateway(delay=0.005)
    result = await send(gateway, numbers(1000), concurrency=concurrency)
    assert gateway.max_active <= concurrency
    assert gateway.calls == 10
    assert_accounted(result, 1000)


async def test_concurrency_is_used():
    """With room for several requests the sender does run them side by side."""
    gateway = FakeGateway(delay=0.02)
    await send(gateway, numbers(1000), concurrency=4)
    assert gateway.max_active > 1


async def test_concurrency_is_shared_by_concurrent_sends():
    """Two sends on one sender together stay within its `concurrency`."""
    gateway = FakeGateway(delay=0.005)
    async with sender(gateway, concurrency=3) as bulk, anyio.create_task_group() as tg:
        for start in (0, 5000):
            tg.start_soon(lambda s=start: bulk.send(numbers(600, s), "Hello", sender_id="ITONAB"))
    assert gateway.max_active <= 3
    assert gateway.calls == 12


# -- streaming and inputs --------------------------------------------------------------------


async def test_stream_totals_add_up():
    """The BatchResults `stream()` yields add up to every input, duplicates and invalid ones included."""
    gateway = FakeGateway()
    inputs = [*numbers(250), *numbers(10), "garbage", "garbage", "12"]
    total = accepted = 0
    async with sender(gateway) as bulk:
        async for batch in bulk.stream(inputs, "Hello", sender_id="ITONAB"):
            assert isinstance(batch, BatchResult)
            total += batch.total
            accepted += len(batch.message_ids)
    assert total == len(inputs)
    assert accepted == 250
    assert gateway.sent == Counter(dict.fromkeys(numbers(250), 1))


async def test_stream_keeps_compact_keys_and_send_keeps_its_strings(monkeypatch):
    """`stream()` de-duplicates in the compact key table from the first number, `send()` in a set."""
    made: list[Batcher] = []
    for_text = Batcher.for_text.__func__

    def spy(cls, *args, **kwargs):
        batcher = for_text(cls, *args, **kwargs)
        made.append(batcher)
        return batcher

    monkeypatch.setattr(Batcher, "for_text", classmethod(spy))
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        async for _ in bulk.stream([*numbers(150), *numbers(5)], "Hello", sender_id="ITONAB"):
            pass
        streamed = made[-1]
        await bulk.send(numbers(150, start=1000), "Hello", sender_id="ITONAB")
        sent = made[-1]
    assert streamed.distinct == 150
    assert streamed._seen._small is None
    assert sent._seen._small is not None
    assert gateway.sent == Counter(dict.fromkeys([*numbers(150), *numbers(150, start=1000)], 1))


async def test_a_worker_dispatches_its_batches_in_one_cancel_scope(monkeypatch):
    """A worker's batches share one lane (one cancel scope) while nothing stops the call."""
    lanes: list[Lane] = []
    make = Lane.__init__

    def counted(self):
        make(self)
        lanes.append(self)

    monkeypatch.setattr(Lane, "__init__", counted)
    gateway = FakeGateway()
    result = await send(gateway, numbers(1000), concurrency=1)
    assert_accounted(result, 1000)
    assert result.batches == 10
    assert len(lanes) == 1
    assert not lanes[0].spent
    assert gateway.sent == Counter(dict.fromkeys(numbers(1000), 1))


async def test_a_stopped_lane_is_left_and_the_worker_goes_on_in_a_new_one(monkeypatch):
    """A timeout spends the lane of the batch waiting its turn; the worker settles the rest in a new lane."""
    lanes: list[Lane] = []
    make = Lane.__init__

    def counted(self):
        make(self)
        lanes.append(self)

    monkeypatch.setattr(Lane, "__init__", counted)
    gateway = FakeGateway()
    async with sender(gateway, concurrency=1, messages_per_second=100) as bulk:
        result = await bulk.send(numbers(500), "Hello", sender_id="ITONAB", timeout=0.3)
    assert isinstance(result.aborted, SendTimeout)
    assert_accounted(result, 500)
    assert any(lane.spent for lane in lanes)
    assert len(lanes) >= 2
    assert not lanes[-1].spent
    assert set(result.message_ids) == set(gateway.sent)
    assert all(count == 1 for count in gateway.sent.values())
    assert len(result.message_ids) < 500


async def test_generator_input():
    """A plain generator is read as recipients."""

    def generate() -> Iterator[str]:
        yield from numbers(230)
        yield "not a number"

    gateway = FakeGateway()
    result = await send(gateway, generate())
    assert len(result.message_ids) == 230
    assert_accounted(result, 231)


async def test_async_generator_input():
    """An async generator is read as recipients."""

    async def generate():
        for n in numbers(230):
            await anyio.lowlevel.checkpoint()
            yield n
        yield numbers(1)[0]

    gateway = FakeGateway()
    result = await send(gateway, generate())
    assert len(result.message_ids) == 230
    assert result.duplicates == {numbers(1)[0]: 1}
    assert_accounted(result, 231)


async def test_non_string_inputs_are_read_as_text():
    """Integers and None from a CSV reader are read through str(): a valid int is sent, None is invalid."""
    gateway = FakeGateway()
    result = await send(gateway, [919812345678, None])
    assert result.message_ids == {"+919812345678": "id-919812345678"}
    assert result.failed["None"].outcome is Outcome.INVALID
    assert_accounted(result, 2)


async def test_two_concurrent_sends_get_their_own_results():
    """Two `send` calls running together on one sender each get exactly their own numbers back."""
    gateway = FakeGateway(delay=0.002)
    first, second = numbers(230, 0), numbers(170, 10_000)
    results: dict[str, BulkResult] = {}
    async with sender(gateway, concurrency=3) as bulk:

        async def run(name: str, recipients: list[str], text: str) -> None:
            results[name] = await bulk.send([*recipients, "bad"], text, sender_id="ITONAB")

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "first", first, "Hello")
            tg.start_soon(run, "second", second, "Hi there")
    assert set(results["first"].message_ids) == set(first)
    assert set(results["second"].message_ids) == set(second)
    assert set(results["first"].failed) == set(results["second"].failed) == {"bad"}
    assert_accounted(results["first"], 231)
    assert_accounted(results["second"], 171)
    assert gateway.sent == Counter(dict.fromkeys([*first, *second], 1))


async def test_one_sender_serves_consecutive_sends():
    """A sender can run one send after another, each starting its de-duplication afresh."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        one = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
        two = await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
    assert one.message_ids == two.message_ids
    assert gateway.sent == Counter(dict.fromkeys(numbers(3), 2))


# -- misuse --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sender_id", "error_type"),
    [
        ("", "ITONAB", InvalidMessageError),
        ("Hello", "ABCDEFGHIJKL", InvalidSenderIdError),
        ("Hello", "ITON-AB", InvalidSenderIdError),
        ("Hello", "ITON.AB!", InvalidSenderIdError),
        ("Hello", "1234567890123456", InvalidSenderIdError),
        ("Hello", "", InvalidSenderIdError),
    ],
    ids=[
        "empty-text",
        "12-letter-sender",
        "dash-sender",
        "punctuation-sender",
        "16-digit-sender",
        "empty-sender",
    ],
)
async def test_misuse_raises_before_any_request(text, sender_id, error_type):
    """Bad text or sender ids raise from `send` and `stream` before any request is made."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        with pytest.raises(error_type):
            await bulk.send(numbers(3), text, sender_id=sender_id)
        with pytest.raises(error_type):
            async for _ in bulk.stream(numbers(3), text, sender_id=sender_id):
                pass
    assert gateway.calls == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: Iton(username="u", password=PASSWORD, base_url="http://sms.example/api/"),
        lambda: ItecPay("u", PASSWORD, base_url="http://10.0.0.5:8080"),
    ],
    ids=["iton", "itecpay"],
)
def test_plain_http_to_a_remote_host_is_refused(make):
    """An http:// base URL to a non-loopback host raises ConfigurationError."""
    with pytest.raises(ConfigurationError):
        make()


async def test_sender_must_be_opened():
    """Using the sender without `async with` raises ConfigurationError and sends nothing."""
    gateway = FakeGateway()
    bulk = sender(gateway)
    with pytest.raises(ConfigurationError):
        await bulk.send(numbers(3), "Hello", sender_id="ITONAB")
    assert gateway.calls == 0


@pytest.mark.parametrize(
    "kwargs",
    [{"concurrency": 0}, {"http": "carrier-pigeon"}, {"http": "fast"}],
    ids=["zero-concurrency", "unknown-http", "fast-with-transport"],
)
def test_bad_sender_options(kwargs):
    """Impossible sender options raise ConfigurationError."""
    with pytest.raises(ConfigurationError):
        sender(FakeGateway(), **kwargs)


async def test_a_single_string_of_recipients_is_misuse():
    """Passing one string instead of a list of numbers raises ConfigurationError from `send`."""
    gateway = FakeGateway()
    async with sender(gateway) as bulk:
        with pytest.raises(ConfigurationError):
            await bulk.send("+919812345678", "Hello", sender_id="ITONAB")
    assert gateway.calls == 0


async def test_unreadable_deep_json_is_unknown():
    """A 200 holding JSON nested too deeply to read is UNKNOWN, and every input is accounted for."""
    gateway = FakeGateway(always=respond(200, '{"a":' + "[" * 100_000))
    result = await send(gateway, numbers(3))
    assert result.aborted is None
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})
    assert_accounted(result, 3)


# -- trio ---------------------------------------------------------------------------------------
# pytest-asyncio's auto mode runs every `async def` test on asyncio, even one marked
# `anyio`, so these tests drive their backend themselves with anyio.run.


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


def test_send_on_each_backend(anyio_backend):
    """Batching, duplicates, a retried connect error and an invalid input work on asyncio and trio."""
    gateway = FakeGateway([raise_(httpx.ConnectError)])
    inputs = [*numbers(150), "+919800000000", "nonsense"]
    result = anyio.run(lambda: send(gateway, inputs), backend=anyio_backend)
    assert len(result.message_ids) == 150
    assert result.duplicates == {"+919800000000": 1}
    assert result.failed["nonsense"].outcome is Outcome.INVALID
    assert gateway.calls == 3
    assert_accounted(result, 152)


def test_ambiguous_fault_on_each_backend(anyio_backend):
    """A read timeout is UNKNOWN and not re-sent on asyncio and trio alike."""
    gateway = FakeGateway(always=raise_(httpx.ReadTimeout))
    result = anyio.run(lambda: send(gateway, numbers(3)), backend=anyio_backend)
    assert gateway.calls == 1
    assert outcomes(result) == Counter({Outcome.UNKNOWN: 3})
    assert_accounted(result, 3)


# -- property ------------------------------------------------------------------------------------

# Each valid number in several spellings (region IN), and inputs that are never valid.
NATIONAL = [f"98{i:08d}" for i in range(0, 400, 7)]
VALID = {
    f"+91{n}": [f"+91{n}", f"0{n}", n, f"91{n}", f"+91 {n[:5]} {n[5:]}", f"0{n[:5]}-{n[5:]}"]
    for n in NATIONAL
}
INVALID = ["", "abc", "12", "+1", "+91 12", "0000000000", "+999999999999", "tel:nope", "98123"]
SPELLINGS = [(e164, spelling) for e164, spellings in VALID.items() for spelling in spellings] + [
    (None, bad) for bad in INVALID
]


@given(st.lists(st.sampled_from(SPELLINGS), max_size=260))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_input_is_accounted_for(picks):
    """Any mix of valid, invalid and repeated inputs is all accounted for, each number sent once."""
    gateway = FakeGateway()
    inputs = [spelling for _, spelling in picks]
    result = asyncio.run(send(gateway, inputs, concurrency=3))
    distinct = {e164 for e164, _ in picks if e164 is not None}
    assert_accounted(result, len(inputs))
    assert gateway.sent == Counter(dict.fromkeys(distinct, 1))
    assert set(result.message_ids) == distinct
    assert {key for key, f in result.failed.items() if f.outcome is Outcome.INVALID} == {
        s for e164, s in picks if e164 is None
    }
    assert sum(result.duplicates.values()) == len(inputs) - len(distinct) - len(result.failed)


# -- look-ups ----------------------------------------------------------------------------------------


def lookup_gateway(
    faults: list[Fault] | None = None,
) -> tuple[Callable[[httpx.Request], object], Counter[str]]:
    """An ITON fake for `account`, `message_status` and `check_DNDnumber`, with scripted faults first."""
    script = list(faults or [])
    calls: Counter[str] = Counter()

    def handler(request: httpx.Request) -> httpx.Response:
        command = request.url.params["cmd"]
        calls[command] += 1
        if script:
            return script.pop(0)(request)
        if command == "account":
            return httpx.Response(200, text="Remaining_Credits: 417")
        if command == "message_status":
            ids = request.url.params["ids"].split(",")
            body = {i: {"phoneNumberWithRespectiveStatus": {"919812345678": "DELIVIRED"}} for i in ids}
            return httpx.Response(200, json=body)
        if command == "check_DNDnumber":
            listed = request.url.params["phoneNumbers"].split(",")
            return httpx.Response(200, json={n: n.endswith("9") for n in listed})
        return httpx.Response(400, text="Unknown command")

    return handler, calls


def lookup_sender(handler, driver=None) -> BulkSender:
    return BulkSender(
        driver or iton(), default_region="IN", retry=FAST, transport=httpx.MockTransport(handler)
    )


async def test_balance_status_and_dnd_lookups():
    """balance(), delivery_reports() and check_dnd() read the ITON answers into values."""
    handler, calls = lookup_gateway()
    async with lookup_sender(handler) as bulk:
        assert await bulk.balance() == Decimal(417)
        reports = await bulk.delivery_reports([f"id-{i}" for i in range(150)] + ["id-0"])
        dnd = await bulk.check_dnd(["+919032728149", "098123 45678"])
    assert len(reports) == 150
    assert {r.status for r in reports} == {DeliveryStatus.DELIVERED}
    assert {r.raw for r in reports} == {"DELIVIRED"}
    assert calls["message_status"] == 2
    assert dnd == {"+919032728149": True, "+919812345678": False}


@pytest.mark.parametrize(
    "fault",
    [
        raise_(httpx.ReadTimeout),
        raise_(httpx.ConnectError),
        respond(500),
        respond(503),
        respond(200, "<html>"),
    ],
    ids=["read-timeout", "connect-error", "500", "503", "200-html"],
)
async def test_lookups_are_retried_on_any_transient_fault(fault):
    """A look-up changes nothing at the gateway, so even an ambiguous fault is retried."""
    handler, calls = lookup_gateway([fault])
    async with lookup_sender(handler) as bulk:
        assert await bulk.balance() == Decimal(417)
    assert calls["account"] == 2


async def test_status_lookup_failing_for_good_gives_unknown_reports():
    """A status look-up that keeps failing gives UNKNOWN reports saying why, not an exception."""
    handler, _ = lookup_gateway([raise_(httpx.ConnectError)] * 10)
    async with lookup_sender(handler) as bulk:
        reports = await bulk.delivery_reports(["id-1", "id-2"])
    assert [r.message_id for r in reports] == ["id-1", "id-2"]
    assert {r.status for r in reports} == {DeliveryStatus.UNKNOWN}
    assert all(r.error for r in reports)


async def test_itecpay_has_no_balance_or_dnd():
    """ItecPay's balance and DND look-ups raise UnsupportedOperationError before any request."""
    handler, calls = lookup_gateway()
    async with lookup_sender(handler, driver=itecpay()) as bulk:
        with pytest.raises(UnsupportedOperationError):
            await bulk.balance()
        with pytest.raises(UnsupportedOperationError):
            await bulk.check_dnd(["+919032728149"])
        with pytest.raises(UnsupportedOperationError):
            await bulk.send(numbers(3), "Hello", sender_id="ITONAB", skip_dnd=True)
    assert sum(calls.values()) == 0


async def test_errors_raised_inside_the_sender_block_are_not_wrapped():
    """An error raised inside ``async with BulkSender`` comes out as itself, not in an ExceptionGroup."""
    driver = ItecPay("u", "pass", base_url="http://127.0.0.1:9")
    with pytest.raises(UnsupportedOperationError):
        async with BulkSender(driver) as bulk:
            await bulk.balance()
    with pytest.raises(KeyError):
        async with BulkSender(driver):
            raise KeyError("mine")


# -- a wrong endpoint --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        (respond(404, "Not Found"), Outcome.REJECTED),
        (respond(405, "Method Not Allowed"), Outcome.REJECTED),
        (respond(200, "<html><body>Welcome</body></html>", {"content-type": "text/html"}), Outcome.UNKNOWN),
    ],
    ids=["404", "405", "html-page"],
)
async def test_a_wrong_endpoint_stops_the_run_after_the_first_batches(fault, outcome):
    """The first three batches all answered as by a wrong address stop the run; the rest is unsent."""
    gateway = FakeGateway(always=fault)
    result = await send(gateway, numbers(2000), concurrency=1)
    assert_accounted(result, 2000)
    assert isinstance(result.aborted, EndpointError)
    assert "check base_url" in result.aborted.reason
    assert gateway.calls == 3
    assert outcomes(result) == {outcome: 300, Outcome.UNSENT: 1700}


async def test_a_wrong_endpoint_answer_after_a_success_does_not_stop_the_run():
    """A 404 after a good first answer is a rejection like any other: the run goes on."""
    gateway = FakeGateway([FakeGateway.success_fault()], always=respond(404, "Not Found"))
    result = await send(gateway, numbers(600), concurrency=1)
    assert result.aborted is None
    assert gateway.calls == 6
    assert outcomes(result) == {Outcome.REJECTED: 500}
