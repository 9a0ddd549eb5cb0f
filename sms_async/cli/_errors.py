"""Exit codes of ``sms-async``, and the one error type its commands raise to use them."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

__all__ = ["EXIT_CODES_HELP", "CliError", "ExitCode", "run_async"]

T = TypeVar("T")


class ExitCode(enum.IntEnum):
    """What the process exit status of ``sms-async`` means."""

    #: Every input was accepted (duplicates, and numbers skipped with
    #: ``--skip-dnd``, do not count against); for look-ups: everything answered.
    OK = 0
    #: Some inputs were not accepted (invalid, rejected, unknown, unsent), or
    #: some look-ups did not give the hoped-for answer (for ``status``: not
    #: every message delivered, or unknown rows remain). The results say which.
    NOT_ALL_ACCEPTED = 1
    #: A usage or configuration error: bad option, unreadable input, missing
    #: column or credentials, bad sender id, empty text, a journal that belongs
    #: to another campaign or is in use by another process, ``--resume`` with no
    #: journal. Nothing was sent.
    USAGE = 2
    #: The run stopped early: the gateway refused the credentials, has no
    #: credit or answered as a wrong endpoint does; the input could not be read
    #: on; or the journal or results file could not be written.
    ABORTED = 3
    #: Interrupted (Ctrl+C, SIGTERM); ``--resume`` continues where it stopped.
    INTERRUPTED = 4


EXIT_CODES_HELP = """\b
Exit codes:
  0  every input accepted (duplicates and --skip-dnd skips do not count against)
  1  some inputs not accepted (invalid, rejected, unknown, unsent): see the results;
     for status: not every message delivered yet, or unknown rows remain
  2  usage or configuration error (bad option, input, credentials, sender id, text,
     a journal that belongs to another campaign or is in use, --resume with no
     journal); nothing was sent
  3  aborted: bad credentials, no credit, a wrong endpoint, an input unreadable
     part-way, or the journal/results could not be written
  4  interrupted (Ctrl+C, SIGTERM): run again with --resume to continue"""


class CliError(Exception):
    """A failure to report on one line, with the exit status it maps to.

    The message must already be free of credentials; the command line passes
    it through :func:`sms_async._redact.redact` once more before printing.
    """

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def run_async(fn: Callable[..., Awaitable[T]], *args: object, **backend_options: Any) -> T:
    """``anyio.run``, re-raising a lone error out of the exception groups that task groups wrap it in.

    An error raised inside ``async with BulkSender(...)`` leaves the sender's
    task group as an ``ExceptionGroup``; the command line reports the error itself.
    """
    try:
        return anyio.run(fn, *args, backend_options=backend_options or None)
    except BaseExceptionGroup as group:
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_leaves(error))
        else:
            found.append(error)
    return found
