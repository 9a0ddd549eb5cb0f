"""Reading recipients from a file or standard input, one row at a time, and saying where each came from.

Inputs are never read whole into memory: a CSV file (the numbers in one
column, chosen by name or found by a usual name such as ``phone``), a text
file with one number per line, or standard input (``"-"``). Each input is passed on exactly
as read (a line without its line ending, a CSV cell as it is); the
normaliser reads spaces and punctuation itself.

The source is also the campaign's :class:`~sms_async.campaign.InputRows`:
it remembers, for each input it has handed out and whose row is not written
yet, its row number (the 1-based line of a text file; the CSV row, counting
the header as row 1, a multi-line record as one row and a blank line as a
row) and, with ``keep_columns``, its other CSV columns.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import itertools
import re
import string
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, Final, Literal, Self

import anyio
import attrs

from sms_async._exceptions import UsageError
from sms_async._message import Template
from sms_async.campaign._errors import CampaignError

__all__ = [
    "PHONE_COLUMNS",
    "PYTHON_INPUT_NAMES",
    "InputFormat",
    "InputOptionNames",
    "InputReadError",
    "RecipientSource",
    "RecipientsInputError",
    "template_fields",
    "template_for",
]

InputFormat = Literal["auto", "csv", "lines"]

#: Column names tried, case-insensitively, when a CSV has several columns and none is named.
PHONE_COLUMNS: Final = (
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
# Characters of a file of lines read at a time.
_LINES_BLOCK: Final = 1 << 16
# A blank line (nothing but white space) among lines joined by newlines.
_BLANK_LINE: Final = re.compile(r"^[^\S\n]*$", re.MULTILINE)


class RecipientsInputError(CampaignError):
    """The recipients' input cannot be used as given (unreadable, empty, no such column); nothing was sent."""


class InputReadError(RecipientsInputError):
    """The input stopped being readable part-way (an I/O or CSV error); the message says where."""


@attrs.frozen
class InputOptionNames:
    """How a caller spells the reading options that messages advise (Python's by default)."""

    column: str = "column="
    csv: str = 'input_format="csv"'
    keep_columns: str = "keep_columns=True"
    text: str = "text"


#: The names a Python caller uses.
PYTHON_INPUT_NAMES = InputOptionNames()


