"""Fixtures of the cluster tests: a campaign store in a schema of its own, dropped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

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


@pytest.fixture(params=["sqlite", "postgresql"])
async def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    """An installed, empty campaign store of each kind: the tests that take it run on both stores."""
    from sms_async.campaign import SqliteStore  # noqa: PLC0415 - as the store fixture imports its own

    if request.param == "sqlite":
        async with SqliteStore(tmp_path / "campaigns.db") as opened:
            await opened.install()
            yield opened
        return
    require_postgres()
    from sms_async.cluster import CampaignStore  # noqa: PLC0415 - the cluster extra may be missing

    async with CampaignStore(DATABASE_URL, schema=new_schema(), patience=10) as shared:
        await shared.install()
        try:
            yield shared
        finally:
            await shared.drop()
