"""Type-checked, never run: the public API as a user writes it (``mypy --strict``)."""

from decimal import Decimal

import httpx

from sms_async import (
    BatchResult,
    BulkResult,
    BulkSender,
    CallStopped,
    DeliveryReport,
    DeliveryStatus,
    ItecPay,
    Iton,
    Outcome,
    RetryPolicy,
    SendCancelled,
    SenderClosed,
    SenderStats,
    SendTimeout,
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