class RecipientSource:
    """An input of recipients, checked when opened and read lazily.

    Opening checks everything that can be checked before sending: that the
    file can be read and, for a CSV, that the header names the column. Rows
    are then read in chunks as the sender asks for them.

    Args:
        path: A file path, or ``"-"`` for ``stdin``.
        column: The CSV column holding the numbers (implies CSV).
        input_format: ``"csv"``, ``"lines"`` (one number per line, blank
            lines skipped) or ``"auto"`` (CSV for ``.csv``/``.tsv`` files or
            when ``column`` is given).
        stdin: The binary stream to read for ``"-"``.
        keep_columns: Remember each row's other CSV columns for its results row.
        as_rows: Hand out each CSV record as a mapping of column name to cell
            (for a personalised text) instead of the number alone.
        names: How messages spell these options (the command line's ``--column``...).

    Raises:
        RecipientsInputError: the file cannot be read, is empty, or lacks the column.

    Example::

        from sms_async.campaign import RecipientSource

        with RecipientSource("customers.csv") as source:   # the "phone" column, found by its name
            numbers = list(source)
    """

    def __init__(
        self,
        path: str,
        *,
        column: str | None = None,
        input_format: InputFormat = "auto",
        stdin: IO[bytes] | None = None,
        keep_columns: bool = False,
        as_rows: bool = False,
        names: InputOptionNames | None = None,
    ) -> None:
        names = names or PYTHON_INPUT_NAMES
        self._names = names
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
        if not is_csv and (keep_columns or as_rows):
            what = names.keep_columns if keep_columns else f"a personalised {names.text}"
            raise RecipientsInputError(
                f"{what} needs a CSV input, and {self.name} is read as one number per line: "
                f"give a *.csv file, or {names.csv}"
            )
        #: The CSV's column names (empty for lines).
        self.header: list[str] = []
        #: The column holding the numbers.
        self.column: str | None = None
        self._keep = keep_columns
        self._as_rows = as_rows
        self._others: list[int] = []
        # Inputs handed out, counted from 1, and (CSV) their rows, until the campaign takes them.
        self._handed = 0
        self._rows: dict[int, tuple[int, tuple[str, ...]]] = {}
        # Lines: an input's row is its position plus the blank lines before it. Each time that
        # shift changes, (the first position it holds for, the shift), until the campaign takes them.
        self._shifts: collections.deque[tuple[int, int]] = collections.deque()
        self._line = 0
        if self.path is None:
            if stdin is None:
                raise RecipientsInputError("no standard input to read recipients from")
            binary = stdin
        else:
            binary = _open_input(self.path)
        self._text = io.TextIOWrapper(
            binary, encoding="utf-8-sig", errors="replace", newline="" if is_csv else None
        )
        self._items: Iterator[Any] = iter(())
        # Lines: the inputs a list at a time, and what is left of the last list.
        self._lists: Iterator[list[str]] | None = None
        self._left: list[str] = []
        try:
            if is_csv:
                self._items = self._csv_items(column)
            else:
                self._lists = self._line_lists()
        except BaseException:
            self.close()
            raise

    # -- reading ---------------------------------------------------------------------

    def _line_lists(self) -> Iterator[list[str]]:
        """The non-blank lines, a list at a time."""
        for lines in self._line_blocks():
            first = self._line + 1
            self._line += len(lines)
            if not _BLANK_LINE.search("\n".join(lines)):
                self._hand(first, len(lines))
                yield lines
                continue
            values = []
            for line, value in enumerate(lines, first):
                if value.strip():
                    self._hand(line, 1)
                    values.append(value)
            yield values

    def _line_blocks(self) -> Iterator[list[str]]:
        """The lines, without their line endings, a list at a time (standard input: a line as it comes)."""
        if self.path is None:
            for line in self._text:
                yield [line.removesuffix("\n")]
            return
        read, carry = self._text.read, ""
        while block := read(_LINES_BLOCK):
            lines = (carry + block).split("\n")
            carry = lines.pop()
            if lines:
                yield lines
        if carry:
            yield [carry]

    def _hand(self, line: int, count: int) -> None:
        """Hand out ``count`` inputs, read from ``line`` and the lines right after it."""
        shift = line - self._handed - 1
        if not self._shifts or self._shifts[-1][1] != shift:
            self._shifts.append((self._handed + 1, shift))
        self._handed += count

    def _csv_items(self, column: str | None) -> Iterator[Any]:
        dialect: type[csv.Dialect] = (
            csv.excel_tab if self.path is not None and self.path.suffix == ".tsv" else csv.excel
        )
        reader = csv.reader(self._text, dialect)
        try:
            header = next(reader)
        except StopIteration:
            raise RecipientsInputError(
                f"{self.name} is empty: a CSV input needs a header row naming its columns"
            ) from None
        except csv.Error as error:
            raise RecipientsInputError(f"{self.name}, line 1: cannot read the CSV header: {error}") from None
        self._line = 1
        names = [name.strip() for name in header]
        index = _pick_column(names, column, self.name, self._names.column)
        self.header = names
        self.column = names[index]
        self._others = [i for i in range(len(names)) if i != index]
        if self._as_rows and len(set(names)) != len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise RecipientsInputError(
                f"{self.name} has more than one column named {', '.join(map(repr, repeated))}: "
                "a personalised text needs each column named once"
            )
        return self._csv_values(reader, index)

    def _csv_values(self, reader: Any, index: int) -> Iterator[Any]:
        names, others, keep, as_rows = self.header, self._others, self._keep, self._as_rows
        for record in reader:
            self._line += 1
            if not record:
                continue  # a blank line is a row with nothing in it: no input
            self._handed += 1
            kept = tuple(record[i] if i < len(record) else "" for i in others) if keep else ()
            self._rows[self._handed] = (self._line, kept)
            if as_rows:
                # A cell the record lacks is left out: the template names the missing field.
                yield {names[i]: cell for i, cell in enumerate(record[: len(names)])}
            else:
                # A record without the column is still an input: it ends as an invalid row.
                yield record[index] if index < len(record) else ""

    def chunks(self) -> Iterator[list[Any]]:
        """Yield the recipients, a list at a time.

        Raises:
            InputReadError: the input cannot be read on (the message says where).
        """
        while True:
            try:
                chunk = (
                    self._next_lines()
                    if self._lists is not None
                    else list(itertools.islice(self._items, _CHUNK))
                )
            except (OSError, csv.Error) as error:
                detail = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
                raise InputReadError(f"{self.name}, row {self._line + 1}: cannot read on: {detail}") from None
            if not chunk:
                return
            yield chunk

    def _next_lines(self) -> list[str]:
        """Up to a chunk of lines' inputs (none at the end)."""
        assert self._lists is not None  # noqa: S101 - only for a file of lines
        chunk, self._left = self._left, []
        while len(chunk) < _CHUNK and (more := next(self._lists, None)) is not None:
            chunk.extend(more)
        if len(chunk) > _CHUNK:
            chunk, self._left = chunk[:_CHUNK], chunk[_CHUNK:]
        return chunk

    def __iter__(self) -> Iterator[Any]:
        """Every recipient, read a chunk at a time (for files: reading never blocks for long)."""
        for chunk in self.chunks():
            yield from chunk

    async def aiter(self) -> AsyncIterator[Any]:
        """Every recipient, reading standard input in a worker thread (it may block for long)."""
        chunks = self.chunks()

        def next_chunk() -> list[Any] | None:
            return next(chunks, None)

        while True:
            read: list[Any] | None = await anyio.to_thread.run_sync(next_chunk)
            if read is None:
                return
            for item in read:
                yield item

    # -- where each input came from (the campaign's InputRows) ----------------------

    @property
    def columns(self) -> Sequence[str]:
        """The other CSV columns kept with each row (with ``keep_columns``)."""
        return [self.header[i] for i in self._others] if self._keep else []

    def take(self, position: int) -> tuple[int, Sequence[str]]:
        """The row number of the input handed out at ``position``, and its kept columns."""
        if self.kind == "lines":
            return self._line_of(position), ()
        found = self._rows.pop(position, None)
        return found if found is not None else (position, ())

    def take_rows(self, first: int, count: int) -> Sequence[int]:
        """The row numbers of positions ``first .. first + count - 1``, taken at once (kept columns aside)."""
        shifts = self._shifts
        if self.kind == "lines" and first + count - 1 <= self._handed:
            self._drop_shifts(first)
            if shifts and shifts[0][0] <= first and (len(shifts) == 1 or shifts[1][0] >= first + count):
                shift = shifts[0][1]
                return range(first + shift, first + count + shift)
        return [self.take(position)[0] for position in range(first, first + count)]

    def _line_of(self, position: int) -> int:
        self._drop_shifts(position)
        shifts = self._shifts
        if not shifts or not shifts[0][0] <= position <= self._handed:
            return position
        return position + shifts[0][1]

    def _drop_shifts(self, position: int) -> None:
        """Forget the shifts of positions before ``position`` (each is asked for once, in order)."""
        shifts = self._shifts
        while len(shifts) > 1 and shifts[1][0] <= position:
            shifts.popleft()

    def forget(self, first: int, count: int) -> None:
        """Positions ``first .. first + count - 1`` will not be asked for."""
        if self.kind == "lines":
            self._drop_shifts(first + count)
            return
        pop = self._rows.pop
        for position in range(first, first + count):
            pop(position, None)

    # -- what identifies the input ---------------------------------------------------

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
            raise RecipientsInputError(f"cannot read {self.name}: {error.strerror}") from None
        if last and not last.endswith(b"\n"):
            lines += 1
        return f"sha256:{digest.hexdigest()}:{how}", max(lines - (1 if self.kind == "csv" else 0), 0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (standard input is left open)."""
        if self.path is not None:
            self._text.close()
        else:
            self._text.detach()


def _open_input(path: Path) -> IO[bytes]:
    if path.is_dir():
        raise RecipientsInputError(f"cannot read {path}: it is a directory")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise RecipientsInputError(f"cannot read {path}: no such file") from None
    except OSError as error:
        raise RecipientsInputError(f"cannot read {path}: {error.strerror}") from None


def _pick_column(names: list[str], column: str | None, source: str, option: str) -> int:
    listed = ", ".join(repr(n) for n in names) or "(none)"
    if column is not None:
        if column in names:
            return names.index(column)
        folded = [n.casefold() for n in names]
        if folded.count(column.casefold()) == 1:
            return folded.index(column.casefold())
        raise RecipientsInputError(f"{source} has no column {column!r}; its columns are: {listed}")
    if len(names) == 1:
        return 0
    folded = [n.casefold() for n in names]
    found = [i for i, n in enumerate(folded) if n in PHONE_COLUMNS]
    if len(found) == 1:
        return found[0]
    raise RecipientsInputError(
        f"{source} has {len(names)} columns; choose the one with the numbers with {option}: {listed}"
    )


def template_fields(text: str) -> tuple[str, ...]:
    """The named fields of ``text`` (``{name}``), in order; none for a plain text (a lone brace included).

    A text with fields is sent as a :class:`~sms_async.Template`, each
    recipient's text filled from their CSV row; a lone brace makes a plain text.
    """
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return ()  # a lone brace: plain text
    return tuple(dict.fromkeys(field for _, field, _, _ in parsed if field))


def template_for(text: str, source: RecipientSource, *, option: str = "text") -> Template:
    """The :class:`~sms_async.Template` of a personalised ``text`` over the columns of ``source`` (a CSV).

    Every field must name one of the CSV's columns: a field no column fills
    would send the braces, or nothing, to every recipient, so it is refused
    before anything is read or sent. ``option`` is how the caller names the
    text in messages (``--text`` on the command line).

    Raises:
        RecipientsInputError: a field names no column of ``source``, or the text is no template.
    """
    try:
        template = Template(text, number=source.column or "")
    except UsageError as error:
        raise RecipientsInputError(f"{option}: {error.reason}") from None
    unknown = [field for field in template.fields if field not in source.header]
    if unknown:
        columns = ", ".join(repr(name) for name in source.header)
        fields = ", ".join("{" + f + "}" for f in unknown)
        raise RecipientsInputError(
            f"{option} uses {fields}, which {source.name} has no column for "
            f"(its columns: {columns}); write a literal brace as {{{{ or }}}}"
        )
    return template
