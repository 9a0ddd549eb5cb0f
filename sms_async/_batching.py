"""Recipients in, deterministic batches out: the one place where batches are cut.

Every input is read once, in order, and ends in exactly one batch:

* a distinct valid number joins the batch being filled, up to the driver's
  ``max_batch``, and is sent with it;
* an invalid input, or a repeat of an earlier number (or of an earlier
  invalid text), is settled here, without sending, and rides with the batch
  being filled; past :data:`LOCAL_FLUSH` of them a batch is cut anyway, so that
  they never pile up in memory;
* with one text per recipient, a batch holds numbers with one and the same
  text: a new text starts a new batch.

So a batch is a run of consecutive inputs, and its composition depends on the
input alone: the engine, a resumed campaign, the dry run, ``estimate`` and
the cluster planner all get the same batches with the same indexes from the
same input, because all of them use :class:`Batcher`.

De-duplication keeps one compact key per distinct number
(:class:`~sms_async._keys.SeenNumbers`) and, only once invalid inputs appear,
a 64-bit digest per distinct invalid text: nothing else grows with the input.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterable, Iterable, Iterator
from typing import Any, Final

import anyio.lowlevel

from sms_async import _exceptions as exc
from sms_async._keys import SeenNumbers
from sms_async._message import Message, Template, check_sender_id
from sms_async._models import BatchResult, Failure, LocalInput, Outcome
from sms_async._phone import PhoneNormaliser

__all__ = [
    "LOCAL_FLUSH",
    "Batch",
    "Batcher",
    "Recipients",
    "iter_chunks",
    "read_chunks",
    "tally_cost",
]

#: Settled-here inputs a batch carries at most before it is cut anyway.
LOCAL_FLUSH: Final = 1000

# Inputs are read and checked a list at a time, so the hot loop is C-level.
# A list of 1024 halves what the compact key store costs a number beside 256
# (its array steps cost the same for 256 keys or 1024); an async input,
# whose items may come slowly, is read 256 at a time, so that a batch does not
# wait long for items that a full list would need.
_CHUNK: Final = 1024
_ASYNC_CHUNK: Final = 256
# How many distinct texts keep their checked Message (personalised runs).
_MESSAGE_CACHE: Final = 256

#: What ``send``/``stream`` read: numbers, ``(number, text)`` pairs, or mappings for a Template.
Recipients = Iterable[Any] | AsyncIterable[Any]


class Batch:
    """Consecutive inputs: the distinct valid numbers to send together, and those settled here."""

    __slots__ = ("duplicates", "failed", "first", "index", "inputs", "local", "message", "numbers")

    def __init__(self, index: int, first: int, message: Message | None) -> None:
        #: Zero-based sequence number within the run (the same for the same input).
        self.index = index
        #: One-based position, within the run, of the batch's first input.
        self.first = first
        #: The text the numbers get (``None`` only for a batch of settled inputs).
        self.message = message
        #: E.164 numbers to send, in input order.
        self.numbers: list[str] = []
        #: The inputs those numbers were read from, as read, in the same order.
        self.inputs: list[str] = []
        #: Inputs settled here, in input order.
        self.local: list[LocalInput] = []
        #: Invalid inputs by raw text (first occurrences), as ``BatchResult.failed`` keeps them.
        self.failed: dict[str, Failure] = {}
        #: Repeats by E.164 (or raw text), as ``BatchResult.duplicates`` counts them.
        self.duplicates: dict[str, int] = {}

    @property
    def size(self) -> int:
        """Inputs this batch accounts for."""
        return len(self.numbers) + len(self.local)

    def to_result(self) -> BatchResult:
        """A result holding what was settled here; the numbers' outcomes are still to come."""
        return BatchResult(
            failed=self.failed,
            duplicates=self.duplicates,
            numbers=self.numbers,
            inputs=self.inputs,
            index=self.index,
            first=self.first,
            local=self.local,
        )

    def __repr__(self) -> str:
        return f"<Batch {self.index}: {len(self.numbers)} numbers, {len(self.local)} settled here>"


