"""What a stored delivery book does with polls' outcomes, written once for every store.

A store reads the numbers of the polled ids (with their states now) inside
its transaction, hands them here, and writes back what changes: the numbers
that move (by :func:`~sms_async.campaign.settle`) and, per id, when it is
due next (None once no number of it is pending).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sms_async.campaign._delivery import DeliveryState, NumberDelivery, PollOutcome, settle

__all__ = ["STATE_RANK_SQL", "apply_outcomes"]

#: SQL giving a delivery column's rank (pending 0, expired 1, final 2), ``{}`` being the column.
STATE_RANK_SQL = "(CASE {} WHEN 'pending' THEN 0 WHEN 'expired' THEN 1 ELSE 2 END)"


def apply_outcomes(
    outcomes: Sequence[PollOutcome], current: dict[str, dict[str, NumberDelivery]]
) -> tuple[dict[tuple[str, str], NumberDelivery], list[tuple[str, datetime | None]]]:
    """The numbers that change, by ``(message id, E.164)``, and each polled id's next poll.

    ``current`` holds the tracked numbers of the polled ids whose state may
    still move (pending or expired: a final state never changes, so a store
    need not read those), by id then number; it is updated as outcomes are
    applied, in order (an id polled twice in one call moves forward only). An
    id with no such number is due no more.
    """
    changed: dict[tuple[str, str], NumberDelivery] = {}
    due: list[tuple[str, datetime | None]] = []
    for outcome in outcomes:
        numbers = current.get(outcome.message_id)
        if numbers is None:
            # None of its numbers can move (each is final, or the id is not tracked): no poll more.
            due.append((outcome.message_id, None))
            continue
        changes = settle(numbers, outcome.reports, polled_at=outcome.polled_at, give_up=outcome.give_up)
        numbers.update(changes)
        for number, delivery in changes.items():
            changed[outcome.message_id, number] = delivery
        pending = any(d.state is DeliveryState.PENDING for d in numbers.values())
        due.append((outcome.message_id, outcome.next_poll_at if pending else None))
    return changed, due
