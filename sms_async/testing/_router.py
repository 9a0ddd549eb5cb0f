"""From a request's path to the protocol that reads it, and the one place an operation is carried out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from sms_async.testing._protocol import UnknownPath

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sms_async.testing._protocol import Operation, Request, Response, SimulatedProtocol
    from sms_async.testing._state import GatewayState

__all__ = ["ADMIN_PREFIX", "Router"]

#: Paths under this prefix belong to the simulator itself; no protocol may serve one.
ADMIN_PREFIX: Final = "/_simulator/"


class Router:
    """The protocols one gateway serves, by name and by path.

    Args:
        protocols: The gateway protocols; names and paths must not clash.
        state: The shared state every operation is carried out against.
        admin: The simulator's own endpoint, served under :data:`ADMIN_PREFIX`.
    """

    def __init__(
        self, protocols: Iterable[SimulatedProtocol], state: GatewayState, *, admin: SimulatedProtocol
    ) -> None:
        self.state = state
        self.admin = admin
        self.unknown = UnknownPath()
        self.protocols: dict[str, SimulatedProtocol] = {}
        self._routes: dict[str, SimulatedProtocol] = {}
        for protocol in protocols:
            if protocol.name in self.protocols:
                raise ValueError(
                    f"two protocols are named {protocol.name!r}; a gateway serves each name once"
                )
            self.protocols[protocol.name] = protocol
            for path in protocol.served_paths():
                if path.startswith(ADMIN_PREFIX):
                    raise ValueError(f"{protocol.name}: paths under {ADMIN_PREFIX} belong to the simulator")
                self._add_route(path, protocol)
        for path in admin.served_paths():
            self._add_route(path, admin)
        #: Every operation name a request to this gateway can be counted as.
        self.operations: frozenset[str] = frozenset().union(
            self.unknown.operations, *(p.operations for p in self.protocols.values())
        )

    def _add_route(self, path: str, protocol: SimulatedProtocol) -> None:
        other = self._routes.get(path)
        if other is not None:
            raise ValueError(
                f"the path {path!r} is served by both {other.name} and {protocol.name}; give one another path"
            )
        self._routes[path] = protocol

    def read(self, request: Request) -> Operation:
        """Read ``request`` as an operation of the protocol serving its path (``http.other`` for none)."""
        return self._routes.get(request.path, self.unknown).read(request)

    def carry_out(self, operation: Operation, share: float | None = None) -> Response:
        """Carry ``operation`` out and answer it; ``share`` accepts only part of a send's numbers."""
        if operation.error is not None:
            return operation.error
        return operation.protocol.answer(operation, self.state, share=share)
