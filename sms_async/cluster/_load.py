"""``create_campaign``: recipients into the store, streamed, through the one batcher.

The input is read once, in chunks, and cut by :class:`~sms_async._batching.Batcher`
exactly as a single-process ``send`` of the same input would cut it (the same
normalisation, de-duplication, batches and indexes). Inputs settled without
sending (invalid, repeated) get their rows at once; the numbers to send are
stored with their batch, pending. Rows go to PostgreSQL with COPY, a few
thousand at a time, so memory holds one flush of rows plus the batcher's
compact de-duplication keys, whatever the size of the input.

The whole load is one transaction: a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from sms_async._batching import Batch, Batcher, Recipients, read_chunks
from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._exceptions import ConfigurationError, UnsupportedOperationError
from sms_async._journal import BatchState, numbers_digest
from sms_async._message import Template
from sms_async._models import Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import redact
from sms_async.campaign import (
    DEFAULT_GATEWAY,
    DEFAULT_REGION,
    CampaignError,
    InputRows,
    Loading,
    Schedule,
    Store,
    StoredCampaign,
    StoreUnavailableError,
    no_input_message,
)
from sms_async.providers import gateway

__all__ = ["DEFAULT_QUEUE", "DEFAULT_SHARD_SIZE", "CampaignSpec", "create_campaign"]

#: Batches per shard (one Celery task each) unless asked otherwise.
DEFAULT_SHARD_SIZE: Final = 200
#: The Celery queue of campaigns unless asked otherwise.
DEFAULT_QUEUE: Final = "sms_async"
# Input rows written per COPY.
_FLUSH: Final = 20_000
# Parameter names that sound like a credential (as the drivers judge them).
_SECRET_NAME: Final = re.compile(r"pass|secret|token|key|auth|sign", re.IGNORECASE)


def _rate(_inst: object, _attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is not None and (isinstance(value, bool) or not value > 0 or math.isinf(value)):
        raise ConfigurationError(f"the rate must be a number of messages a second > 0, got {value!r}")


def _at_least_one(_inst: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{attribute.name} must be a whole number >= 1, got {value!r}")


def _windows(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _share(_inst: object, _attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not 0 < value <= 1:
        raise ConfigurationError(f"the report share must be > 0 and <= 1, got {value!r}")


def _as_dict(value: Mapping[str, str] | None) -> dict[str, str]:
    return dict(value or {})


def _not_secret(_inst: object, _attribute: attrs.Attribute[dict[str, str]], value: dict[str, str]) -> None:
    for name, param in value.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(param, str):
            raise ConfigurationError(f"a gateway parameter is a name and a text value, got {name!r}")
        if _SECRET_NAME.search(name):
            raise ConfigurationError(
                f"the parameter {name!r} sounds like a credential, and the campaign store holds none: put it "
                "in each worker's config file (the gateway's [NAME.params] section) instead"
            )


def _queue(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not value or not value.isprintable() or len(value) > 200:
        raise ConfigurationError(f"the queue must be a short printable name, got {value!r}")


@attrs.frozen
class CampaignSpec:
    """What a campaign sends and how fast; never who sends it (workers bring their own account).

    Args:
        text: The one text every recipient gets, or a :class:`~sms_async.Template`
            that makes each recipient's text from their row (the recipients are
            then mappings, such as CSV rows).
        sender_id: The sender id.
        gateway: The registered gateway's name (``iton``, ``itecpay``).
        params: Extra request parameters of every send (such as India's DLT
            ids), stored with the campaign; a name that sounds like a
            credential is refused (workers keep those in their own config).
        region: The region of national spellings (``IN`` reads ``098123 45678``).
        rate: Messages a second at the gateway, across every worker; ``None``: no limit.
        skip_dnd: Look up the do-not-disturb list first and skip listed numbers.
        max_segments: Refuse the text if it needs more SMS parts.
        queue: The Celery queue its shards go to (workers with the right account listen on it).
        input_name: Where the recipients came from, for people reading the status.
        shard_size: Batches per shard (one Celery task each).
        windows: Daily sending windows (``"09:00-21:00"``, several allowed); none: any hour.
        timezone: The windows' IANA zone (required with windows).
        start_at: No batch is claimed before this time (ISO 8601 with an offset, or an aware datetime).
        report_share: The share of the account's rate and concurrency delivery polls may take.
    """

    text: str | Template
    sender_id: str
    gateway: str = DEFAULT_GATEWAY
    params: Mapping[str, str] = attrs.field(factory=dict, converter=_as_dict, validator=_not_secret)
    region: str = DEFAULT_REGION
    rate: float | None = attrs.field(default=None, validator=_rate)
    skip_dnd: bool = False
    max_segments: int | None = None
    queue: str = attrs.field(default=DEFAULT_QUEUE, validator=_queue)
    input_name: str = "-"
    shard_size: int = attrs.field(default=DEFAULT_SHARD_SIZE, validator=_at_least_one)
    windows: tuple[str, ...] = attrs.field(default=(), converter=_windows)
    timezone: str | None = None
    start_at: str | datetime | None = None
    report_share: float = attrs.field(default=0.1, validator=_share)


def _by_position(position: int) -> tuple[int, tuple[str, ...]]:
    return position, ()


def _clean(text: str) -> str:
    # PostgreSQL text cannot hold NUL; an input holding one is invalid anyway.
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


class _Writer:
    """Turns batches into input and batch rows, and writes them with COPY a flush at a time."""

    def __init__(
        self,
        loading: Loading,
        shard_size: int,
        rows: InputRows | None,
        *,
        personal: bool,
    ) -> None:
        self._loading = loading
        self._campaign = loading.campaign
        self._shard_size = shard_size
        self._personal = personal
        # Asked once for each position, in order, so that a reader forgets as it goes.
        self._take: Callable[[int], tuple[int, Any]] = rows.take if rows else _by_position
        self._keeps = bool(rows and rows.columns)
        self._inputs: list[tuple[Any, ...]] = []
        self._batches: list[tuple[Any, ...]] = []
        self.batches = 0

    def row(self, position: int) -> tuple[int, list[str] | None]:
        number, kept = self._take(position)
        return number, [_clean(value) for value in kept] if self._keeps else None

    async def add(self, batch: Batch) -> None:
        campaign, inputs, row = self._campaign, self._inputs, self.row
        invalid = duplicate = 0
        if not batch.local:
            inputs.extend(
                (campaign, position, *row(position), raw, e164, None, None)
                for position, raw, e164 in zip(
                    range(batch.first, batch.first + len(batch.numbers)),
                    batch.inputs,
                    batch.numbers,
                    strict=True,
                )
            )
        else:
            settled_here = {local.offset for local in batch.local}
            for entry in batch.to_result().entries():
                position = entry.position
                if position - batch.first in settled_here:
                    inputs.append(
                        (
                            campaign,
                            position,
                            *row(position),
                            _clean(entry.input),
                            entry.e164,
                            entry.outcome.value,
                            _clean(entry.reason),
                        )
                    )
                    invalid += entry.outcome is Outcome.INVALID
                    duplicate += entry.outcome is Outcome.DUPLICATE
                else:
                    inputs.append((campaign, position, *row(position), entry.input, entry.e164, None, None))
        # A batch of settled inputs only has nothing to send: it is settled now, as state_of says.
        state = BatchState.PENDING if batch.numbers else BatchState.SENT
        message = batch.message if batch.numbers else None
        text = message.text if message is not None and self._personal else None
        self._batches.append(
            (
                campaign,
                batch.index,
                batch.index // self._shard_size,
                batch.first,
                batch.size,
                len(batch.numbers),
                text,
                message.segments if message is not None else 0,
                numbers_digest(batch.numbers, text),
                state.value,
                not batch.numbers,
                invalid,
                duplicate,
                invalid,
                duplicate,
            )
        )
        self.batches += 1
        if len(inputs) >= _FLUSH:
            await self.flush()

    async def flush(self) -> None:
        await self._loading.write(self._inputs, self._batches)
        self._inputs.clear()
        self._batches.clear()


def _checked(spec: CampaignSpec) -> tuple[Batcher, int]:
    """The campaign's batcher and batch size, or the usage error that stops it."""
    driver_class = gateway(spec.gateway)
    if spec.skip_dnd and not driver_class.capabilities.dnd:
        raise UnsupportedOperationError(
            f"{spec.gateway} has no do-not-disturb look-up: create the campaign without skip_dnd"
        )
    max_batch = int(driver_class.max_batch)
    batcher = Batcher.for_text(
        PhoneNormaliser(spec.region),
        max_batch,
        spec.text,
        sender_id=spec.sender_id,
        max_segments=spec.max_segments,
    )
    return batcher, max_batch


