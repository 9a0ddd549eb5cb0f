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

import contextlib
import csv
import io
import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from json.decoder import scanstring  # type: ignore[attr-defined] # the C scanner json.loads uses
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
    "DeliveryCells",
    "InputRows",
    "ResultsEncoder",
    "ResultsFormat",
    "ResultsScan",
    "Unsettled",
    "accepted_rows",
    "encode_row",
    "fsync_directory",
    "results_format",
    "results_header",
    "rewrite_delivery",
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


# -- the delivery columns of a send's results file ----------------------------------

#: A number's delivery cells, ``(state, delivered_at)`` (``""`` for none), from its ``(e164, message_id)``.
DeliveryCells = Callable[[str, str], tuple[str, str]]

_E164_KEY: Final = ', "e164": '
_ID_KEY: Final = ', "message_id": '
_REASON_KEY: Final = ', "reason": '
_DELIVERY_KEY: Final = ', "delivery": '
_AT_KEY: Final = ', "delivered_at": '
_CHUNK: Final = 10_000


def _delivery_json(state: str, at: str) -> str:
    """The JSON members :func:`encode_row` writes for the delivery columns."""
    return (
        f"{_DELIVERY_KEY}{_json_string(state) if state else 'null'}"
        f"{_AT_KEY}{_json_string(at) if at else 'null'}"
    )


def _json_value(line: str, start: int) -> tuple[str, int]:
    """A ``null`` or a JSON string at ``start``: its text (``""`` for null) and where it ends."""
    if line.startswith("null", start):
        return "", start + 4
    if not line.startswith('"', start):
        raise ValueError("not a string")
    return scanstring(line, start + 1)  # type: ignore[no-any-return]


def _json_row(line: str) -> tuple[str, str, int, int]:
    """A JSON Lines results row: its e164, message_id, where its reason ends and where its delivery ends.

    The members are found by their keys: a key is ``, "name": `` (a quote after a space),
    which no JSON string holds (a quote in a string is escaped), and the results members
    come before the kept ``columns``; so the first match is the row's own member.
    """
    found = []
    for key in (_E164_KEY, _ID_KEY, _REASON_KEY):
        at = line.find(key)
        if at < 0:
            raise ValueError(f"no {key.strip(', :')} member")
        found.append(_json_value(line, at + len(key)))
    (e164, _), (message_id, _), (_, reason_end) = found
    end = reason_end
    if line.startswith(_DELIVERY_KEY, end):
        _, end = _json_value(line, end + len(_DELIVERY_KEY))
        if not line.startswith(_AT_KEY, end):
            raise ValueError("a delivery member without delivered_at")
        _, end = _json_value(line, end + len(_AT_KEY))
    return e164, message_id, reason_end, end


def _csv_records(lines: Iterable[bytes]) -> Iterator[str]:
    """Whole CSV records (a quoted field may hold a newline): lines joined while their quotes are unpaired."""
    held: list[bytes] = []
    quotes = 0
    for line in lines:
        if not held and b'"' not in line:
            yield line.decode("utf-8")
            continue
        held.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(held).decode("utf-8")
            held.clear()
            quotes = 0
    if held:
        yield b"".join(held).decode("utf-8")


def accepted_rows(data: bytes, results_format: ResultsFormat) -> Iterator[tuple[str, str]]:
    """``(e164, message_id)`` of each row in ``data`` (whole results rows, no header) with a message id."""
    lines = io.BytesIO(data)
    if results_format == "csv":
        for fields in csv.reader(_csv_records(lines)):
            if len(fields) >= len(COLUMNS) and fields[4]:
                yield fields[2], fields[4]
        return
    for raw in lines:
        line = raw.decode("utf-8")
        if line.strip():
            e164, message_id, _, _ = _json_row(line)
            if message_id:
                yield e164, message_id


