"""The file of lines the loader reads a block at a time: the same inputs and rows as a line at a time.

The reader splits blocks of text into lines and numbers an input's row as
its position plus the blank lines before it; these tests read files whose
blank lines, white-space lines, line endings and long lines fall across the
blocks' edges (blocks made tiny), and compare with the lines a plain
line-by-line reading finds.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from sms_async.campaign import RecipientSource, _recipients


def _expected(text: str) -> list[tuple[str, int]]:
    """(input, row) of each non-blank line, read one line at a time (universal newlines)."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(line, row) for row, line in enumerate(lines, 1) if line.strip()]


def _texts() -> list[str]:
    pick = random.Random(7)
    pieces = ["+919800000001", " 98000 00002 ", "", "   ", "\t", "x" * 40, "\u00a0", "not a number", "ü☎"]
    texts = []
    for ending in ("\n", "\r\n", "\r"):
        for _ in range(6):
            lines = [pick.choice(pieces) for _ in range(pick.randint(1, 80))]
            text = ending.join(lines)
            texts.append(text if pick.random() < 0.5 else text + ending)
    return [*texts, "", "\n\n\n", "only", "a\n\nb"]


@pytest.mark.parametrize("block", [1, 3, 16, 1 << 16])
def test_blocks_of_lines_give_the_inputs_and_rows_a_line_at_a_time_gives(tmp_path: Path, monkeypatch, block):
    monkeypatch.setattr(_recipients, "_LINES_BLOCK", block)
    for number, text in enumerate(_texts()):
        path = tmp_path / f"in{number}.txt"
        path.write_bytes(text.encode())
        expected = _expected(text)
        with RecipientSource(str(path)) as source:
            assert list(source) == [value for value, _ in expected], repr(text)
            # Asked in order, as the loader asks: a position at a time, or many at once.
            rows = []
            position = 1
            while position <= len(expected):
                count = 1 + position % 5
                count = min(count, len(expected) - position + 1)
                if position % 2:
                    rows += list(source.take_rows(position, count))
                else:
                    rows += [source.take(p)[0] for p in range(position, position + count)]
                position += count
            assert rows == [row for _, row in expected], repr(text)


def test_forgotten_positions_are_skipped_and_later_rows_stay_right(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(_recipients, "_LINES_BLOCK", 4)
    path = tmp_path / "numbers.txt"
    path.write_text("a\n\nb\nc\n\n\nd\ne\n \nf\n")
    with RecipientSource(str(path)) as source:
        assert list(source) == ["a", "b", "c", "d", "e", "f"]
        source.forget(1, 3)
        assert source.take(4) == (7, ())
        assert list(source.take_rows(5, 2)) == [8, 10]
        # Never handed out: its position, as before.
        assert source.take(9) == (9, ())


def test_standard_input_is_read_a_line_as_it_comes(tmp_path: Path):
    path = tmp_path / "stdin.txt"
    path.write_bytes(b"+919800000001\n\n  \n+919800000002\r\n")
    with path.open("rb") as stdin, RecipientSource("-", stdin=stdin) as source:
        assert list(source) == ["+919800000001", "+919800000002"]
        assert list(source.take_rows(1, 2)) == [1, 4]
