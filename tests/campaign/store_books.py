"""The campaign stores as delivery books for the common suite: SQLite, and PostgreSQL when it answers.

Each adapter loads one campaign of a hundred one-number batches (``+910`` to
``+9199``) and accepts numbers through the store's own claim and settle, so
the suite checks the very rows a campaign run writes.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sms_async.campaign import DeliveryTally, NumberDelivery, SqliteStore, Store, numbers_digest

DATABASE_URL = os.environ.get("SMS_ASYNC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
NUMBERS = [f"+91{n}" for n in range(100)]
_CAMPAIGN = {
    "gateway": "iton",
    "region": "IN",
    "sender_id": "ITONAB",
    "text": "Hello",
    "personal": False,
    "params": "{}",
    "columns": [],
    "max_segments": None,
    "skip_dnd": False,
    "rate": None,
    "queue": "sms_async",
    "input_name": "-",
    "max_batch": 1,
    "shard_size": 200,
}


class StoreBookUnderTest:
    """A store's delivery book, numbers accepted through claim and settle."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.campaign = 0
        self.book: Any = None

    async def load(self) -> None:
        """One campaign, one batch per number, started."""
        await self.store.install()
        inputs = [(0, p, p, None, n, n, None, None) for p, n in enumerate(NUMBERS, 1)]
        batches = [
            (0, p - 1, 0, p, 1, 1, None, 1, numbers_digest([n], None), "pending", False, 0, 0, 0, 0)
            for p, n in enumerate(NUMBERS, 1)
        ]
        async with self.store.loading(_CAMPAIGN) as loading:
            campaign = loading.campaign
            await loading.write(
                [(campaign, *row[1:]) for row in inputs], [(campaign, *row[1:]) for row in batches]
            )
            await loading.loaded(len(NUMBERS), len(NUMBERS), len(NUMBERS))
        self.campaign = campaign
        await self.store.start(campaign)
        self.book = self.store.delivery_book(campaign)

    async def add(self, message_ids: Mapping[str, str], accepted_at: datetime) -> None:
        """Accept the numbers: their batches claimed and settled as sent (a number accepted before stays)."""
        for number, message_id in message_ids.items():
            idx = NUMBERS.index(number)
            if not await self.store.claim(self.campaign, idx, "test"):
                continue
            await self.store.settle(
                self.campaign,
                idx,
                "test",
                state="sent",
                counts={},
                rows=[(idx + 1, "accepted", message_id, "")],
                accepted_at=accepted_at,
            )

    async def delivery(self, number: str) -> NumberDelivery:
        """One number's delivery, as the export reads it."""
        async for entry, _kept, state, at in self.store.export_deliveries(self.campaign):
            if entry.e164 == number:
                raw = await _raw(self.store, self.campaign, number)
                return NumberDelivery(state, raw, datetime.fromisoformat(at) if at else None)  # type: ignore[arg-type]
        raise KeyError(number)

    async def tally(self) -> DeliveryTally:
        """Numbers by state, as status reads them."""
        return await self.store.delivery_tally(self.campaign)


async def _raw(store: Store, campaign: int, number: str) -> str:
    """The gateway's last word for one number, read from the store's results."""
    position = NUMBERS.index(number) + 1
    if isinstance(store, SqliteStore):
        row = await store.in_thread(
            lambda conn: conn.execute(
                "SELECT coalesce(delivery_raw, '') FROM results WHERE campaign = ? AND position = ?",
                (campaign, position),
            ).fetchone()
        )
    else:
        async with store.connection() as conn:  # type: ignore[attr-defined]
            row = await (
                await conn.execute(
                    f"SELECT coalesce(delivery_raw, '') FROM \"{store.schema}\".results "  # noqa: S608 - a test's schema
                    "WHERE campaign = %s AND position = %s",
                    (campaign, position),
                )
            ).fetchone()
    return str(row[0])


@contextlib.asynccontextmanager
async def sqlite_book() -> AsyncIterator[StoreBookUnderTest]:
    """The SQLite store's book, in a file of a temporary directory."""
    with tempfile.TemporaryDirectory() as folder:
        async with SqliteStore(Path(folder) / "campaigns.db") as store:
            subject = StoreBookUnderTest(store)
            await subject.load()
            yield subject


@contextlib.asynccontextmanager
async def postgresql_book() -> AsyncIterator[StoreBookUnderTest]:
    """The PostgreSQL store's book, in a schema of its own (skipped when PostgreSQL does not answer)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        with psycopg.connect(DATABASE_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        if os.environ.get("SMS_ASYNC_REQUIRE_SERVICES") == "1":
            pytest.fail(f"PostgreSQL is not reachable at {DATABASE_URL}: {error}")
        pytest.skip(f"PostgreSQL is not reachable at {DATABASE_URL}")
    from sms_async.cluster import CampaignStore  # noqa: PLC0415 - the cluster extra may be missing

    async with CampaignStore(DATABASE_URL, schema=f"sms_test_{uuid.uuid4().hex[:12]}", patience=10) as store:
        try:
            subject = StoreBookUnderTest(store)
            await subject.load()
            yield subject
        finally:
            await store.drop()
