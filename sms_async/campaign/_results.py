"""Results files: one row per input, written from ``BatchResult.entries()``, and read back.

A row holds ``row`` (where the input came from: its 1-based position in the
run, or what the reader says, such as its line or CSV row), ``input``
(exactly as read), ``e164``, ``outcome``, ``message_id`` and ``reason``;
with kept columns, the input's other CSV columns follow (under ``columns``
in JSON Lines). The format comes from the file's extension: JSON Lines
(``.jsonl``, ``.ndjson``, ``.json``) or CSV (``.csv``).

The engine gives each input's position (:attr:`Entry.position`); turning a
position into a line or row number (blank lines skipped, multi-line CSV
records) is the reader's job, through :class:`InputRows`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from json.encoder import encode_basestring
from pathlib import Path
from typing import Final, Literal, NamedTuple, Protocol

import attrs

from sms_async._models import BatchResult, Entry, Outcome
from sms_async._redact import redact
from sms_async.campaign._errors import CampaignError, StorageError
from sms_async.campaign._tally import Tally

__all__ = [
    "COLUMNS",
    "DELIVERY_COLUMNS",
    "NOT_SETTLED",
    "InputRows",
    "ResultsEncoder",
    "ResultsFormat",
    "ResultsScan",
    "Unsettled",
    "encode_row",
    "results_format",
    "results_header",
    "scan_results",
]

ResultsFormat = Literal["jsonl", "csv"]

#: The columns a campaign's export adds after the results columns: the number's delivery
#: state (empty for a number not accepted) and when it became final (ISO 8601).
DELIVERY_COLUMNS: Final = ("delivery", "delivered_at")
#: The columns of every results row, in order.
COLUMNS: Final = ("row", "input", "e164", "outcome", "message_id", "reason")

#: The outcome column of a row exported before its input was settled (a partial export).
#: Not ``unknown``: nothing was lost, the campaign still sends it (or gives it up as unsent).
NOT_SETTLED: Final = "pending"
_NOT_SETTLED_REASON: Final = "not settled yet when exported: the campaign was still running"


class Unsettled(NamedTuple):
    """An input exported before it was settled: its row says ``pending``, never an outcome it has not had."""

    #: Where the input came from (its line or CSV row), as a results row shows it.
    position: int
    input: str
    e164: str


class InputRows(Protocol):
    """Where each input of a run came from, as its reader knows it.

    The campaign asks once for each position it writes a row for, and says
    which positions it will never ask for (their rows were written by an
    earlier run), so that a reader can forget them and keep memory bounded.
    """

    @property
    def columns(self) -> Sequence[str]:
        """Names of the other columns kept with each row (empty for none)."""

    def take(self, position: int) -> tuple[int, Sequence[str]]:
        """The row number of the input at ``position`` (1-based) and its kept column values."""

    def forget(self, first: int, count: int) -> None:
        """Positions ``first .. first + count - 1`` will not be asked for."""


class _Positions:
    """Rows numbered by position: for inputs that are not lines of a file."""

    columns: Sequence[str] = ()

    def take(self, position: int) -> tuple[int, Sequence[str]]:
        return position, ()

    def forget(self, first: int, count: int) -> None:
        return


def results_format(path: Path) -> ResultsFormat:
    """JSON Lines for ``.jsonl``/``.ndjson``/``.json``, CSV for ``.csv``.

    Raises:
        CampaignError: any other extension.
    """
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise CampaignError(
        f"cannot tell the results format from {path.name!r}: name the file *.jsonl (JSON Lines) or *.csv"
    )


_VALUES: Final = {outcome: outcome.value for outcome in Outcome}
_QUOTE: Final = '"'

# Characters that JSON leaves unescaped but some line readers split lines on.
_LINE_BREAKS: Final = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_string(text: str) -> str:
    encoded = encode_basestring(text)
    return encoded if encoded.isascii() else encoded.translate(_LINE_BREAKS)


class ResultsEncoder:
    """Turns settled batches into the bytes of a results file, and counts them.

    Args:
        results_format: ``"jsonl"`` or ``"csv"``.
        rows: Where each input came from; by default rows are numbered by position.
    """

    def __init__(self, results_format: ResultsFormat, rows: InputRows | None = None) -> None:
        self.format: ResultsFormat = results_format
        self.rows: InputRows = rows if rows is not None else _Positions()
        self.columns: tuple[str, ...] = tuple(self.rows.columns)

    @property
    def header(self) -> bytes:
        """What a new results file starts with (the CSV header; nothing for JSON Lines)."""
        return results_header(self.format, self.columns)

    def encode(self, result: BatchResult, parts: int = 0) -> tuple[bytes, Tally]:
        """The rows of one batch, and their tally (``parts``: the parts of the text its numbers got)."""
        entries = list(result.entries())
        tally = Tally()
        tally.count(entries, parts)
        take = self.rows.take
        # The members of a batch share one reason: each distinct one is redacted (and quoted) once.
        reasons: dict[str, str] = {"": ""}
        if self.format == "csv":
            records = []
            for position, raw, e164, outcome, message_id, why in entries:
                row, kept = take(position)
                reason = reasons.get(why)
                if reason is None:
                    reason = reasons[why] = redact(why)
                record = (str(row), raw, e164, _VALUES[outcome], message_id, reason)
                records.append((*record, *kept) if self.columns else record)
            return _csv_bytes(records), tally
        names = [_json_string(name) for name in self.columns]
        reasons[""] = "null"
        lines = []
        for position, raw, e164, outcome, message_id, why in entries:
            row, kept = take(position)
            reason = reasons.get(why)
            if reason is None:
                reason = reasons[why] = _json_string(redact(why))
            # Built from JSON-escaped strings: the text json.dumps gives for
            # these keys at a fraction of the cost (e164 and outcome hold only
            # "+", digits and letters: nothing to escape).
            line = (
                f'{{"row": {row}, "input": {_json_string(raw)}, '
                f'"e164": {f"{_QUOTE}{e164}{_QUOTE}" if e164 else "null"}, "outcome": "{_VALUES[outcome]}", '
                f'"message_id": {_json_string(message_id) if message_id else "null"}, "reason": {reason}'
            )
            if names:
                line += ', "columns": {' + _kept_pairs(names, kept) + "}"
            lines.append(line + "}\n")
        return "".join(lines).encode("utf-8"), tally


def results_header(
    results_format: ResultsFormat, columns: Sequence[str] = (), *, delivery: bool = False
) -> bytes:
    """What a new results file starts with (the CSV header; nothing for JSON Lines).

    With ``delivery``, the :data:`DELIVERY_COLUMNS` follow the results columns.
    """
    if results_format != "csv":
        return b""
    ours = (*COLUMNS, *DELIVERY_COLUMNS) if delivery else COLUMNS
    taken = set(ours)
    # A kept column named like one of ours is told apart by a suffix.
    extra = [name if name not in taken else f"{name} (input)" for name in columns]
    return _csv_bytes([(*ours, *extra)])


def encode_row(
    entry: Entry | Unsettled,
    results_format: ResultsFormat,
    columns: Sequence[str] = (),
    kept: Sequence[str] = (),
    *,
    delivery: tuple[str, str] | None = None,
) -> str:
    """One results row, for a row already numbered (``entry.position`` is its ``row``).

    The same text :class:`ResultsEncoder` writes for the same input with the
    same kept ``columns`` (their values: ``kept``): what a campaign's export writes.
    ``delivery`` (the number's delivery state and when it became final, ISO 8601;
    ``""`` for none) adds the :data:`DELIVERY_COLUMNS` after the results columns.
    """
    if isinstance(entry, Unsettled):
        outcome, message_id, reason = NOT_SETTLED, "", _NOT_SETTLED_REASON
    else:
        outcome, message_id, reason = _VALUES[entry.outcome], entry.message_id, redact(entry.reason)
    if results_format == "csv":
        record: tuple[str, ...] = (str(entry.position), entry.input, entry.e164, outcome, message_id, reason)
        if delivery is not None:
            record = (*record, *delivery)
        return _csv_bytes([(*record, *kept) if columns else record]).decode()
    e164 = f"{_QUOTE}{entry.e164}{_QUOTE}" if entry.e164 else "null"
    line = (
        f'{{"row": {entry.position}, "input": {_json_string(entry.input)}, "e164": {e164}, '
        f'"outcome": "{outcome}", "message_id": {_json_string(message_id) if message_id else "null"}, '
        f'"reason": {_json_string(reason) if reason else "null"}'
    )
    if delivery is not None:
        state, at = delivery
        line += (
            f', "delivery": {_json_string(state) if state else "null"}, '
            f'"delivered_at": {_json_string(at) if at else "null"}'
        )
    if columns:
        line += ', "columns": {' + _kept_pairs([_json_string(name) for name in columns], kept) + "}"
    return line + "}\n"


def _kept_pairs(names: Sequence[str], kept: Sequence[str]) -> str:
    """The JSON members of kept columns (``names`` already JSON-encoded)."""
    return ", ".join(f"{name}: {_json_string(value)}" for name, value in zip(names, kept, strict=False))


def _csv_bytes(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


# -- reading results back ---------------------------------------------------------


@attrs.frozen
class ResultsScan:
    """What a results file holds: the accepted rows' message ids and the rows per outcome."""

    #: Distinct message ids of accepted rows, in file order.
    message_ids: tuple[str, ...]
    #: Rows per outcome (rows that are not results rows are not counted).
    counts: dict[Outcome, int]
    #: Rows exported before their input was settled (``pending``: a partial export).
    unsettled: int = 0


