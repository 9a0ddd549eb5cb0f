"""An SMS service on Starlette: one BulkSender for the process, a deadline per request, honest shutdown.

Run it with ``uvicorn service_app:app --timeout-graceful-shutdown 5``. It reads
``ITON_USERNAME``, ``ITON_PASSWORD``, ``ITON_URL`` (optional), ``SMS_CONCURRENCY``
(default 64) and ``SMS_SEND_TIMEOUT`` (seconds per request, default 10).

``POST /send`` with ``{"to": [...], "text": "...", "sender_id": "..."}`` answers
each number's outcome. Every call, answered or not (the client went away, the
server is shutting down), leaves one log line on the ``sms_service`` logger
with every number's outcome: that line is the record to reconcile from.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sms_async import BulkResult, BulkSender, Iton, Outcome, UsageError

logger = logging.getLogger("sms_service")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """One sender for the whole process: one pool, one concurrency limit, one 429 pause."""
    driver = Iton(
        os.environ["ITON_USERNAME"],
        os.environ["ITON_PASSWORD"],
        base_url=os.environ.get("ITON_URL", "https://sms.iton.in/ItonSMSAPI/smsService/api/"),
    )
    concurrency = int(os.environ.get("SMS_CONCURRENCY", "64"))
    async with BulkSender(driver, concurrency=concurrency, default_region="IN") as bulk:
        app.state.bulk = bulk
        app.state.send_timeout = float(os.environ.get("SMS_SEND_TIMEOUT", "10"))
        yield
        # Requests still running here were cancelled by the server (and logged their results):
        # stop whatever is left, give requests on the wire 5 s to answer, close the pool.
        await bulk.aclose(timeout=5)


async def send(request: Request) -> JSONResponse:
    """Send one text to the numbers given; answer each number's outcome."""
    body = await request.json()
    bulk: BulkSender = request.app.state.bulk
    result = BulkResult()  # filled as batches settle, so it is there even if this request is cancelled
    misuse: UsageError | None = None
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_on_disconnect, request, tg.cancel_scope)
            try:
                await bulk.send(
                    body["to"],
                    body["text"],
                    sender_id=body["sender_id"],
                    timeout=request.app.state.send_timeout,
                    into=result,
                )
            except UsageError as error:  # a bad sender id, an empty text: nothing was sent
                misuse = error
            tg.cancel_scope.cancel()  # the send is done: stop watching for a disconnect
    finally:
        # Answered, timed out, cut by a disconnect or by shutdown: the record is written either way.
        record = {"request": request.headers.get("x-request-id"), **outcomes(result, len(body["to"]))}
        logger.info("%s", json.dumps(record))
    if misuse is not None:
        return JSONResponse({"error": str(misuse)}, status_code=400)
    return JSONResponse(outcomes(result, len(body["to"])))


async def _cancel_on_disconnect(request: Request, scope: anyio.CancelScope) -> None:
    # The body has been read: the next ASGI message is the client going away.
    while (await request.receive())["type"] != "http.disconnect":
        pass
    scope.cancel()


def outcomes(result: BulkResult, given: int) -> dict[str, Any]:
    """Every number's outcome: accepted with its message id, or why not."""
    return {
        "aborted": type(result.aborted).__name__ if result.aborted is not None else None,
        # Numbers a cancelled call never read: never sent.
        "unread": given - result.total,
        "counts": {outcome.value: n for outcome, n in result.counts().items() if n},
        "accepted": result.message_ids,
        "failed": {number: failure.outcome.value for number, failure in result.failed.items()},
        # Safe to send again: nothing reached the gateway.
        "unsent": result.by_outcome(Outcome.UNSENT),
        # May have been sent: look them up before sending again.
        "unknown": result.by_outcome(Outcome.UNKNOWN),
    }


app = Starlette(routes=[Route("/send", send, methods=["POST"])], lifespan=lifespan)
