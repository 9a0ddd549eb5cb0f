"""What a campaign would send and cost, counted offline: no sender, no gateway, no credentials.

:meth:`BulkSender.estimate <sms_async.BulkSender.estimate>` asks an open
sender (and the gateway's balance); :func:`estimate_offline` reads the same
input through the same batcher without either, so that a dry run counts
exactly what a send would send: distinct valid numbers, repeats, invalid
inputs, parts and credits, and the warning a long text deserves.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from sms_async._batching import Batch, Batcher
from sms_async._message import Message, Template
from sms_async._models import Entry, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async.campaign._defaults import DEFAULT_GATEWAY, DEFAULT_REGION, parts_warning
from sms_async.campaign._tally import Tally
from sms_async.providers import gateway as gateway_class

__all__ = ["OfflineEstimate", "estimate_offline"]

_CHUNK: Final = 2048
_REPEATED: Final = "the same number as an earlier input"


@attrs.frozen
class OfflineEstimate:
    """What a campaign would send and cost; nothing was sent.

    Its counts come from a :class:`Tally` like a send's own, so a dry run and
    the send after it agree input for input.
    """

    #: Inputs read (every row or line that holds something).
    inputs: int
    #: Distinct valid numbers: the recipients a send would send to.
    recipients: int
    #: Credits: each recipient's parts, summed.
    cost: int
    #: The inputs settled without sending (``duplicate``, ``invalid``, with ``empty``)
    #: and the fewest and most parts per text.
    tally: Tally
    #: The one text every recipient gets; ``None`` for a text per recipient.
    message: Message | None
    #: Recipients by encoding (``GSM-7``, ``UCS-2``).
    encodings: Mapping[str, int]
    #: A few invalid inputs and why, in input order.
    invalid_samples: tuple[tuple[str, str], ...]
    #: The warning a text of many parts deserves (:func:`parts_warning`), if any.
    warning: str | None

    @property
    def duplicates(self) -> int:
        """Inputs that repeat an earlier number (in any spelling): sent once."""
        return self.tally[Outcome.DUPLICATE]

    @property
    def invalid(self) -> int:
        """Inputs that are no valid number (``tally.empty`` of them empty): never sent."""
        return self.tally[Outcome.INVALID]


def estimate_offline(
    recipients: Iterable[Any],
    text: str | Template,
    *,
    sender_id: str,
    region: str = DEFAULT_REGION,
    gateway: str = DEFAULT_GATEWAY,
    max_segments: int | None = None,
    option: str = "max_segments",
    samples: int = 5,
) -> OfflineEstimate:
    """Count what sending ``text`` to ``recipients`` would send and cost, reading them once; send nothing.

    ``recipients`` and ``text`` are as for :meth:`BulkSender.send
    <sms_async.BulkSender.send>`: numbers with one text, or mappings (CSV
    rows, such as a :class:`RecipientSource` with ``as_rows=True`` hands out)
    with a :class:`~sms_async.Template` (see :func:`template_for`). The input
    is cut into ``gateway``'s batches by the batcher a send uses; nothing
    else of the gateway is needed. ``option`` is how the warning names
    ``max_segments`` (``--max-segments`` on the command line).

    Raises:
        UsageError: the text, sender id or region is wrong (as a send would raise).
        RecipientsInputError: a :class:`RecipientSource` stopped being readable.
    """
    batcher = Batcher.for_text(
        PhoneNormaliser(region),
        gateway_class(gateway).max_batch,
        text,
        sender_id=sender_id,
        max_segments=max_segments,
    )
    tally = Tally()
    sent = cost = 0
    encodings: Counter[str] = Counter()
    invalid: list[tuple[str, str]] = []

    def count(batch: Batch) -> None:
        nonlocal sent, cost
        entries = _local_entries(batch)
        tally.count(entries)
        for entry in entries:
            if entry.outcome is Outcome.INVALID and len(invalid) < samples:
                invalid.append((entry.input, entry.reason))
        if batch.numbers and batch.message is not None:
            parts = batch.message.segments
            sent += len(batch.numbers)
            cost += parts * len(batch.numbers)
            tally.note_parts(parts, parts)
            encodings[batch.message.encoding.value] += len(batch.numbers)

    items = iter(recipients)
    while chunk := list(itertools.islice(items, _CHUNK)):
        for batch in batcher.feed(chunk):
            count(batch)
    for batch in batcher.finish():
        count(batch)
    return OfflineEstimate(
        inputs=batcher.read,
        recipients=sent,
        cost=cost,
        tally=tally,
        message=batcher.message,
        encodings=dict(encodings.most_common()),
        invalid_samples=tuple(invalid),
        warning=parts_warning(tally.most_parts, max_segments, option),
    )


def _local_entries(batch: Batch) -> list[Entry]:
    """The rows of the inputs a batch settles without sending."""
    entries = []
    for local in batch.local:
        position = batch.first + local.offset
        if local.failure is None:
            entries.append(Entry(position, local.raw, local.e164, Outcome.DUPLICATE, "", _REPEATED))
        else:
            entries.append(Entry(position, local.raw, "", local.failure.outcome, "", local.failure.reason))
    return entries
