"""Gateway names -> driver classes: how the engine, the command line and the simulator find a gateway.

A third gateway is one driver module and one line::

    register_gateway(MyGateway)          # MyGateway.name == "mygateway"

or, from another package, an entry point in the ``sms_async.gateways``
group naming the driver class. Entry points are read the first time a name
is looked up that is not registered yet.
"""

from __future__ import annotations

import threading
from importlib.metadata import entry_points
from typing import Any

from sms_async._exceptions import ConfigurationError
from sms_async.providers._base import Driver

__all__ = ["gateway", "gateway_names", "register_gateway"]

_ENTRY_POINTS = "sms_async.gateways"

_lock = threading.Lock()
_drivers: dict[str, type[Any]] = {}
_entry_points_read = False


def register_gateway(driver: type[Any], *, replace: bool = False) -> type[Any]:
    """Register a driver class under its ``name`` (usable as a class decorator).

    Raises:
        ConfigurationError: the class has no usable ``name``, or the name is
            taken by another class (pass ``replace=True`` to take it over).
    """
    name = getattr(driver, "name", None)
    if not isinstance(name, str) or not name or not name.replace("_", "").replace("-", "").isalnum():
        raise ConfigurationError(f"a gateway driver needs a short alphanumeric 'name', got {name!r}")
    for attribute in ("capabilities", "settings_keys", "from_settings", "max_batch"):
        if not hasattr(driver, attribute):
            raise ConfigurationError(f"the gateway driver {driver.__name__} has no {attribute!r}")
    with _lock:
        existing = _drivers.get(name)
        if existing is not None and existing is not driver and not replace:
            raise ConfigurationError(
                f"the gateway name {name!r} is taken by {existing.__module__}.{existing.__qualname__}"
            )
        _drivers[name] = driver
    return driver


def unregister_gateway(name: str) -> None:
    """Forget a registered gateway (for tests that register a toy one)."""
    with _lock:
        _drivers.pop(name, None)


def _read_entry_points() -> None:
    global _entry_points_read  # noqa: PLW0603 - read once per process
    if _entry_points_read:
        return
    _entry_points_read = True
    for point in entry_points(group=_ENTRY_POINTS):
        if point.name not in _drivers:
            register_gateway(point.load())


def gateway_names() -> tuple[str, ...]:
    """Every registered gateway name, sorted."""
    _read_entry_points()
    return tuple(sorted(_drivers))


def gateway(name: str) -> type[Driver]:
    """The driver class registered as ``name``.

    Raises:
        ConfigurationError: no gateway has that name (the message lists those that exist).
    """
    driver = _drivers.get(name)
    if driver is None:
        _read_entry_points()
        driver = _drivers.get(name)
    if driver is None:
        known = ", ".join(gateway_names()) or "none"
        raise ConfigurationError(f"unknown gateway {name!r}; choose one of: {known}")
    found: type[Driver] = driver
    return found
