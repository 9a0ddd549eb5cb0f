"""Opening a campaign: checking that it is the same campaign, preparing a resume, cutting the results file.

Everything here runs once, before the first batch, in the opening thread.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from sms_async.campaign._errors import CampaignError, OptionNames, StorageError
from sms_async.campaign._results import fsync_directory
from sms_async.campaign._schema import COUNT_COLUMNS, SCHEMA_VERSION, Identity, now

__all__ = [
    "check_fresh_output",
    "check_output_length",
    "check_resend",
    "check_same_campaign",
    "close_quietly",
    "describe",
    "insert_campaign",
    "open_output",
    "prepare_resume",
    "read_campaign",
    "transaction",
]


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One immediate transaction: committed when the block ends, rolled back if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def describe(error: BaseException) -> str:
    """An OS or SQLite error in a few words (never a path's contents)."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def check_resend(names: OptionNames, *, resume: bool, resend_unknown: bool, resend_rejected: bool) -> None:
    """Refuse ``resend_unknown`` or ``resend_rejected`` without ``resume``: a new campaign resends nothing.

    Ignoring them would look as if unknown or refused batches were going to
    be sent again when they are not (or, on a later resume, be forgotten).
    """
    if (resend_unknown or resend_rejected) and not resume:
        given = names.resend_unknown if resend_unknown else names.resend_rejected
        raise CampaignError(
            f"{given} goes with {names.resume}: it chooses what a resumed campaign sends again, and a new "
            f"campaign has sent nothing yet; pass {names.resume} to continue a campaign, or leave {given} out"
        )


def check_fresh_output(output: Path, names: OptionNames, *, overwrite: bool) -> None:
    """Refuse to replace a results file that no journal accounts for, unless asked to."""
    if output.exists() and output.stat().st_size > 0 and not overwrite:
        raise CampaignError(
            f"the results file {output} already exists and no journal accounts for it: "
            f"choose another {names.results}, or pass {names.overwrite} to replace it"
        )


def insert_campaign(conn: sqlite3.Connection, identity: Identity) -> None:
    """Record a new campaign (run 1, nothing written yet)."""
    with transaction(conn):
        conn.execute(
            "INSERT INTO campaign VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 1)",
            (SCHEMA_VERSION, now(), *identity.values()),
        )


def read_campaign(conn: sqlite3.Connection, path: Path) -> tuple[Identity, int, int] | None:
    """The recorded campaign, the results file's recorded length and the runs so far; ``None`` if new."""
    row = conn.execute(
        "SELECT schema_version, input_name, input_fingerprint, text_sha256, sender_id, gateway, region, "
        "output_path, output_format, layout, columns, output_offset, runs FROM campaign WHERE id = 1"
    ).fetchone()
    if row is None:
        return None
    version, *fields, offset, runs = row
    if version != SCHEMA_VERSION:
        raise CampaignError(
            f"the journal {path} was written by another version of sms_async (schema {version}, "
            f"this one reads {SCHEMA_VERSION}): finish that campaign with that version, or start a new one"
        )
    return Identity(*(str(f) for f in fields)), int(offset), int(runs)


def check_same_campaign(
    path: Path, identity: Identity, stored: Identity, names: OptionNames, *, resume: bool
) -> None:
    """Refuse a journal that belongs to another campaign, or an existing one without ``resume``."""
    differences = identity.differences(stored)
    if differences:
        raise CampaignError(
            f"the journal {path} belongs to a different campaign ({'; '.join(differences)} differ): "
            f"pass a new {names.journal} or {names.results} to start a new campaign"
            + ("" if resume else f", or the original options with {names.resume} to continue that one")
        )
    if not resume:
        raise CampaignError(
            f"a journal for this campaign already exists at {path}: pass {names.resume} to continue it "
            "(batches already sent are not sent again), "
            f"or a new {names.journal}/{names.results} to start over"
        )


def check_output_length(output: Path, offset: int) -> None:
    """Refuse a results file shorter than the journal vouches for: it was moved or changed."""
    if offset <= 0:
        return
    size = output.stat().st_size if output.exists() else -1
    if size < offset:
        what = "missing" if size < 0 else "shorter than the journal records"
        raise CampaignError(
            f"the results file {output} is {what} ({offset} bytes were written): it was moved or "
            "changed, so the campaign cannot be resumed safely"
        )


def prepare_resume(
    conn: sqlite3.Connection,
    output: Path,
    offset: int,
    run: int,
    *,
    resend_states: tuple[str, ...],
) -> int:
    """Turn batches caught ``sending`` into ``unknown``, and make those in ``resend_states`` pending again.

    A batch sent again must not keep its old rows in the results file: the
    file is cut back to where the first such batch's rows began, and the rows
    of every other batch written after that point move back into the journal
    (to be written again, in the same transaction). Returns the results
    file's new recorded length.
    """
    with transaction(conn):
        conn.execute(
            "UPDATE batches SET state = 'unknown', run = ?, updated_at = ? WHERE state = 'sending'",
            (run, now()),
        )
        if resend_states:
            marks = ", ".join("?" for _ in resend_states)
            again = conn.execute(
                f"SELECT idx, rows_at FROM batches WHERE state IN ({marks})",  # noqa: S608
                resend_states,
            ).fetchall()
            resent = {int(idx) for idx, _ in again}
            cut = min((int(at) for _, at in again if at is not None), default=None)
            if cut is not None:
                _move_rows_back(conn, output, cut, resent)
                offset = cut
                conn.execute("UPDATE campaign SET output_offset = ?", (offset,))
            zeroes = ", ".join(f"{name} = 0" for name in COUNT_COLUMNS)
            conn.execute(
                f"UPDATE batches SET state = 'pending', rows = NULL, rows_at = NULL, rows_len = 0, {zeroes}, "  # noqa: S608
                f"parts = 0, updated_at = ? WHERE state IN ({marks})",
                (now(), *resend_states),
            )
        conn.execute("UPDATE campaign SET runs = ?", (run,))
    return offset


def _move_rows_back(conn: sqlite3.Connection, output: Path, cut: int, resent: set[int]) -> None:
    written = conn.execute(
        "SELECT idx, rows_at, rows_len FROM batches WHERE rows_at >= ? ORDER BY rows_at", (cut,)
    ).fetchall()
    with output.open("rb") as file:
        for idx, at, length in written:
            if int(idx) in resent:
                continue
            file.seek(int(at))
            rows = file.read(int(length))
            if len(rows) != int(length):
                raise StorageError(
                    f"the results file {output} is shorter than the journal records: it was changed, "
                    "so its rows cannot be kept while batches are sent again"
                )
            conn.execute("UPDATE batches SET rows = ?, rows_at = NULL WHERE idx = ?", (rows, idx))


def open_output(output: Path, offset: int) -> IO[bytes]:
    """Open the results file and cut it to the length the journal vouches for."""
    existed = output.exists()
    try:
        fd = os.open(output, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise StorageError(f"cannot write the results file {output}: {describe(error)}") from None
    out = os.fdopen(fd, "r+b")
    try:
        out.truncate(offset)
        out.seek(offset)
        out.flush()
        os.fsync(out.fileno())
        if not existed:
            fsync_directory(output.parent)
    except BaseException:
        out.close()
        raise
    return out


def close_quietly(out: IO[bytes] | None, conn: sqlite3.Connection | None) -> None:
    """Close what was opened, ignoring errors (the first error is what gets reported)."""
    if out is not None:
        with contextlib.suppress(OSError):
            out.close()
    if conn is not None:
        with contextlib.suppress(sqlite3.Error):
            conn.close()
