"""Why a campaign cannot start, or cannot go on, and how its messages name the caller's options."""

from __future__ import annotations

import attrs

from sms_async._exceptions import SmsError

__all__ = ["PYTHON_NAMES", "CampaignError", "OptionNames", "StorageError", "no_input_message"]


class CampaignError(SmsError):
    """The campaign cannot run as asked; the message says what to do.

    Raised before anything is sent (a journal that belongs to another
    campaign or is in use, a results file no journal accounts for, nothing to
    resume); or kept as the report's ``problem`` when found mid-run (a resumed
    input that differs from the one recorded), after which the run stops.
    """


class StorageError(CampaignError):
    """The journal or the results file could not be read or written; the run stopped there."""


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
