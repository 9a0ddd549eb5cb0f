"""Running a crash-safe campaign from Python: recipients in, a results file and a report out.

::

    report = await run_campaign(bulk, recipients, "Hello", sender_id="ITONAB", results="out.jsonl")

or, to be able to stop it from elsewhere (a signal handler, a web request)::

    campaign = Campaign("out.jsonl", resume=True)
    ...  # campaign.stop() from another task: batches in flight finish, no new one starts
    report = await campaign.run(bulk, recipients, "Hello", sender_id="ITONAB")

The campaign streams the recipients through :meth:`BulkSender.stream` with
a :class:`~sms_async.campaign.CampaignJournal`, which writes each batch's
rows and state as the engine settles it; the report's figures come from the
one :class:`~sms_async.campaign.Tally`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import os
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
)
from pathlib import Path
from typing import Any, cast

import anyio
import attrs

from sms_async import _exceptions as exc
from sms_async._batching import Recipients
from sms_async._clock import SYSTEM_CLOCK, Clock
from sms_async._engine import BulkSender
from sms_async._message import Message, Template, check_sender_id
from sms_async._models import BatchResult, Outcome
from sms_async._redact import redact
from sms_async.campaign._delivery import DeliveryTally, MemoryDeliveryBook, PollSchedule
from sms_async.campaign._errors import PYTHON_NAMES, CampaignError, OptionNames, no_input_message
from sms_async.campaign._opening import check_resend
from sms_async.campaign._results import InputRows, ResultsEncoder, results_format
from sms_async.campaign._schema import Identity
from sms_async.campaign._store import CampaignJournal
from sms_async.campaign._tally import Tally

__all__ = ["Campaign", "CampaignReport", "default_journal", "run_campaign"]

_STOPPED = "stopped"


def default_journal(results: str | os.PathLike[str]) -> Path:
    """Where a campaign keeps a results file's journal unless told otherwise: beside it, plus ``.journal``.

    A results file with no journal there was not written by a campaign that
    can be resumed from it (an export of a stored campaign, or a moved journal).
    """
    path = Path(results)
    return path.with_name(path.name + ".journal")


@attrs.frozen
class CampaignReport:
    """What a campaign run did, and the campaign as its results file now stands."""

    #: The results file and the journal.
    results: Path
    journal: Path
    #: This run's number (1 for a new campaign), and whether an earlier run was found.
    run: int
    resumed: bool
    #: Every input of the campaign, as the results file holds it (earlier runs included).
    totals: Tally
    #: The inputs this run settled.
    this_run: Tally
    #: Requests and retries this run made; batches it sent, and skipped as settled earlier.
    requests: int
    retries: int
    batches_sent: int
    batches_skipped: int
    #: Seconds this run took.
    elapsed: float
    #: What stopped the run early: bad credentials, no credit, a wrong endpoint, the recipients failing.
    aborted: exc.SmsError | None = None
    #: Why the campaign stopped the run: a changed input, a journal or results file it could not
    #: write (a :class:`StorageError`).
    problem: CampaignError | None = None
    #: Whether :meth:`Campaign.stop` stopped it.
    stopped: bool = False
    #: With ``reports`` (or a results file that has the delivery columns): the campaign's accepted
    #: numbers by delivery state, as the results file's delivery columns now show them.
    delivery: DeliveryTally | None = None

    @property
    def rate(self) -> float:
        """Inputs settled per second by this run."""
        return self.this_run.total / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Whether the run read its whole input and nothing is left to send (``unsent``)."""
        return (
            not self.stopped
            and self.aborted is None
            and self.problem is None
            and not self.totals[Outcome.UNSENT]
        )


