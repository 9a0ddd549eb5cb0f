"""Reading recipients and writing results, one row at a time.

Inputs are never read whole into memory: a CSV file (one column chosen with
``--column``), a text file with one number per line, or standard input
(``-``). Results are JSON Lines or CSV, chosen by the output's extension, one
row per input with the columns ``input, e164, outcome, message_id, reason``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
from collections.abc import AsyncIterator, Iterable, Iterator
from json.encoder import encode_basestring
from pathlib import Path
from typing import IO, Final, Literal

import anyio

from sms_async._models import BatchResult, Outcome
from sms_async._phone import PhoneNormaliser
from sms_async._redact import redact
from sms_async.cli._errors import CliError

__all__ = [
    "COLUMNS",
    "InputFormat",
    "RecipientSource",
    "ResultEncoder",
    "ResultFormat",
    "batch_rows",
    "read_message_ids",
    "result_format_for",
]

InputFormat = Literal["auto", "csv", "lines"]
ResultFormat = Literal["jsonl", "csv"]

#: The columns of a results file, in order.
COLUMNS: Final = ("input", "e164", "outcome", "message_id", "reason")

# Column names tried, case-insensitively, when a CSV has several columns and
# --column is not given.
_PHONE_COLUMNS: Final = (
    "phone",
    "number",
    "mobile",
    "msisdn",
    "recipient",
    "phone_number",
    "mobile_number",
    "to",
)
_CHUNK: Final = 2048
_HASH_BLOCK: Final = 1 << 20

Row = tuple[str, str, str, str, str]


class RecipientSource:
    """An input of recipients, checked when opened and read lazily.

    Opening checks everything that can be checked before sending: that the
    file can be read and, for a CSV, that the header names the column. Rows
    are then read in chunks as the sender asks for them.

    Args:
        path: A file path, or ``"-"`` for ``stdin``.
        column: The CSV column holding the numbers (implies CSV).
        input_format: ``"csv"``, ``"lines"`` (one number per line, blank
            lines ignored) or ``"auto"`` (CSV for ``.csv`` files or when
            ``column`` is given).
        stdin: The binary stream to read for ``"-"``.

    Raises:
        CliError: the file cannot be read, is empty, or lacks the column.
    """

    def __init__(
        self,
        path: str,
        *,
        column: str | None = None,
        input_format: InputFormat = "auto",
        stdin: IO[bytes] | None = None,
    ) -> None:
        self.is_stdin = path == "-"
        self.name = "standard input" if self.is_stdin else path
        self.path = None if self.is_stdin else Path(path)
        if input_format == "auto":
            is_csv = column is not None or (
                self.path is not None and self.path.suffix.lower() in {".csv", ".tsv"}
            )
        else:
            is_csv = input_format == "csv"
        self.kind: Literal["csv", "lines"] = "csv" if is_csv else "lines"
        self.column: str | None = None
        self._column_index = 0
        self._line = 0
        #: Why reading stopped early (an I/O or CSV error), if it did.
        self.error: str | None = None
        if self.path is None:
            if stdin is None:
                raise CliError("no standard input to read recipients from")
            binary = stdin
        else:
            binary = _open_input(self.path)
        self._binary = binary
        self._text = io.TextIOWrapper(
            binary, encoding="utf-8-sig", errors="replace", newline="" if is_csv else None
        )
        self._rows: Iterator[str]
        try:
            self._rows = self._csv_rows(column) if is_csv else self._plain_rows()
        except BaseException:
            self.close()
            raise

    def _plain_rows(self) -> Iterator[str]:
        for line in self._text:
            self._line += 1
            value = line.strip()
            if value:
                yield value

    def _csv_rows(self, column: str | None) -> Iterator[str]:
        dialect: type[csv.Dialect] = (
            csv.excel_tab if self.path is not None and self.path.suffix == ".tsv" else csv.excel
        )
        reader = csv.reader(self._text, dialect)
        try:
            header = next(reader)
        except StopIteration:
            raise CliError(
                f"{self.name} is empty: a CSV input needs a header row naming its columns"
            ) from None
        except csv.Error as error:
            raise CliError(f"{self.name}, line 1: cannot read the CSV header: {error}") from None
        self._line = 1
        names = [name.strip() for name in header]
        self._column_index = _pick_column(names, column, self.name)
        self.column = names[self._column_index]
        index = self._column_index
        return self._csv_values(reader, index)

    def _csv_values(self, reader: Iterator[list[str]], index: int) -> Iterator[str]:
        for row in reader:
            self._line += 1
            if not row:
                continue  # a blank line is no record
            # A record without the column is still an input: it ends as an invalid row.
            yield row[index].strip() if index < len(row) else ""

    def chunks(self) -> Iterator[list[str]]:
        """Yield the recipients, a list at a time; stop (setting ``error``) on a read error."""
        while True:
            try:
                chunk = list(itertools.islice(self._rows, _CHUNK))
            except (OSError, csv.Error) as error:
                detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                self.error = f"{self.name}, line {self._line + 1}: cannot read on: {detail}"
                return
            if not chunk:
                return
            yield chunk

    async def aiter(self) -> AsyncIterator[list[str]]:
        """Like :meth:`chunks`, reading standard input in a worker thread (it may block for long)."""
        chunks = self.chunks()
        if not self.is_stdin:
            for chunk in chunks:
                yield chunk
            return

        def next_chunk() -> list[str] | None:
            return next(chunks, None)

        while True:
            read: list[str] | None = await anyio.to_thread.run_sync(next_chunk)
            if read is None:
                return
            yield read

    def fingerprint(self) -> tuple[str, int | None]:
        """A fingerprint of the input and its approximate number of recipients.

        A file is hashed (SHA-256, streamed) with how it is read, so a resume
        can refuse a different input before anything is sent; standard input
        cannot be read twice, so its batches are checked one by one instead.
        """
        how = f"{self.kind}:{self.column or ''}"
        if self.path is None:
            return f"stdin:{how}", None
        digest = hashlib.sha256()
        lines = 0
        last = b""
        try:
            with self.path.open("rb") as file:
                while block := file.read(_HASH_BLOCK):
                    digest.update(block)
                    lines += block.count(b"\n")
                    last = block
        except OSError as error:
            raise CliError(f"cannot read {self.name}: {error.strerror}") from None
        if last and not last.endswith(b"\n"):
            lines += 1
        return f"sha256:{digest.hexdigest()}:{how}", max(lines - (1 if self.kind == "csv" else 0), 0)

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if self.path is not None:
            self._text.close()
        else:
            self._text.detach()


def _open_input(path: Path) -> IO[bytes]:
    if path.is_dir():
        raise CliError(f"cannot read {path}: it is a directory")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise CliError(f"cannot read {path}: no such file") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None


def _pick_column(names: list[str], column: str | None, source: str) -> int:
    listed = ", ".join(repr(n) for n in names) or "(none)"
    if column is not None:
        if column in names:
            return names.index(column)
        folded = [n.casefold() for n in names]
        if folded.count(column.casefold()) == 1:
            return folded.index(column.casefold())
        raise CliError(f"{source} has no column {column!r}; its columns are: {listed}")
    if len(names) == 1:
        return 0
    folded = [n.casefold() for n in names]
    found = [i for i, n in enumerate(folded) if n in _PHONE_COLUMNS]
    if len(found) == 1:
        return found[0]
    raise CliError(
        f"{source} has {len(names)} columns; choose the one with the numbers with --column: {listed}"
    )


# -- results -------------------------------------------------------------------


def result_format_for(path: Path) -> ResultFormat:
    """JSON Lines for ``.jsonl``/``.ndjson``/``.json``, CSV for ``.csv``."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise CliError(
        f"cannot tell the results format from {path.name!r}: name the file *.jsonl (JSON Lines) or *.csv"
    )