class Batcher:
    """Cuts recipients into batches; pure and synchronous.

    Feed it lists of inputs with :meth:`feed` and take the batches it
    completes; :meth:`finish` gives the last one. The inputs are numbers when
    the run has one ``message``, ``(number, text)`` pairs when ``message`` is
    ``None``, and mappings when a ``template`` renders each text.

    Args:
        normaliser: How numbers are read.
        max_batch: The most numbers a batch sends (the driver's limit).
        message: The run's one text, checked; ``None`` for a text per recipient.
        sender_id: The sender id (texts per recipient are checked with it).
        max_segments: Refuse a text longer than this many parts (per text).
        template: Renders each mapping's text.
        compact_keys: Keep the distinct numbers in the compact table from the
            first one (:class:`~sms_async._keys.SeenNumbers`), never as a set of
            strings: for runs that hold no results (a stream), where nothing
            else keeps the strings alive. The batches are the same either way.
    """

    def __init__(
        self,
        normaliser: PhoneNormaliser,
        max_batch: int,
        *,
        message: Message | None,
        sender_id: str = "",
        max_segments: int | None = None,
        template: Template | None = None,
        compact_keys: bool = False,
    ) -> None:
        if max_batch < 1:
            raise exc.ConfigurationError(f"max_batch must be >= 1, got {max_batch!r}")
        self._normaliser = normaliser
        self._max_batch = max_batch
        self._message = message
        self._sender_id = sender_id
        self._max_segments = max_segments
        self._template = template
        self._seen = SeenNumbers(compact=compact_keys)
        self._seen_invalid: SeenNumbers | None = None
        self._messages: dict[str, Message | Failure] = {}
        self._read = 0
        self._batch = Batch(0, 1, message)

    @classmethod
    def for_text(
        cls,
        normaliser: PhoneNormaliser,
        max_batch: int,
        text: str | Template | None,
        *,
        sender_id: str,
        max_segments: int | None = None,
        compact_keys: bool = False,
    ) -> Batcher:
        """The batcher of a call's ``text``: one text, a Template, or None for ``(number, text)`` pairs.

        Raises for misuse (a bad sender id; one text that is empty, too long, unencodable).
        """
        if isinstance(text, str):
            message: Message | None = Message.create(text, sender_id, max_segments=max_segments)
        else:
            message = None
            check_sender_id(sender_id)
        template = text if isinstance(text, Template) else None
        return cls(
            normaliser,
            max_batch,
            message=message,
            sender_id=sender_id,
            max_segments=max_segments,
            template=template,
            compact_keys=compact_keys,
        )

    @property
    def message(self) -> Message | None:
        """The call's one text, or ``None`` when each recipient has a text of their own."""
        return self._message

    @property
    def read(self) -> int:
        """Inputs read so far."""
        return self._read

    @property
    def distinct(self) -> int:
        """Distinct valid numbers so far (each is sent once)."""
        return len(self._seen)

    def feed(self, chunk: list[Any]) -> list[Batch]:
        """Read ``chunk``; return the batches it completed, in order."""
        done: list[Batch] = []
        if self._message is not None:
            self._feed_numbers(chunk, done)
        else:
            self._feed_personal(chunk, done)
        return done

    def finish(self) -> list[Batch]:
        """The batch being filled, if it holds anything: call once, at the end of the input."""
        batch = self._batch
        if batch.numbers or batch.local:
            self._batch = Batch(batch.index + 1, self._read + 1, self._message)
            return [batch]
        return []

    # -- one text for everyone: the hot path ----------------------------------------

    def _feed_numbers(self, chunk: list[Any], done: list[Batch]) -> None:
        if set(map(type, chunk)) != {str}:
            chunk = [item if type(item) is str else str(item) for item in chunk]  # ints from a CSV reader
        e164s = self._normaliser.normalise_many(chunk)
        if None not in e164s and self._seen.add_new(e164s):  # type: ignore[arg-type]
            self._fill(e164s, chunk, done)  # type: ignore[arg-type]
            return
        for raw, e164 in zip(chunk, e164s, strict=True):
            if e164 is not None and self._seen.add(e164):
                self._add_number(e164, raw, self._message, done)
            else:
                self._settle_here(raw, e164, None, done)

    def _fill(self, e164s: list[str], inputs: list[str], done: list[Batch]) -> None:
        """Add new numbers to the batch being filled, cutting each as it fills."""
        start, count, max_batch = 0, len(e164s), self._max_batch
        while start < count:
            batch = self._batch
            room = max_batch - len(batch.numbers)
            batch.numbers.extend(e164s[start : start + room])
            batch.inputs.extend(inputs[start : start + room])
            taken = min(room, count - start)
            start += taken
            self._read += taken
            if len(batch.numbers) >= max_batch:
                self._cut(done)

    # -- a text per recipient -------------------------------------------------------------

    def _feed_personal(self, chunk: list[Any], done: list[Batch]) -> None:
        template = self._template
        normalise = self._normaliser.normalise_or_none
        for item in chunk:
            if template is not None:
                raw, text = template.split(item)
            else:
                raw, text = _pair(item)
            e164 = normalise(raw)
            message = self._message_for(text)
            if isinstance(message, Failure):
                # A row whose text cannot be sent is invalid; its number is not
                # used up, so a later row with a good text still reaches it.
                self._settle_here(raw, None, message, done)
            elif e164 is None:
                self._settle_here(raw, None, None, done)
            elif self._seen.add(e164):
                self._add_number(e164, raw, message, done)
            else:
                self._settle_here(raw, e164, None, done)

    def _message_for(self, text: str | Failure) -> Message | Failure:
        if isinstance(text, Failure):
            return text
        current = self._batch.message
        if current is not None and current.text == text:
            return current
        found = self._messages.get(text)
        if found is None:
            try:
                found = Message.create(text, self._sender_id, max_segments=self._max_segments)
            except exc.UsageError as error:
                found = Failure(Outcome.INVALID, f"its text cannot be sent: {error.reason}", error)
            if len(self._messages) >= _MESSAGE_CACHE:
                self._messages.pop(next(iter(self._messages)))
            self._messages[text] = found
        return found

    # -- shared steps -------------------------------------------------------------------------

    def _add_number(self, e164: str, raw: str, message: Message | None, done: list[Batch]) -> None:
        batch = self._batch
        if batch.message is not message:
            if batch.numbers:
                self._cut(done)
                batch = self._batch
            batch.message = message
        batch.numbers.append(e164)
        batch.inputs.append(raw)
        self._read += 1
        if len(batch.numbers) >= self._max_batch:
            self._cut(done)

    def _settle_here(
        self, raw: str, e164: str | None, text_failure: Failure | None, done: list[Batch]
    ) -> None:
        """An input that is not sent: a repeated number, an invalid input, or a row whose text is bad."""
        batch = self._batch
        offset = batch.size
        if e164 is not None and text_failure is None:
            batch.local.append(LocalInput(offset, raw, e164, None))
            batch.duplicates[e164] = batch.duplicates.get(e164, 0) + 1
        else:
            failure = text_failure if text_failure is not None else self._invalid(raw)
            batch.local.append(LocalInput(offset, raw, "", failure))
            if self._first_invalid(raw):
                batch.failed[raw] = failure
            else:
                batch.duplicates[raw] = batch.duplicates.get(raw, 0) + 1
        self._read += 1
        if len(batch.local) >= LOCAL_FLUSH:
            self._cut(done)

    def _first_invalid(self, raw: str) -> bool:
        seen = self._seen_invalid
        if seen is None:
            seen = self._seen_invalid = SeenNumbers()
        # The store keeps E.164 numbers compactly; an invalid text is kept as
        # its 63-bit digest spelled the same way.
        return seen.add(f"+{_digest(raw)}")

    def _invalid(self, raw: str) -> Failure:
        try:
            self._normaliser.normalise(raw)
        except exc.InvalidNumberError as error:
            return Failure(Outcome.INVALID, error.reason, error)
        return Failure(Outcome.INVALID, f"{raw[:40]!r} is not a valid phone number")  # pragma: no cover

    def _cut(self, done: list[Batch]) -> None:
        batch = self._batch
        done.append(batch)
        self._batch = Batch(batch.index + 1, self._read + 1, self._message)