class Campaign:
    """One crash-safe campaign: a results file, the journal beside it, and how to run it.

    Args:
        results: The results file, one row per input: ``*.jsonl`` or ``*.csv``.
        journal: The journal (default: the results file's name plus ``.journal``).
        resume: Continue the campaign of the journal (refused when there is none).
        resend_unknown: On resume, send again batches that ended ``unknown`` or were
            in flight when a run died: some of their numbers may get the text twice.
        resend_rejected: On resume, send again batches the gateway refused (after a fix).
            Either without ``resume`` is a :class:`CampaignError`: a new campaign has nothing to resend.
        overwrite: Replace a results file that no journal accounts for.
        ordered: Write rows in input order (each as the inputs before it are done),
            not as batches settle.
        input_name: How the input is named in messages (a file name).
        input_fingerprint: What identifies the input (a file's hash): a resume with
            another is refused. Without one, each batch is still checked.
        rows: Where each input came from (its line, CSV row, other columns): the
            reader's :class:`InputRows`; by default rows are numbered by position.
        names: How messages spell these options.
        clock: Where the times recorded with each batch come from, and delivery polls' time
            (default: the machine's; a :class:`~sms_async.testing.TestClock` in tests).
        schedule: When accepted numbers are polled (with ``reports``).
    """

    def __init__(
        self,
        results: str | os.PathLike[str],
        *,
        journal: str | os.PathLike[str] | None = None,
        resume: bool = False,
        resend_unknown: bool = False,
        resend_rejected: bool = False,
        overwrite: bool = False,
        ordered: bool = False,
        input_name: str = "",
        input_fingerprint: str = "",
        rows: InputRows | None = None,
        names: OptionNames = PYTHON_NAMES,
        clock: Clock = SYSTEM_CLOCK,
        schedule: PollSchedule | None = None,
    ) -> None:
        self.results = Path(results).expanduser().resolve()
        self.journal_path = (
            (Path(journal) if journal is not None else default_journal(self.results)).expanduser().resolve()
        )
        check_resend(names, resume=resume, resend_unknown=resend_unknown, resend_rejected=resend_rejected)
        self._resume = resume
        self._resend_unknown = resend_unknown
        self._resend_rejected = resend_rejected
        self._overwrite = overwrite
        self._ordered = ordered
        self._input_name = input_name
        self._input_fingerprint = input_fingerprint
        self._rows = rows
        self._names = names
        self._clock = clock
        self._schedule = schedule
        self._journal: CampaignJournal | None = None
        self._scope: anyio.CancelScope | None = None
        self._polling: anyio.CancelScope | None = None
        self._stop: str | None = None
        self._stop_now = False
        self._started = False

    # -- control ------------------------------------------------------------------------------

    def stop(self, *, now: bool = False) -> None:
        """Start no new batch; batches in flight finish (``now``: cancel them, reported ``unknown``).

        Batches not sent are left for a resume. Delivery polling (``reports``)
        stops at once, and the results file gets the states known by then.
        Call it from the event loop running the campaign (a signal receiver,
        another task).
        """
        self._stop = _STOPPED
        if self._polling is not None:
            self._polling.cancel()
        if self._journal is not None:
            self._journal.stop(_STOPPED)
        if now:
            self._stop_now = True
            if self._scope is not None:
                self._scope.cancel()

    @property
    def processed(self) -> int:
        """Inputs accounted for so far, by earlier runs and this one (0 before the run opens)."""
        return self._journal.processed if self._journal is not None else 0

    def totals(self) -> Tally:
        """The campaign's tally so far (empty before the run opens)."""
        return self._journal.totals() if self._journal is not None else Tally()

    # -- running ----------------------------------------------------------------------------------

    async def run(
        self,
        bulk: BulkSender,
        recipients: Recipients,
        text: str | Template | None = None,
        *,
        sender_id: str,
        skip_dnd: bool = False,
        max_segments: int | None = None,
        gateway_params: Mapping[str, str] | None = None,
        on_batch: Callable[[BatchResult], None] | None = None,
        reports: Callable[[MemoryDeliveryBook], Awaitable[object]] | None = None,
    ) -> CampaignReport:
        """Send ``text`` to ``recipients`` through ``bulk``, journalled; return the report.

        ``recipients`` and ``text`` are as for :meth:`BulkSender.send`
        (numbers with one text; ``(number, text)`` pairs with ``text=None``;
        mappings with a :class:`Template`). ``on_batch`` hears each batch as
        it settles. Returns when the input is done, or the run stopped
        (:meth:`stop`, an abort, a problem with the journal): the report says which.

        With ``reports``, once the sends are done (and the campaign still
        held), every number the results file shows accepted, earlier runs'
        included, is put in a :class:`MemoryDeliveryBook` (with the states
        an earlier run recorded) and ``reports(book)`` polls it (such as a
        :class:`DeliveryTracker`'s ``run``). When it returns, raises, or is
        stopped (:meth:`stop`), the results file is rewritten with the
        ``delivery`` and ``delivered_at`` columns, as a campaign's export
        writes them. A run stopped or aborted before its sends were done does
        not poll, but still writes the columns. A resumed run of a campaign
        whose file has the columns writes them again, with or without ``reports``.

        Raises:
            CampaignError: the campaign cannot start (nothing to resume, a
                journal in use or of another campaign, a results file in the way);
                nothing was sent.
            UsageError: bad text, sender id, gateway parameters or options; nothing was sent.
        """
        if self._started:
            raise exc.ConfigurationError("a Campaign runs once: make a new one (with resume=True) to go on")
        self._started = True
        identity = self._check(bulk, recipients, text, sender_id, skip_dnd, max_segments, gateway_params)
        recipients = await _unless_empty(recipients, self._input_name)
        encoder = ResultsEncoder(results_format(self.results), self._rows)
        opening = functools.partial(
            CampaignJournal.open,
            self.journal_path,
            identity,
            encoder,
            resume=self._resume,
            resend_unknown=self._resend_unknown,
            resend_rejected=self._resend_rejected,
            overwrite=self._overwrite,
            names=self._names,
            clock=self._clock,
        )
        journal = await anyio.to_thread.run_sync(opening)
        self._journal = journal
        if self._stop is not None:
            journal.stop(self._stop)
        started = time.perf_counter()
        try:
            async with journal:
                with anyio.CancelScope() as scope:
                    self._scope = scope
                    if self._stop_now:
                        scope.cancel()
                    stream = bulk.stream(
                        self._recipients(recipients, journal),
                        text,
                        sender_id=sender_id,
                        skip_dnd=skip_dnd,
                        max_segments=max_segments,
                        journal=journal,
                        gateway_params=gateway_params,
                    )
                    async with contextlib.aclosing(
                        cast("AsyncGenerator[BatchResult, None]", stream)
                    ) as batches:
                        async for batch in batches:
                            if on_batch is not None:
                                on_batch(batch)
        finally:
            self._scope = None
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(journal.finish)
        delivery: DeliveryTally | None = None
        try:
            if (reports is not None or journal.keeps_delivery) and journal.failure is None:
                delivery = await self._track(journal, reports)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(journal.close)
        return CampaignReport(
            results=self.results,
            journal=self.journal_path,
            run=journal.run,
            resumed=journal.resumed,
            totals=journal.totals(),
            this_run=journal.tally.copy(),
            requests=journal.requests,
            retries=journal.retries,
            batches_sent=journal.batches_sent,
            batches_skipped=journal.batches_skipped,
            elapsed=time.perf_counter() - started,
            aborted=journal.aborted,
            problem=journal.failure,
            stopped=self._stop is not None,
            delivery=delivery,
        )

    async def _track(
        self, journal: CampaignJournal, reports: Callable[[MemoryDeliveryBook], Awaitable[object]] | None
    ) -> DeliveryTally:
        """Poll the accepted numbers with ``reports``; then, whatever happens, write what is known."""
        book = await anyio.to_thread.run_sync(journal.delivery_book, self._clock.now(), self._schedule)
        sends_done = self._stop is None and journal.aborted is None and journal.failure is None
        try:
            if reports is not None and sends_done:
                with anyio.CancelScope() as polling:
                    self._polling = polling
                    await reports(book)
        finally:
            self._polling = None
            with anyio.CancelScope(shield=True):
                if journal.failure is None:
                    await anyio.to_thread.run_sync(journal.write_delivery, book)
        return book.tally()

    def _check(
        self,
        bulk: BulkSender,
        recipients: Recipients,
        text: str | Template | None,
        sender_id: str,
        skip_dnd: bool,
        max_segments: int | None,
        gateway_params: Mapping[str, str] | None,
    ) -> Identity:
        """Everything that can be checked before a file is made; the campaign's identity."""
        if isinstance(recipients, str | bytes):
            raise exc.ConfigurationError(
                "recipients must be an iterable of numbers, not a single string: pass [number]"
            )
        if not self.results.parent.is_dir():
            raise CampaignError(
                f"cannot write {self.results}: the directory {self.results.parent} does not exist"
            )
        if self.journal_path == self.results:
            raise CampaignError("the journal and the results file must be different files")
        driver = bulk.driver
        if isinstance(text, str):
            message = Message.create(text, sender_id, max_segments=max_segments)
            digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        else:
            check_sender_id(sender_id)
            message = Message.create("-", sender_id)
            template = (
                f"template\0{text.text}\0{text.number}" if isinstance(text, Template) else "per recipient"
            )
            digest = hashlib.sha256(template.encode("utf-8", "surrogatepass")).hexdigest()
        if skip_dnd and not driver.capabilities.dnd:
            raise exc.UnsupportedOperationError(
                f"{driver.name} has no do-not-disturb look-up: send without skip_dnd"
            )
        driver.prepare_send(message, gateway_params)  # a parameter the driver owns is refused here
        return Identity(
            input_name=self._input_name,
            input_fingerprint=self._input_fingerprint,
            text_sha256=digest,
            sender_id=sender_id,
            gateway=driver.name,
            region=bulk.normaliser.default_region or "",
            output_path=str(self.results),
            output_format=results_format(self.results),
            layout="ordered" if self._ordered else "settled",
            columns="\x1f".join(self._rows.columns) if self._rows is not None else "",
        )

    def _recipients(self, recipients: Recipients, journal: CampaignJournal) -> Recipients:
        """The input, ending early once the run is asked to stop."""
        if isinstance(recipients, AsyncIterable):
            return _read_async(recipients, journal)
        return _read(recipients, journal)


