"""``create_campaign``: recipients into the store, streamed, through the one batcher.

The input is read once, in chunks, and cut by :class:`~sms_async._batching.Batcher`
exactly as a single-process ``send`` of the same input would cut it (the same
normalisation, de-duplication, batches and indexes). Inputs settled without
sending (invalid, repeated) get their rows at once; the numbers to send are
stored with their batch, pending. In PostgreSQL the input rows go through one
COPY, streamed in its text format as the input is read, and the batches'
rows (one for about a hundred inputs, kept until then) through a second one;
memory holds a few thousand input rows, the batches' rows and the batcher's
compact de-duplication keys. A store without COPY (SQLite) is handed row
tuples a few thousand at a time.

The whole load is one transaction: a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import operator
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Final

import attrs

from sms_async._batching import Batch, Batcher, Recipients, read_chunks
from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._exceptions import ConfigurationError, UnsupportedOperationError
from sms_async._journal import BatchState, numbers_digest
from sms_async._message import Template
from sms_async._models import BatchResult, Failure, LocalInput, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import redact
from sms_async.campaign import (
    DEFAULT_GATEWAY,
    DEFAULT_REGION,
    CampaignError,
    InputRows,
    Loading,
    RecipientSource,
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
            for local in batch.local:
                if local.failure is not None:
                    _drop_traceback(local.failure)
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


# Escapes of COPY's text format; NUL, which PostgreSQL text cannot hold, goes as _clean puts it.
_SPECIAL: Final = re.compile(r"[\\\t\n\r\x00]")
_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})
# Input lines sent to COPY at a time.
_COPY_LINES: Final = 4_000
_NULL: Final = "\\N"
_TEXT_ESCAPES: Final = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_DUPLICATE: Final = Outcome.DUPLICATE.value
# The reason a repeated number's row gives, as a results row gives it.
_REPEATED: Final = next(BatchResult(local=[LocalInput(0, "", "", None)]).entries()).reason


def _drop_traceback(failure: Failure) -> None:
    """Free ``failure``'s error of its traceback (a stored row keeps only the error's words).

    The traceback's frames hold the batch: left there, each batch with an
    invalid input is a cycle that only the cyclic garbage collector frees,
    which then runs every few batches and scans them all.
    """
    if failure.error is not None:
        failure.error.__traceback__ = None


def _text(value: str) -> str:
    """``value`` as a field of COPY's text format (a NUL as _clean writes it)."""
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _array(values: Sequence[str]) -> str:
    """``values`` as a text[] field of COPY's text format."""
    quoted = ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' for value in values)
    return _text("{" + ",".join(quoted) + "}")


class _CopyWriter:
    """Turns batches into the lines of one COPY of inputs, and keeps the batches' lines for a COPY after it.

    The same rows as :class:`_Writer` writes, in COPY's text format: the
    inputs stream to the server while the input is still being read, with no
    round trip between flushes; the batches (one line for about a hundred
    inputs) follow once every input is in.
    """

    def __init__(self, campaign: int, shard_size: int, rows: InputRows | None, *, personal: bool) -> None:
        self._prefix = f"{campaign}\t"
        self._shard_size = shard_size
        self._personal = personal
        self._take = rows.take if rows else None
        self._keeps = bool(rows and rows.columns)
        # A reader that tells the rows of many positions at once.
        self._take_rows = rows.take_rows if isinstance(rows, RecipientSource) and not self._keeps else None
        self._lines: list[str] = []
        self._batches: list[str] = []
        #: The batches' lines, a block of them a string.
        self.batch_blocks: list[str] = []
        self.write: Callable[[str], Awaitable[None]] | None = None
        self.batches = 0

    def _heads(self, first: int, size: int) -> list[str]:
        """The campaign, position, row and kept columns of positions ``first ..``, each followed by a tab."""
        prefix, take = self._prefix, self._take
        positions = range(first, first + size)
        if take is None:
            return [f"{prefix}{position}\t{position}\t\\N\t" for position in positions]
        if self._take_rows is not None:
            rows = self._take_rows(first, size)
            return [
                f"{prefix}{position}\t{row}\t\\N\t" for position, row in zip(positions, rows, strict=True)
            ]
        if not self._keeps:
            return [f"{prefix}{position}\t{take(position)[0]}\t\\N\t" for position in positions]
        heads = []
        for position in positions:
            number, kept = take(position)
            heads.append(f"{prefix}{position}\t{number}\t{_array([_clean(value) for value in kept])}\t")
        return heads

    async def add(self, batch: Batch) -> None:
        numbers, inputs, local = batch.numbers, batch.inputs, batch.local
        heads = self._heads(batch.first, batch.size)
        if _SPECIAL.search("".join(inputs)):
            inputs = [_text(raw) for raw in inputs]
        invalid = duplicate = 0
        if not local:
            lines = [
                f"{head}{raw}\t{e164}\t\\N\t\\N\n"
                for head, raw, e164 in zip(heads, inputs, numbers, strict=True)
            ]
        else:
            settled_here = {entry.offset for entry in local}
            sent_heads = [head for offset, head in enumerate(heads) if offset not in settled_here]
            lines = [
                f"{head}{raw}\t{e164}\t\\N\t\\N\n"
                for head, raw, e164 in zip(sent_heads, inputs, numbers, strict=True)
            ]
            # In offset order, so each lands where the inputs before it already are.
            for entry in local:
                failure = entry.failure
                if failure is None:
                    outcome, e164, reason = _DUPLICATE, entry.e164, _REPEATED
                    duplicate += 1
                else:
                    _drop_traceback(failure)
                    outcome, e164, reason = failure.outcome.value, "", _text(failure.reason)
                    invalid += failure.outcome is Outcome.INVALID
                    duplicate += failure.outcome is Outcome.DUPLICATE
                lines.insert(
                    entry.offset, f"{heads[entry.offset]}{_text(entry.raw)}\t{e164}\t{outcome}\t{reason}\n"
                )
        self._lines += lines
        self._batch_line(batch, invalid, duplicate)
        if len(self._lines) >= _COPY_LINES:
            await self.flush()

    def _batch_line(self, batch: Batch, invalid: int, duplicate: int) -> None:
        numbers = batch.numbers
        # A batch of settled inputs only has nothing to send: it is settled now, as state_of says.
        state = BatchState.PENDING if numbers else BatchState.SENT
        message = batch.message if numbers else None
        text = message.text if message is not None and self._personal else None
        parts = message.segments if message is not None else 0
        # A NUL in a text is sent as it is, and refused by the server as before: the digest covers the text.
        text_field = _NULL if text is None else text.translate(_TEXT_ESCAPES)
        self._batches.append(
            f"{self._prefix}{batch.index}\t{batch.index // self._shard_size}\t{batch.first}\t{batch.size}\t"
            f"{len(numbers)}\t{text_field}\t{parts}\t"
            f"{numbers_digest(numbers, text)}\t{state.value}\t{'f' if numbers else 't'}\t"
            f"{invalid}\t{duplicate}\t{invalid}\t{duplicate}\n"
        )
        self.batches += 1

    async def flush(self) -> None:
        if self._lines:
            assert self.write is not None  # noqa: S101 - set by _load before the first batch
            await self.write("".join(self._lines))
            self._lines.clear()
        if self._batches:
            self.batch_blocks.append("".join(self._batches))
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
        copying: _Copying | None = getattr(loading, "copying", None)
        personal = isinstance(spec.text, Template)
        if copying is None:
            writer = _Writer(loading, spec.shard_size, rows, personal=personal)
            await _feed(batcher, recipients, writer.add)
            await writer.flush()
            batches = writer.batches
        else:
            lines = _CopyWriter(loading.campaign, spec.shard_size, rows, personal=personal)
            # One COPY of every input, streamed as it is read; then one of the batches.
            async with copying("inputs") as write:
                lines.write = write
                await _feed(batcher, recipients, lines.add)
                await lines.flush()
            if lines.batch_blocks:
                async with copying("batches") as write:
                    for block in lines.batch_blocks:
                        await write(block)
            batches = lines.batches
        if not batcher.read:
            raise CampaignError(no_input_message(spec.input_name if spec.input_name != "-" else ""))
        await loading.loaded(batcher.read, batcher.distinct, batches)
    return loading.campaign


