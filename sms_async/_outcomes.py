"""How an answer, or an error, becomes each number's outcome (pure: no I/O, no state).

The dispatch calls these once a batch's tries are over; they are here so that
the rules read in one place: which error means ``unsent`` (safe to send
again), ``unknown`` (may have been sent) or ``rejected``, and what counts as a
wrong-endpoint answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from sms_async import _exceptions as exc
from sms_async._models import BatchResult, Failure, Outcome
from sms_async._wire import WireResponse
from sms_async.providers._base import SendAnswer

__all__ = [
    "FIRST_BATCHES",
    "LOST_REASON",
    "SKIPPED",
    "outcome_of",
    "record_answer",
    "wrong_endpoint",
]

LOST_REASON: Final = (
    "the run stopped (crash or kill) while this batch was being sent: it may or may not have been sent, "
    "and sending it again may send it twice"
)
_MISSING_ID: Final = Failure(
    Outcome.REJECTED, "the gateway accepted the request but issued no id for this number"
)
SKIPPED: Final = Failure(Outcome.SKIPPED, "on the do-not-disturb list")

# The first batches of a run that all failing with the same wrong-endpoint
# answer stop it: it is the address that is wrong, not the recipients.
FIRST_BATCHES: Final = 3
_WRONG_ENDPOINT_STATUSES: Final = frozenset({301, 302, 303, 307, 308, 404, 405, 410})


def wrong_endpoint(response: WireResponse) -> str | None:
    """Say how an answer looks like a wrong address, from its HTTP status and content type alone."""
    if response.status in _WRONG_ENDPOINT_STATUSES:
        return f"HTTP {response.status}"
    if "text/html" in response.headers.get("content-type", "").lower():
        return f"an HTML page (HTTP {response.status})"
    return None


def record_answer(result: BatchResult, numbers: Sequence[str], answer: SendAnswer) -> None:
    result.raw = answer.raw
    result.message_ids = answer.accepted
    if not answer.rejected and not answer.unknown and len(answer.accepted) == len(numbers):
        return
    failed = result.failed
    by_reason: dict[str, Failure] = {}
    for number, reason in answer.rejected.items():
        shared = by_reason.get(reason)
        if shared is None:
            shared = by_reason[reason] = Failure(Outcome.REJECTED, reason)
        failed[number] = shared
    for number, reason in answer.unknown.items():
        failed[number] = Failure(Outcome.UNKNOWN, reason)
    for number in numbers:
        if number not in answer.accepted and number not in failed:
            failed[number] = _MISSING_ID


def outcome_of(error: exc.SmsError) -> Outcome:
    if isinstance(error, exc.GatewayError) and error.aborts_run:
        return Outcome.UNSENT  # refused up front: safe to send again with good credentials
    if isinstance(error, exc.NotSentError | exc.GatewayBusyError):
        return Outcome.UNSENT
    if isinstance(error, exc.MaybeSentError | exc.AmbiguousResponseError):
        return Outcome.UNKNOWN
    if isinstance(error, exc.GatewayError):
        return Outcome.REJECTED
    return Outcome.UNKNOWN
