"""Why a campaign cannot start, or cannot go on, and how its messages name the caller's options."""

from __future__ import annotations

import attrs

from sms_async._exceptions import SmsError

__all__ = [
    "PYTHON_NAMES",
    "CampaignError",
    "OptionNames",
    "StorageError",
    "StoreUnavailableError",
    "no_input_message",
]


class CampaignError(SmsError):
    """The campaign cannot run as asked; the message says what to do.

    Raised before anything is sent (a journal that belongs to another
    campaign or is in use, a results file no journal accounts for, nothing to
    resume); or kept as the report's ``problem`` when found mid-run (a resumed
    input that differs from the one recorded), after which the run stops.
    """


class StorageError(CampaignError):
    """The journal or the results file could not be read or written; the run stopped there."""


class StoreUnavailableError(StorageError):
    """The campaign store could not be reached for longer than the store's patience.

    A :class:`StorageError`, as a journal that cannot be written is on one
    machine; raised by a store across a network (PostgreSQL). The engine turns every
    :class:`~sms_async.SmsError` raised while a batch is sent into that batch's
    outcome, and an unreachable store says nothing about a batch: what the
    engine calls (the journal, the shared meter and pause) keeps it from the
    engine: the shard run stops taking batches and raises it at its end, and
    its task is tried again later.
    """

    def __init__(
        self, message: str, *, permanent: bool = False, unwritten: tuple[tuple[int, str], ...] = ()
    ) -> None:
        super().__init__(message)
        #: Whether the store refused the connection for a reason waiting cannot cure
        #: (a missing database, a wrong user or password).
        self.permanent = permanent
        #: Raised by a shard run: the batches, as ``(index, runner)``, that the run (or the
        #: earlier ones it was to give back for) may have claimed and certainly never sent a
        #: request for. Pass them to the shard's next run (``run_shard(give_back=...)``), in
        #: whichever process it runs, so that it makes them pending again rather than them
        #: being taken for lost (``unknown``) once their runner's lease runs out.
        self.unwritten = unwritten


@attrs.frozen
class OptionNames:
    """How a caller spells the options that messages advise, so that each caller reads its own words.

    A Python caller reads ``resume=True``; the command line reads ``--resume``.
    """

    resume: str = "resume=True"
    resend_unknown: str = "resend_unknown=True"
    resend_rejected: str = "resend_rejected=True"
    overwrite: str = "overwrite=True"
    results: str = "results="
    journal: str = "journal="


#: The names a Python caller uses.
PYTHON_NAMES = OptionNames()


def no_input_message(input_name: str = "") -> str:
    """The one rule for an input without a single recipient, whichever store the campaign goes to.

    Refused before anything is stored or written: an empty file is far more
    often the wrong file than a campaign of nobody.
    """
    where = input_name or "the recipients"
    return f"{where} holds no input (no number, no row): nothing to send, nothing was written"
