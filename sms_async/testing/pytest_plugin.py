"""Pytest fixtures for sms_async's simulated gateway.

``sms_gateway`` is a started :class:`~sms_async.testing.SimulatedGateway` with
default options; ``sms_gateway_factory(**options)`` starts one with options.
Both stop their gateways when the test ends. The gateway runs in a thread of
its own, so the fixtures serve sync, asyncio and trio tests alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from sms_async.testing import SimulatedGateway

__all__ = ["sms_gateway", "sms_gateway_factory"]


@pytest.fixture
def sms_gateway() -> Iterator[SimulatedGateway]:
    """A simulated gateway on 127.0.0.1 serving every registered protocol, started for this test."""
    # Imported here so that loading the plugin costs nothing in test runs that do not use it.
    from sms_async.testing import SimulatedGateway  # noqa: PLC0415  (loading the plugin must cost nothing in runs that do not use it)

    with SimulatedGateway() as gateway:
        yield gateway


@pytest.fixture
def sms_gateway_factory() -> Iterator[Callable[..., SimulatedGateway]]:
    """A function that starts a simulated gateway with the given options; all are stopped after the test."""
    from sms_async.testing import SimulatedGateway  # noqa: PLC0415  (as above)

    started: list[SimulatedGateway] = []

    def factory(**options: Any) -> SimulatedGateway:
        gateway = SimulatedGateway(**options).start()
        started.append(gateway)
        return gateway

    yield factory
    for gateway in reversed(started):
        gateway.stop()