def batch_rows(batch: BatchResult, normaliser: PhoneNormaliser) -> Iterator[Row]:
    """One row per input the batch accounts for, numbers first.

    A duplicate's ``input`` is the number it repeats, in E.164 (or the raw
    text of a repeated invalid entry): the engine keeps no other spelling.
    """
    on_wire = set(batch.numbers)
    for raw, number in zip(batch.inputs, batch.numbers, strict=True):
        message_id = batch.message_ids.get(number)
        if message_id is not None:
            yield raw, number, Outcome.ACCEPTED.value, message_id, ""
            continue
        failure = batch.failed.get(number)
        if failure is None:  # pragma: no cover - the engine accounts for every number
            yield raw, number, Outcome.UNKNOWN.value, "", "no outcome was recorded for this number"
        else:
            yield raw, number, failure.outcome.value, "", failure.reason
    for key, failure in batch.failed.items():
        if key not in on_wire:
            yield key, "", failure.outcome.value, "", failure.reason
    for key, count in batch.duplicates.items():
        is_number = normaliser.normalise_or_none(key) == key
        reason = "the same number as an earlier input" if is_number else "the same text as an earlier input"
        row = (key, key if is_number else "", Outcome.DUPLICATE.value, "", reason)
        for _ in range(count):
            yield row