async def create_campaign(
    store: Store,
    spec: CampaignSpec,
    recipients: Recipients,
    *,
    rows: InputRows | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> StoredCampaign:
    """Load ``recipients`` (numbers, from any iterable or async iterable) as a new campaign, ready to start.

    ``rows`` says where each input came from (its line, or its CSV row), for
    the ``row`` of its results row, as a single-machine campaign's reader does;
    by default rows are numbered by position.

    Creates the store's tables if they are missing. Raises the usage error of
    a bad text, sender id, region or gateway before reading anything, and
    :class:`CampaignError` for an input with no recipient in it; on any error
    nothing is stored. A sending window, zone or start time that cannot be
    kept (malformed, of zero length, unknown, in the past by ``clock``) is a
    :class:`~sms_async.campaign.ScheduleError`.
    """
    schedule = Schedule.create(spec.windows or None, spec.timezone, start_at=spec.start_at, now=clock.now())
    batcher, max_batch = _checked(spec)
    personal = isinstance(spec.text, Template)
    await store.install()
    params = {
        "gateway": spec.gateway,
        "region": spec.region,
        "sender_id": spec.sender_id,
        "text": spec.text.text if isinstance(spec.text, Template) else spec.text,
        "personal": personal,
        "params": json.dumps(spec.params),
        "columns": list(rows.columns) if rows is not None else [],
        "max_segments": spec.max_segments,
        "skip_dnd": spec.skip_dnd,
        "rate": spec.rate,
        "queue": spec.queue,
        "input_name": spec.input_name,
        "max_batch": max_batch,
        "shard_size": spec.shard_size,
        "windows": schedule.windows_spec,
        "timezone": schedule.zone_name,
        "start_at": schedule.start_at_iso,
        "report_share": spec.report_share,
    }
    try:
        campaign = await _load(store, spec, batcher, params, recipients, rows)
    except Exception as error:
        if _lost_connection(error):
            raise StoreUnavailableError(
                f"the campaign store was lost while loading the campaign ({redact(str(error))[:200]}); "
                "nothing was stored: create it again"
            ) from None
        raise
    return await store.campaign(campaign)


async def _load(
    store: Store,
    spec: CampaignSpec,
    batcher: Batcher,
    params: dict[str, Any],
    recipients: Recipients,
    rows: InputRows | None,
) -> int:
    async with store.loading(params) as loading:
        writer = _Writer(loading, spec.shard_size, rows, personal=isinstance(spec.text, Template))
        async with contextlib.aclosing(read_chunks(recipients)) as chunks:
            async for chunk in chunks:
                for batch in batcher.feed(chunk):
                    await writer.add(batch)
        for batch in batcher.finish():
            await writer.add(batch)
        await writer.flush()
        if not batcher.read:
            raise CampaignError(no_input_message(spec.input_name if spec.input_name != "-" else ""))
        await loading.loaded(batcher.read, batcher.distinct, writer.batches)
    return loading.campaign


def _lost_connection(error: BaseException) -> bool:
    """Whether ``error`` is a PostgreSQL store's lost connection (only such a store can lose one mid-load)."""
    if "psycopg" not in sys.modules:
        return False  # no PostgreSQL store was ever opened in this process
    from sms_async.cluster._store import is_transient  # noqa: PLC0415 - psycopg, only once it is in use

    return is_transient(error)
