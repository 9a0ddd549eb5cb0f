"""Which gateway protocols the simulator speaks: a registry of :class:`SimulatedProtocol` classes by name.

A ``SimulatedGateway()`` built without ``protocols=`` serves one instance of
every registered protocol, on one port. The built-in protocols are registered
by ``_builtin``; a third gateway registers itself with one call::

    from sms_async.testing import register_protocol

    register_protocol(ToyProtocol)

or, from another package, with an entry point in the
``sms_async.simulator_protocols`` group, as drivers are declared in
``sms_async.gateways``::

    [project.entry-points."sms_async.simulator_protocols"]
    toy = "toy_gateway:ToyProtocol"

Declared protocols are loaded when the registered ones are listed. Fault
operation names (``Fault(operations=...)``) are checked against the
registered protocols' operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING, Final, TypeVar

from sms_async.testing._protocol import SimulatedProtocol, UnknownPath

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "ENTRY_POINT_GROUP",
    "check_operation_names",
    "check_protocol",
    "register_protocol",
    "registered_protocols",
    "unregister_protocol",
]

_P = TypeVar("_P", bound=type[SimulatedProtocol])

#: Names that belong to the simulator itself, not to a gateway.
RESERVED: Final = frozenset({UnknownPath.name, "simulator"})
_registry: dict[str, type[SimulatedProtocol]] = {}
#: The entry-point group other packages declare their simulator protocols in.
ENTRY_POINT_GROUP: Final = "sms_async.simulator_protocols"


def check_protocol(protocol: type[SimulatedProtocol]) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``protocol`` is a complete ``SimulatedProtocol`` class."""
    if not isinstance(protocol, type) or not issubclass(protocol, SimulatedProtocol):
        raise TypeError(f"expected a SimulatedProtocol subclass, got {protocol!r}")
    name = getattr(protocol, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"{protocol.__name__}.name must be an identifier, the gateway's name (such as 'my_gateway'), "
            f"got {name!r}"
        )
    if name in RESERVED:
        raise ValueError(f"{protocol.__name__}.name {name!r} is reserved by the simulator; choose another")
    operations = getattr(protocol, "operations", None)
    if not isinstance(operations, frozenset) or not operations:
        raise ValueError(f"{protocol.__name__}.operations must be a non-empty frozenset of operation names")
    stray = sorted(op for op in operations if not isinstance(op, str) or not op.startswith(f"{name}."))
    if stray:
        raise ValueError(
            f"{protocol.__name__}: operation names must start with {name + '.'!r}, got {stray!r}"
        )
    if not isinstance(getattr(protocol, "default_paths", None), Mapping):
        raise TypeError(f"{protocol.__name__}.default_paths must map path roles to paths")
    if not protocol.answer_forms:
        raise ValueError(f"{protocol.__name__}.answer_forms must name at least one form")
    for method in ("read", "answer"):
        if getattr(protocol, method) is getattr(SimulatedProtocol, method):
            raise ValueError(f"{protocol.__name__} must implement {method}()")


def register_protocol(protocol: _P, *, replace: bool = False) -> _P:
    """Register a gateway protocol class under its ``name``; return it (so it works as a decorator).

    Every ``SimulatedGateway()`` built afterwards without ``protocols=`` serves
    it too, and faults may name its operations. Registering a different class
    under a name already taken raises ``ValueError`` unless ``replace``.
    """
    check_protocol(protocol)
    current = _registry.get(protocol.name)
    if current is not None and current is not protocol and not replace:
        raise ValueError(
            f"a gateway protocol named {protocol.name!r} is already registered ({current.__name__}); "
            "pass replace=True to replace it, or choose another name"
        )
    _registry[protocol.name] = protocol
    return protocol


def unregister_protocol(name: str) -> None:
    """Remove the protocol registered under ``name`` (gateways already built keep serving it).

    A protocol declared by an entry point is registered again the next time the protocols are listed.
    """
    if _registry.pop(name, None) is None:
        raise ValueError(
            f"no gateway protocol named {name!r} is registered; registered: {sorted(_registry)!r}"
        )


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


def _load(point: EntryPoint) -> None:
    """Load and register the protocol an entry point names; a failure says which package to look at."""
    problem = None
    try:
        protocol = point.load()
    except Exception as error:  # noqa: BLE001 - any failure of a third-party import is reported the same way
        problem = f"{type(error).__name__}: {error}"
    if problem is not None:
        raise ValueError(
            f"the simulator protocol {point.name!r} declared by the entry point {point.value!r} cannot be "
            f"loaded ({problem}): check that its package is installed completely"
        )
    if getattr(protocol, "name", None) != point.name:
        raise ValueError(
            f"the entry point {point.name!r} names {point.value!r}, whose 'name' is "
            f"{getattr(protocol, 'name', None)!r}: the two must be the same"
        )
    register_protocol(protocol)


def registered_protocols() -> tuple[type[SimulatedProtocol], ...]:
    """The registered protocol classes, in registration order (those declared by entry points last)."""
    for name, point in _declared().items():
        if name not in _registry:
            _load(point)
    return tuple(_registry.values())


def example_operation(protocols: Iterable[type[SimulatedProtocol]]) -> str | None:
    """An operation name of the first of ``protocols``, for a message's example: a send if it has one."""
    for protocol in protocols:
        names = sorted(protocol.operations)
        return next((op for op in names if "send" in op.lower()), names[0])
    return None


def check_operation_names(names: Iterable[str]) -> frozenset[str]:
    """Check fault operation names against the registered protocols; return them as a frozenset.

    A name is ``<gateway>.<operation>``. A name of a registered gateway must be
    one of its operations; a name of a gateway not registered (one given to a
    single ``SimulatedGateway(protocols=...)``) is checked when the fault is put
    in force on that gateway.
    """
    checked = frozenset(names)
    for op in sorted(checked, key=str):
        prefix, dot, rest = op.partition(".") if isinstance(op, str) else ("", "", "")
        if not dot or not rest or not prefix:
            example = example_operation(_registry.values())
            such_as = f" ({example!r})" if example is not None else ""
            raise ValueError(f"operation names look like 'gateway.operation'{such_as}, got {op!r}")
        if prefix not in _registry and prefix != UnknownPath.name:
            point = _declared().get(prefix)
            if point is not None:
                _load(point)
        protocol = UnknownPath if prefix == UnknownPath.name else _registry.get(prefix)
        if protocol is not None and op not in protocol.operations:
            raise ValueError(f"unknown operation {op!r}; known: {sorted(protocol.operations)!r}")
    return checked