class ResultEncoder:
    """Turns batch results into the bytes of a results file."""

    def __init__(self, result_format: ResultFormat, normaliser: PhoneNormaliser) -> None:
        self.format: ResultFormat = result_format
        self._normaliser = normaliser

    @property
    def header(self) -> bytes:
        """What a new results file starts with."""
        return self._csv([COLUMNS]) if self.format == "csv" else b""

    def encode(self, batch: BatchResult) -> bytes:
        """The rows of one batch."""
        # The members of a batch share one reason: redact each distinct one once.
        reasons: dict[str, str] = {}
        rows = [
            (raw, e164, outcome, message_id, reasons.get(why) or reasons.setdefault(why, redact(why)))
            for raw, e164, outcome, message_id, why in batch_rows(batch, self._normaliser)
        ]
        return self._csv(rows) if self.format == "csv" else self._jsonl(rows)

    @staticmethod
    def _csv(rows: Iterable[tuple[str, ...]]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue().encode("utf-8")

    @staticmethod
    def _jsonl(rows: Iterable[Row]) -> bytes:
        # One JSON object per line, built from JSON-escaped strings: the same
        # text json.dumps gives for these five keys, at a fraction of the cost
        # (e164 and outcome hold only "+", digits and letters: nothing to escape).
        quote = _json_string
        lines = [
            '{"input": %s, "e164": %s, "outcome": "%s", "message_id": %s, "reason": %s}\n'  # noqa: UP031
            % (
                quote(raw),
                f'"{e164}"' if e164 else "null",
                outcome,
                quote(message_id) if message_id else "null",
                quote(reason) if reason else "null",
            )
            for raw, e164, outcome, message_id, reason in rows
        ]
        return "".join(lines).encode("utf-8")


# Characters that JSON leaves unescaped but some line readers split lines on.
_LINE_BREAKS: Final = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _json_string(text: str) -> str:
    encoded = encode_basestring(text)
    return encoded if encoded.isascii() else encoded.translate(_LINE_BREAKS)


def read_message_ids(path: Path) -> list[str]:
    """The distinct message ids of accepted rows in a results file.

    Reads JSON Lines or CSV results as written by ``send``; in a file of
    another kind, each non-blank line that is not JSON is taken as an id.

    Raises:
        CliError: the file cannot be read or names no message id.
    """
    ids: dict[str, None] = {}
    try:
        with path.open(encoding="utf-8-sig", errors="replace", newline="") as file:
            if path.suffix.lower() == ".csv":
                reader = csv.DictReader(file)
                if reader.fieldnames is None or "message_id" not in reader.fieldnames:
                    raise CliError(f"{path} has no message_id column; is it a results file written by send?")
                for record in reader:
                    value = (record.get("message_id") or "").strip()
                    if value:
                        ids[value] = None
            else:
                for line in file:
                    text = line.strip()
                    if not text:
                        continue
                    if text.startswith("{"):
                        try:
                            record = json.loads(text)
                        except ValueError:
                            continue  # a row cut short by a crash: nothing to look up
                        value = record.get("message_id") if isinstance(record, dict) else None
                        if isinstance(value, str) and value:
                            ids[value] = None
                    else:
                        ids[text] = None
    except FileNotFoundError:
        raise CliError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise CliError(f"cannot read {path}: it is a directory") from None
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None
    return list(ids)
