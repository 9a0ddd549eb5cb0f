"""The loader's COPY in text format: it stores the rows psycopg's own encoding stores, one by one.

A PostgreSQL store's loading streams every input line through one COPY and
the batches through another, spelled by the loader itself; a store without
that (SQLite) is handed row tuples. Each test loads one input both ways into
the same store and compares every column of every stored row: escapes (tab,
backslash, carriage return, NUL), kept CSV columns (quotes, braces, commas),
texts per recipient, settled inputs and empty batches.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from cluster_support import DATABASE_URL, new_schema, numbers, query, require_postgres

from sms_async import Template
from sms_async._batching import LOCAL_FLUSH

pytest.importorskip("psycopg")

from sms_async.campaign import RecipientSource
from sms_async.cluster import CampaignSpec, create_campaign

# Valid numbers, repeats of them in other spellings, invalid inputs (repeated
# too), and inputs holding every character COPY's text format escapes.
TRICKY = [
    *numbers(150),
    "not a number",
    "+919800000001",
    "098000 00002",
    "not a number",
    "tab\there",
    "back\\slash \\N",
    "carriage\rreturn",
    "nul\x00byte",
    "  +91 98000 00003\t",
    "ünïcødé ☎",
    *numbers(120, start=1000),
    *["12"] * (2 * LOCAL_FLUSH + 5),
    *numbers(30, start=5000),
]


class _RowByRow:
    """The same store, whose loading only offers ``write`` of row tuples (as a store without COPY)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    @contextlib.asynccontextmanager
    async def loading(self, params: dict[str, Any]) -> AsyncIterator[Any]:
        async with self._store.loading(params) as loading:
            yield _Plain(loading)


class _Plain:
    def __init__(self, loading: Any) -> None:
        self.campaign = loading.campaign
        self.write = loading.write
        self.loaded = loading.loaded


def _stored(schema: str, campaign: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    inputs = query(
        f'SELECT position, row, kept, raw, e164, outcome, reason FROM "{schema}".inputs '  # noqa: S608
        "WHERE campaign = %s ORDER BY position",
        campaign,
    )
    columns = (
        "idx, shard, first_position, size, numbers, text, parts, digest, state, settled, lost, "
        "local_invalid, local_duplicate, invalid, duplicate, requests, retries"
    )
    batches = query(
        f'SELECT {columns} FROM "{schema}".batches WHERE campaign = %s ORDER BY idx',  # noqa: S608
        campaign,
    )
    return inputs, batches


async def _both_ways(store: Any, spec: CampaignSpec, make: Any) -> tuple[Any, Any]:
    """Load ``make()``'s (recipients, rows) through COPY and row by row; both campaigns' stored rows."""
    loaded = []
    for target in (store, _RowByRow(store)):
        recipients, rows = make()
        try:
            loaded.append(await create_campaign(target, spec, recipients, rows=rows))
        finally:
            if isinstance(rows, RecipientSource):
                rows.close()
    copied, by_row = loaded
    assert (copied.inputs, copied.recipients, copied.batches) == (
        by_row.inputs,
        by_row.recipients,
        by_row.batches,
    )
    return _stored(store.schema, copied.id), _stored(store.schema, by_row.id)


def _opened(source: RecipientSource) -> tuple[Any, RecipientSource]:
    return source, source


async def test_an_iterable_of_tricky_inputs_stores_the_same_rows_both_ways(store):
    copied, by_row = await _both_ways(
        store, CampaignSpec("Hello", "ITONAB", shard_size=2), lambda: (TRICKY, None)
    )
    inputs, batches = copied
    assert (inputs, batches) == by_row
    assert [row[0] for row in inputs] == list(range(1, len(TRICKY) + 1))
    assert {row[3] for row in inputs} >= {"tab\there", "back\\slash \\N", "carriage\rreturn", "nul\ufffdbyte"}
    outcomes = [row[5] for row in inputs]
    assert outcomes.count("duplicate") >= 2
    assert outcomes.count("invalid") >= LOCAL_FLUSH
    assert any(batch[9] for batch in batches)  # a batch of settled inputs only is stored settled


async def test_a_file_of_lines_with_blank_lines_stores_the_same_rows_both_ways(store, tmp_path: Path):
    path = tmp_path / "numbers.txt"
    lines = [*numbers(40), "", "   ", "+919800000003", "bad\\line\twith tab", *numbers(70, start=900), ""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    copied, by_row = await _both_ways(
        store, CampaignSpec("Hello", "ITONAB"), lambda: _opened(RecipientSource(str(path)))
    )
    assert copied == by_row
    # The row is the file's line: the blank lines are skipped, not counted as inputs.
    assert [row[1] for row in copied[0]][40:43] == [43, 44, 45]


async def test_kept_csv_columns_store_the_same_arrays_both_ways(store, tmp_path: Path):
    path = tmp_path / "people.csv"
    path.write_text(
        "phone,name,note\n"
        + "".join(
            f'{number},"N{i}, ""the"" {{{i}}}",back\\slash\ttab\n' for i, number in enumerate(numbers(30))
        )
        + "bad,,\n"
        + '+919800000001,"two\nlines",\n'
        + "+919800000031\n",
        encoding="utf-8",
    )
    copied, by_row = await _both_ways(
        store,
        CampaignSpec("Hello", "ITONAB"),
        lambda: _opened(RecipientSource(str(path), keep_columns=True)),
    )
    assert copied == by_row
    kept = [row[2] for row in copied[0]]
    assert kept[0] == ['N0, "the" {0}', "back\\slash\ttab"]
    assert kept[-1] == ["", ""]


async def test_texts_per_recipient_store_the_same_batches_both_ways(store):
    people = [{"phone": number, "name": f"N{i % 7}\t\\"} for i, number in enumerate(numbers(60))]
    people += [{"phone": "bad", "name": "X"}, {"phone": people[0]["phone"], "name": "again"}]
    spec = CampaignSpec(Template("Hi {name}", number="phone"), "ITONAB", shard_size=3)
    copied, by_row = await _both_ways(store, spec, lambda: (people, None))
    assert copied == by_row
    texts = {batch[5] for batch in copied[1]}
    assert "Hi N0\t\\" in texts


async def test_a_load_read_slower_than_the_statement_timeout_is_stored_whole(monkeypatch):
    """The inputs' one COPY lasts as long as the reading: the load lifts the 0.8 s statement timeout."""
    require_postgres()
    monkeypatch.setenv("SMS_ASYNC_DATABASE_TIMEOUT", "1")
    from sms_async.cluster import CampaignStore  # noqa: PLC0415 - after the timeout is set

    async def slow() -> AsyncIterator[str]:
        for number in numbers(300):
            if number.endswith("150"):
                await anyio.sleep(1.5)
            yield number

    async with CampaignStore(DATABASE_URL, schema=new_schema(), patience=10) as store:
        try:
            assert store.connecting.statement_timeout < 1.5
            created = await create_campaign(store, CampaignSpec("Hello", "ITONAB"), slow())
            assert (created.inputs, created.recipients, created.batches) == (300, 300, 3)
            assert query(f'SELECT count(*) FROM "{store.schema}".inputs') == [(300,)]  # noqa: S608
        finally:
            await store.drop()
