"""Which gateway protocols the simulator speaks: a registry of :class:`SimulatedProtocol` classes by name.

A ``SimulatedGateway()`` built without ``protocols=`` serves one instance of
every registered protocol, on one port. ITON and ItecPay are registered here;
a third gateway registers itself with one call::

    from sms_async.testing import register_protocol

    register_protocol(ToyProtocol)

Fault operation names (``Fault(operations=...)``) are checked against the
registered protocols' operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, TypeVar

from sms_async.testing._itecpay import ItecPayProtocol
from sms_async.testing._iton import ItonProtocol
from sms_async.testing._protocol import SimulatedProtocol, UnknownPath

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
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


def check_protocol(protocol: type[SimulatedProtocol]) -> None:
    """Raise ``TypeError``/``ValueError`` unless ``protocol`` is a complete ``SimulatedProtocol`` class."""
    if not isinstance(protocol, type) or not issubclass(protocol, SimulatedProtocol):
        raise TypeError(f"expected a SimulatedProtocol subclass, got {protocol!r}")
    name = getattr(protocol, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{protocol.__name__}.name must be an identifier such as 'iton', got {name!r}")
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
    """Remove the protocol registered under ``name`` (gateways already built keep serving it)."""
    if _registry.pop(name, None) is None:
        raise ValueError(
            f"no gateway protocol named {name!r} is registered; registered: {sorted(_registry)!r}"
        )


def registered_protocols() -> tuple[type[SimulatedProtocol], ...]:
    """The registered protocol classes, in registration order."""
    return tuple(_registry.values())


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
            raise ValueError(f"operation names look like 'gateway.operation' ('iton.sendSMS'), got {op!r}")
        protocol = UnknownPath if prefix == UnknownPath.name else _registry.get(prefix)
        if protocol is not None and op not in protocol.operations:
            raise ValueError(f"unknown operation {op!r}; known: {sorted(protocol.operations)!r}")
    return checked


register_protocol(ItonProtocol)
register_protocol(ItecPayProtocol)
