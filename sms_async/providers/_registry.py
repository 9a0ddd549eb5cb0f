"""Gateway names -> driver classes: how the engine, the command line and the simulator find a gateway.

A third gateway is one driver module and one line::

    register_gateway(MyGateway)          # MyGateway.name == "mygateway"

or, from another package, an entry point in the ``sms_async.gateways``
group naming the driver class::

    [project.entry-points."sms_async.gateways"]
    mygateway = "my_package.driver:MyGateway"

An entry point is loaded the first time its name is looked up and is not
registered; its name is listed by :func:`gateway_names` without loading it.
"""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Final

from sms_async._exceptions import ConfigurationError
from sms_async.providers._base import Driver

__all__ = ["ENTRY_POINT_GROUP", "gateway", "gateway_names", "register_gateway", "unregister_gateway"]

#: The entry-point group other packages declare their driver classes in.
ENTRY_POINT_GROUP: Final = "sms_async.gateways"

_lock = threading.Lock()
_drivers: dict[str, type[Any]] = {}


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
    """Forget a registered gateway (for tests that register a toy one).

    A gateway declared by an entry point is found again the next time its name is looked up.
    """
    with _lock:
        _drivers.pop(name, None)


# The group's entry points, read once a process (a read opens every installed
# distribution's metadata: ~8 ms with a hundred of them, and the command line
# asks for the names once per option it builds). Kept with the function that
# read them, so that a test replacing ``entry_points`` is read afresh.
_scanned: list[tuple[object, dict[str, EntryPoint]]] = []


def _declared() -> dict[str, EntryPoint]:
    """The entry points of the group by name (the first wins where two packages declare one name)."""
    if _scanned and _scanned[0][0] is entry_points:
        return _scanned[0][1]
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    _scanned[:] = [(entry_points, found)]
    return found


def _load(point: EntryPoint) -> type[Any]:
    """Load and register the driver an entry point names; a failure says which package to look at."""
    problem = None
    try:
        driver = point.load()
    except Exception as error:  # noqa: BLE001 - any failure of a third-party import is reported the same way
        problem = f"{type(error).__name__}: {error}"
    if problem is not None:
        raise ConfigurationError(
            f"the gateway {point.name!r} declared by the entry point {point.value!r} cannot be loaded "
            f"({problem}): check that its package is installed completely"
        )
    if getattr(driver, "name", None) != point.name:
        raise ConfigurationError(
            f"the entry point {point.name!r} names {point.value!r}, whose 'name' is "
            f"{getattr(driver, 'name', None)!r}: the two must be the same"
        )
    return register_gateway(driver)


def gateway_names() -> tuple[str, ...]:
    """Every gateway name, registered or declared by an entry point, sorted."""
    with _lock:
        names = set(_drivers)
    return tuple(sorted(names | _declared().keys()))


def gateway(name: str) -> type[Driver]:
    """The driver class registered as ``name``, loading its entry point if need be.

    Raises:
        ConfigurationError: no gateway has that name (the message lists those
            that exist), or its entry point cannot be loaded.
    """
    driver = _drivers.get(name)
    if driver is None:
        point = _declared().get(name)
        if point is not None:
            driver = _load(point)
    if driver is None:
        known = ", ".join(gateway_names()) or "none"
        raise ConfigurationError(f"unknown gateway {name!r}; choose one of: {known}")
    found: type[Driver] = driver
    return found
