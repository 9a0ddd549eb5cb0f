"""The SQLite schema of a campaign journal, its statements, and what identifies a campaign.

Schema::

    campaign  one row: schema_version, created_at, what identifies the
              campaign (input_name, input_fingerprint, text_sha256,
              sender_id, gateway, region, output_path, output_format,
              layout, columns), output_offset (bytes of the results file
              the journal vouches for) and runs. Never a credential.
    batches   one row per batch begun or settled: idx, digest (of its
              numbers, and of its text), size, state, run, the counts of
              its rows (one column per outcome, empty, credits), parts,
              rows_at and rows_len (where its rows are in the results
              file, once written), rows (its rows while they are not in
              the file: waiting for the batches before them with
              ``ordered``, or provisional for a pending batch), updated_at.

A batch's rows are in exactly one place: in the results file
(``rows_at`` set), in ``rows`` (written at the end of a run past the
recorded length, or when the batches before them are written), or nowhere
yet (a batch in flight, or found ``sending`` by a resume: its rows are
rebuilt from the input).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Final

import attrs

from sms_async.campaign._tally import OUTCOMES, Tally

__all__ = [
    "CLAIM",
    "COUNT_COLUMNS",
    "LOST",
    "RELEASE",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SETTLE",
    "Identity",
    "connect",
    "now",
    "sum_counts",
]

SCHEMA_VERSION: Final = 3

#: The count columns of a batch, in the order of :meth:`Tally.columns`.
COUNT_COLUMNS: Final = (*(o.value for o in OUTCOMES), "empty", "credits")

SCHEMA: Final = f"""
CREATE TABLE IF NOT EXISTS campaign (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version    INTEGER NOT NULL,
    created_at        TEXT    NOT NULL,
    input_name        TEXT    NOT NULL,
    input_fingerprint TEXT    NOT NULL,
    text_sha256       TEXT    NOT NULL,
    sender_id         TEXT    NOT NULL,
    gateway           TEXT    NOT NULL,
    region            TEXT    NOT NULL,
    output_path       TEXT    NOT NULL,
    output_format     TEXT    NOT NULL,
    layout            TEXT    NOT NULL,
    columns           TEXT    NOT NULL,
    output_offset     INTEGER NOT NULL,
    runs              INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    idx        INTEGER PRIMARY KEY,
    digest     TEXT    NOT NULL,
    size       INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'rejected', 'unknown')),
    run        INTEGER NOT NULL,
    {", ".join(f"{name} INTEGER NOT NULL DEFAULT 0" for name in COUNT_COLUMNS)},
    parts      INTEGER NOT NULL DEFAULT 0,
    rows_at    INTEGER,
    rows_len   INTEGER NOT NULL DEFAULT 0,
    rows       BLOB,
    updated_at TEXT    NOT NULL
);
"""

# Column names in these statements come from the Outcome enum, never from input.
_COUNTS: Final = ", ".join(COUNT_COLUMNS)
_SET_COUNTS: Final = ", ".join(f"{name} = excluded.{name}" for name in COUNT_COLUMNS)

#: A claim succeeds only for a batch never begun or back in ``pending`` (which never reached the gateway).
CLAIM: Final = (
    "INSERT INTO batches (idx, digest, size, state, run, updated_at) VALUES (?, ?, ?, 'sending', ?, ?) "
    "ON CONFLICT (idx) DO UPDATE SET state = 'sending', run = excluded.run, digest = excluded.digest, "
    "size = excluded.size, rows = NULL, updated_at = excluded.updated_at "
    "WHERE batches.state = 'pending'"
)
RELEASE: Final = (
    "UPDATE batches SET state = 'pending', updated_at = ? WHERE idx = ? AND state = 'sending' AND run = ?"
)
#: A batch's outcome: claimed or not (all skipped, never sent), but never over one an earlier run settled.
SETTLE: Final = (
    f"INSERT INTO batches (idx, digest, size, state, run, parts, {_COUNTS}, updated_at) "  # noqa: S608
    f"VALUES (?, ?, ?, ?, ?, ?, {', '.join('?' for _ in COUNT_COLUMNS)}, ?) "
    "ON CONFLICT (idx) DO UPDATE SET state = excluded.state, run = excluded.run, digest = excluded.digest, "
    f"size = excluded.size, parts = excluded.parts, {_SET_COUNTS}, rows = NULL, rows_at = NULL, "
    "rows_len = 0, updated_at = excluded.updated_at "
    "WHERE batches.state IN ('pending', 'sending')"
)
#: The rows of a batch found ``sending`` by a resume, rebuilt once as unknown.
LOST: Final = (
    f"UPDATE batches SET {', '.join(f'{name} = ?' for name in COUNT_COLUMNS)}, parts = ?, "  # noqa: S608
    "updated_at = ? WHERE idx = ? AND state = 'unknown' AND rows_at IS NULL AND rows IS NULL AND digest = ?"
)


def sum_counts(conn: sqlite3.Connection, where: str) -> Tally:
    """The tally of the batches matching ``where`` (a fixed condition, never input)."""
    row = conn.execute(
        f"SELECT {', '.join(f'TOTAL({name})' for name in COUNT_COLUMNS)}, "  # noqa: S608
        f"MIN(CASE WHEN parts > 0 THEN parts END), MAX(parts) FROM batches WHERE {where}"
    ).fetchone()
    values = dict(zip((*COUNT_COLUMNS, "fewest", "most"), (int(v or 0) for v in row), strict=True))
    return Tally.from_columns(values)


def now() -> str:
    """The time, as the journal records it."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


@attrs.frozen
class Identity:
    """What makes a campaign the same campaign on resume (no secret in it)."""

    input_name: str
    input_fingerprint: str
    text_sha256: str
    sender_id: str
    gateway: str
    region: str
    output_path: str
    output_format: str
    #: ``"ordered"`` (rows in input order) or ``"settled"`` (rows as batches settle).
    layout: str
    #: The kept input columns, joined with a unit separator.
    columns: str

    def differences(self, stored: Identity) -> list[str]:
        """What differs from ``stored``, in words."""
        labels = {
            "input_fingerprint": f"the input ({stored.input_name} then, {self.input_name} now, or its bytes)",
            "text_sha256": "the message text",
            "sender_id": f"the sender id ({stored.sender_id} then, {self.sender_id} now)",
            "gateway": f"the gateway ({stored.gateway} then, {self.gateway} now)",
            "region": f"the region ({stored.region} then, {self.region} now)",
            "output_path": f"the results file ({stored.output_path} then, {self.output_path} now)",
            "layout": f"the order of the rows ({stored.layout} then, {self.layout} now)",
            "columns": "the input columns kept in the results",
        }
        return [label for field, label in labels.items() if getattr(self, field) != getattr(stored, field)]

    def values(self) -> tuple[str, ...]:
        """The fields in the campaign table's order."""
        return attrs.astuple(self)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating) a journal in WAL mode with ``synchronous=FULL``, its tables made."""
    # Every statement is issued by one thread at a time (the committer's
    # worker, or the opening thread before it starts), so sharing is safe.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    try:
        _require_wal(conn.execute("PRAGMA journal_mode = WAL").fetchone())
        conn.execute("PRAGMA synchronous = FULL")
        conn.executescript(SCHEMA)
    except BaseException:
        conn.close()
        raise
    return conn


def _require_wal(mode: tuple[object, ...] | None) -> None:
    if mode is None or str(mode[0]).lower() != "wal":
        raise sqlite3.OperationalError("the file system does not support SQLite's WAL mode")