def _digest(raw: str) -> int:
    """A stable key for an invalid input's text (the same in every process), in 1 .. 2**63 - 1."""
    digest = hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1 | 1


def _pair(item: Any) -> tuple[str, str | Failure]:
    """``(number, text)`` from a pair; anything else is an invalid row, with a reason."""
    if isinstance(item, tuple | list) and len(item) == 2:
        number, text = item
        raw = number if isinstance(number, str) else str(number)
        if isinstance(text, str):
            return raw, text
        return raw, Failure(Outcome.INVALID, f"its text must be a string, got {type(text).__name__}", None)
    shown = repr(item)[:60]
    return shown, Failure(
        Outcome.INVALID,
        f"expected a (number, text) pair, got {shown}: pass pairs when sending one text per recipient",
        None,
    )


# -- reading the input ----------------------------------------------------------------------------


def iter_chunks(items: Iterable[Any]) -> Iterator[list[Any]]:
    """The input in lists of up to 1024 items."""
    if isinstance(items, str | bytes):
        raise exc.ConfigurationError(
            "recipients must be an iterable of numbers, not a single string: pass [number]"
        )
    if type(items) is list:  # a subclass may slice otherwise
        # Slices copy pointers at C speed, six times quicker than islice; by
        # index, as a list's iterator goes, so items appended meanwhile are read.
        start = 0
        while chunk := items[start : start + _CHUNK]:
            start += len(chunk)
            yield chunk
        return
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, _CHUNK)):
        yield chunk


async def read_chunks(items: Recipients) -> AsyncGenerator[list[Any], None]:
    """The input in lists of up to 1024 items from a sync iterable, of up to 256 from an async one."""
    # Let the workers (and the event loop's I/O) run now and then while
    # reading a long input that never waits on its own.
    checkpoint = anyio.lowlevel.checkpoint
    if isinstance(items, AsyncIterable):
        chunk: list[Any] = []
        count = 0
        async for item in items:
            chunk.append(item)
            if len(chunk) >= _ASYNC_CHUNK:
                yield chunk
                chunk = []
                count += 1
                if count % 16 == 0:
                    await checkpoint()
        if chunk:
            yield chunk
        return
    for count, chunk in enumerate(iter_chunks(items), 1):
        yield chunk
        if count % 4 == 0:  # every 4096 items, as the async branch every 16 lists of 256
            await checkpoint()


async def tally_cost(batcher: Batcher, recipients: Recipients) -> tuple[int, int]:
    """Read ``recipients`` through ``batcher``: (credits, the most parts one recipient needs)."""
    cost = most = 0

    def add(batch: Batch) -> None:
        nonlocal cost, most
        if batch.message is not None and batch.numbers:
            parts = batch.message.segments
            cost += parts * len(batch.numbers)
            most = max(most, parts)

    async with contextlib.aclosing(read_chunks(recipients)) as chunks:
        async for chunk in chunks:
            for batch in batcher.feed(chunk):
                add(batch)
    for batch in batcher.finish():
        add(batch)
    return cost, most
