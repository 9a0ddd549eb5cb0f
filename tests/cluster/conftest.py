"""Fixtures of the cluster tests: a campaign store in a schema of its own, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from cluster_support import DATABASE_URL, new_schema, require_postgres


@pytest.fixture
async def store() -> AsyncIterator[object]:
    """An installed campaign store in a fresh schema (PostgreSQL required)."""
    require_postgres()
    from sms_async.cluster import CampaignStore  # noqa: PLC0415 - the cluster extra may be missing

    async with CampaignStore(DATABASE_URL, schema=new_schema(), patience=10) as opened:
        await opened.install()
        try:
            yield opened
        finally:
            await opened.drop()