#: A store's COPY of text-format lines into one of its tables, where it has one.
_Copying = Callable[[str], AbstractAsyncContextManager[Callable[[str], Awaitable[None]]]]


async def _feed(batcher: Batcher, recipients: Recipients, add: Callable[[Batch], Awaitable[None]]) -> None:
    """Read ``recipients`` through ``batcher``, handing each batch to ``add`` in order."""
    async with contextlib.aclosing(read_chunks(recipients)) as chunks:
        async for chunk in chunks:
            for run in _runs(chunk) if batcher.message is not None else (chunk,):
                for batch in batcher.feed(run):
                    await add(batch)
    for batch in batcher.finish():
        await add(batch)


_DIGITS: Final = b"0123456789"
_PLUS: Final = b"+"


def _runs(chunk: list[Any]) -> list[list[Any]]:
    """``chunk`` cut into runs of "+"-and-digits inputs, and runs of others and of repeats of the one before.

    The batcher cuts the same batches from any cut of its input, and checks,
    and adds to its seen numbers, a list of "+" and digits with no repeat in
    it in a few vector steps; one invalid input or repeat sends the whole
    list one number at a time, which, once the seen numbers are compact keys
    (past a million), costs several times more. Lists of anything but text
    with no line break go whole.
    """
    try:
        joined = "\n".join(chunk).encode("utf-8")
    except (TypeError, UnicodeEncodeError):
        return [chunk]
    # Each "+"-and-digits input is "+" once its digits are gone.
    shapes = joined.translate(None, _DIGITS).split(b"\n")
    if len(shapes) != len(chunk):
        return [chunk]
    found = set(itertools.compress(range(len(chunk)), map(_PLUS.__ne__, shapes)))
    found.update(itertools.compress(range(1, len(chunk)), map(operator.eq, chunk[1:], chunk)))
    if not found:
        return [chunk]
    odd = sorted(found)
    runs: list[list[Any]] = []
    begin = at = 0
    while at < len(odd):
        first = odd[at]
        if first > begin:
            runs.append(chunk[begin:first])
        end = first + 1
        at += 1
        while at < len(odd) and odd[at] == end:  # odd lines in a row go together
            end += 1
            at += 1
        runs.append(chunk[first:end])
        begin = end
    if begin < len(chunk):
        runs.append(chunk[begin:])
    return runs


def _lost_connection(error: BaseException) -> bool:
    """Whether ``error`` is a PostgreSQL store's lost connection (only such a store can lose one mid-load)."""
    if "psycopg" not in sys.modules:
        return False  # no PostgreSQL store was ever opened in this process
    from sms_async.cluster._store import is_transient  # noqa: PLC0415 - psycopg, only once it is in use

    return is_transient(error)