def scan_results(path: Path) -> ResultsScan:
    """Read a results file written by a campaign (JSON Lines or CSV).

    In a file of another kind, each non-blank line that is not JSON is taken
    as a message id; a JSON line cut short by a crash is skipped.

    Raises:
        CampaignError: the file cannot be read, or is a CSV without a ``message_id`` column.
    """
    ids: dict[str, None] = {}
    counts = dict.fromkeys(Outcome, 0)
    known = {outcome.value: outcome for outcome in Outcome}
    unsettled = 0

    def note(message_id: object, outcome: object) -> None:
        nonlocal unsettled
        if isinstance(outcome, str) and outcome in known:
            counts[known[outcome]] += 1
        elif outcome == NOT_SETTLED:
            unsettled += 1
        if isinstance(message_id, str) and message_id.strip():
            ids[message_id.strip()] = None

    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(file)
                if reader.fieldnames is None or "message_id" not in reader.fieldnames:
                    raise CampaignError(
                        f"{path} has no message_id column; is it a results file written by a campaign?"
                    )
                for record in reader:
                    note(record.get("message_id"), record.get("outcome"))
            else:
                for line in file:
                    text = line.strip()
                    if not text:
                        continue
                    if not text.startswith("{"):
                        ids[text] = None
                        continue
                    try:
                        record = json.loads(text)
                    except ValueError:
                        continue  # a row cut short by a crash
                    if isinstance(record, dict):
                        note(record.get("message_id"), record.get("outcome"))
    except FileNotFoundError:
        raise CampaignError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise CampaignError(f"cannot read {path}: it is a directory") from None
    except OSError as error:
        raise StorageError(f"cannot read {path}: {error.strerror or error}") from None
    return ResultsScan(tuple(ids), counts, unsettled)