async def _unless_empty(recipients: Recipients, input_name: str) -> Recipients:
    """``recipients`` as they were, once one is known to exist; for none, :func:`no_input_message`.

    The first item is read ahead (a failure to read it is raised again where
    the run reads it, as any read failure is).
    """
    if isinstance(recipients, AsyncIterable):
        iterator = aiter(recipients)
        try:
            first = await anext(iterator)
        except StopAsyncIteration:
            raise CampaignError(no_input_message(input_name)) from None
        except Exception as error:  # noqa: BLE001 - raised again where the run reads it
            return _raising_async(error)
        return _chain_async(first, iterator)
    items = iter(recipients)
    try:
        first = next(items)
    except StopIteration:
        raise CampaignError(no_input_message(input_name)) from None
    except Exception as error:  # noqa: BLE001 - as above
        return _raising(error)
    return itertools.chain((first,), items)


def _raising(error: Exception) -> Iterator[Any]:
    raise error
    yield  # pragma: no cover - makes this a generator


async def _raising_async(error: Exception) -> AsyncIterator[Any]:
    raise error
    yield  # pragma: no cover - makes this a generator


async def _chain_async(first: Any, rest: AsyncIterator[Any]) -> AsyncIterator[Any]:
    yield first
    async for item in rest:
        yield item


