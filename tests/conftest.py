"""Fixtures shared by every test directory (the simulated gateway's own come from its pytest plugin)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest
from leak_checks import (  # noqa: F401 - autouse: pytest finds them here
    every_postgresql_connection_closed,
    every_sqlite_connection_closed,
)

# The toy gateway is a distribution of its own (tests/toy_gateway_dist), installed
# beside sms_async in CI; where it is not installed, its source is imported from
# here, and only the tests of its entry points are skipped.
try:
    distribution("sms-async-toy-gateway")
    TOY_INSTALLED = True
except PackageNotFoundError:
    TOY_INSTALLED = False
    sys.path.insert(0, str(Path(__file__).parent / "toy_gateway_dist" / "src"))

from toy_gateway import Toy, ToyProtocol

from sms_async.providers import register_gateway, unregister_gateway
from sms_async.testing import register_protocol, unregister_protocol


@pytest.fixture
def toy_distribution() -> None:
    """Skip unless the toy gateway's distribution is installed (in CI, fail instead)."""
    if TOY_INSTALLED:
        return
    reason = "the toy gateway is not installed: pip install -e tests/toy_gateway_dist"
    if os.environ.get("SMS_ASYNC_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def toy_gateway() -> Iterator[type[Toy]]:
    """A third gateway for one test: its driver (``--gateway toy``) and its simulator protocol."""
    register_gateway(Toy)
    register_protocol(ToyProtocol)
    yield Toy
    unregister_protocol("toy")
    unregister_gateway("toy")