def rewrite_delivery(
    path: Path, results_format: ResultsFormat, columns: Sequence[str], cells: DeliveryCells | None
) -> bool:
    """Rewrite a send's results file with the :data:`DELIVERY_COLUMNS` (``cells``), or without (``None``).

    Every other byte stays as it was: rows in the same order, the same
    columns and values, kept columns and row numbers included; the delivery
    cells go where a campaign's export puts them (after ``reason``, before
    the kept columns). A file already in the asked form is left alone.
    The new file is written beside the old one, fsynced, and put in its
    place with one rename, so a crash leaves one or the other, whole.
    Returns whether the file had the delivery columns.

    Raises:
        StorageError: the file cannot be read or written, or holds a row
            that is not as a campaign writes it (it is then left unchanged).
    """
    directory = path.parent
    temp: Path | None = None
    try:
        with path.open("rb") as source:
            had = _has_delivery(source.readline(), results_format, columns)
            if had == (cells is not None):
                return had
            source.seek(0)
            fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
            temp = Path(name)
            with os.fdopen(fd, "wb") as out:
                if results_format == "csv":
                    source.readline()
                    out.write(results_header(results_format, columns, delivery=cells is not None))
                    _rewrite_csv(source, out, had=had, cells=cells)
                else:
                    _rewrite_jsonl(source, out, cells=cells)
                out.flush()
                os.fsync(out.fileno())
            temp.chmod(stat.S_IMODE(path.stat().st_mode))
        temp.replace(path)
        temp = None
        fsync_directory(directory)
    except OSError as error:
        raise StorageError(f"cannot rewrite the results file {path}: {error.strerror or error}") from None
    except (ValueError, csv.Error) as error:
        raise StorageError(
            f"cannot rewrite the results file {path} with its delivery columns: it was changed since it was "
            f"written ({error}); it is left as it was"
        ) from None
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                temp.unlink()
    return had


def _has_delivery(first: bytes, results_format: ResultsFormat, columns: Sequence[str]) -> bool:
    """Whether a results file whose first line is ``first`` has the delivery columns."""
    if results_format == "csv":
        if first == results_header(results_format, columns, delivery=True):
            return True
        if first == results_header(results_format, columns):
            return False
        raise ValueError("its first line is not the header this campaign writes")
    if not first.strip():
        return False
    _, _, reason_end, end = _json_row(first.decode("utf-8"))
    return end != reason_end


def _rewrite_csv(
    source: Iterable[bytes], out: io.BufferedWriter, *, had: bool, cells: DeliveryCells | None
) -> None:
    texts: list[str] = []
    records: list[list[str]] = []

    def flush() -> None:
        # Each record read must be the very bytes the campaign's writer gives for its fields:
        # then writing the fields back changes nothing but the delivery cells.
        if _csv_bytes(records) != "".join(texts).encode("utf-8"):
            raise ValueError("a row is not as a campaign writes it")
        rows = []
        for fields in records:
            plain = [*fields[:6], *fields[8:]] if had else fields
            if cells is None:
                rows.append(plain)
            else:
                state, at = cells(plain[2], plain[4]) if plain[4] else ("", "")
                rows.append([*plain[:6], state, at, *plain[6:]])
        out.write(_csv_bytes(rows))
        texts.clear()
        records.clear()

    def read() -> Iterator[str]:
        for text in _csv_records(source):
            texts.append(text)
            yield text

    # One whole record a line: the reader takes exactly one line for each record it gives.
    for fields in csv.reader(read()):
        if len(fields) < len(COLUMNS) + (2 if had else 0):
            raise ValueError("a row has too few columns")
        records.append(fields)
        if len(records) >= _CHUNK:
            flush()
    flush()


def _rewrite_jsonl(source: Iterable[bytes], out: io.BufferedWriter, *, cells: DeliveryCells | None) -> None:
    parts: list[str] = []
    for raw in source:
        line = raw.decode("utf-8")
        if not line.strip():
            parts.append(line)
            continue
        e164, message_id, reason_end, end = _json_row(line)
        if cells is None:
            parts.append(line[:reason_end] + line[end:])
        else:
            state, at = cells(e164, message_id) if message_id else ("", "")
            parts.append(line[:reason_end] + _delivery_json(state, at) + line[end:])
        if len(parts) >= _CHUNK:
            out.write("".join(parts).encode("utf-8"))
            parts.clear()
    out.write("".join(parts).encode("utf-8"))


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (a no-op on Windows)."""
    if sys.platform == "win32":  # pragma: no cover - directories cannot be opened there
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