def _read(items: Iterable[Any], journal: CampaignJournal) -> Iterator[Any]:
    try:
        for item in items:
            if journal.stop_reason is not None:
                return
            yield item
    except Exception as error:  # noqa: BLE001 - the caller's iterable; whatever it raises stops the run
        journal.abort(_recipients_failed(error))


async def _read_async(items: AsyncIterable[Any], journal: CampaignJournal) -> AsyncIterator[Any]:
    try:
        async for item in items:
            if journal.stop_reason is not None:
                return
            yield item
    except Exception as error:  # noqa: BLE001 - as above
        journal.abort(_recipients_failed(error))


def _recipients_failed(error: Exception) -> exc.RecipientsError:
    """The run stops where its input did: the batch cut short by the failure is not sent."""
    failure = exc.RecipientsError(
        f"reading the recipients failed ({type(error).__name__}: {redact(str(error))[:300]}); the run "
        "stopped there: batches in flight finished, the rest is left to send"
    )
    failure.__cause__ = error
    return failure


async def run_campaign(
    bulk: BulkSender,
    recipients: Recipients,
    text: str | Template | None = None,
    *,
    sender_id: str,
    results: str | os.PathLike[str],
    journal: str | os.PathLike[str] | None = None,
    resume: bool = False,
    resend_unknown: bool = False,
    resend_rejected: bool = False,
    overwrite: bool = False,
    ordered: bool = False,
    skip_dnd: bool = False,
    max_segments: int | None = None,
    gateway_params: Mapping[str, str] | None = None,
) -> CampaignReport:
    """Run one crash-safe campaign (see :class:`Campaign` for the options) and return its report."""
    campaign = Campaign(
        results,
        journal=journal,
        resume=resume,
        resend_unknown=resend_unknown,
        resend_rejected=resend_rejected,
        overwrite=overwrite,
        ordered=ordered,
    )
    return await campaign.run(
        bulk,
        recipients,
        text,
        sender_id=sender_id,
        skip_dnd=skip_dnd,
        max_segments=max_segments,
        gateway_params=gateway_params,
    )
