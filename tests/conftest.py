"""Fixtures shared by every test directory (the simulated gateway's own come from its pytest plugin)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from leak_checks import every_sqlite_connection_closed  # noqa: F401 - autouse: pytest finds it here
from toy_gateway import Toy, ToyProtocol

from sms_async.providers import register_gateway, unregister_gateway
from sms_async.testing import register_protocol, unregister_protocol


@pytest.fixture
def toy_gateway() -> Iterator[type[Toy]]:
    """A third gateway for one test: its driver (``--gateway toy``) and its simulator protocol."""
    register_gateway(Toy)
    register_protocol(ToyProtocol)
    yield Toy
    unregister_protocol("toy")
    unregister_gateway("toy")
