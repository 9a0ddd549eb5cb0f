"""What a simulated gateway protocol is: the request it reads, the answer it gives, and its base class.

A gateway protocol turns an HTTP :class:`Request` into an :class:`Operation`
(cheap: nothing is carried out yet, so faults can be chosen by operation
name), then answers the operation with a :class:`Response`, using the shared
:class:`~sms_async.testing.GatewayState` for accounts, credits, message ids,
stored messages and delivery statuses. The HTTP server, the fault plan and the
state never look inside a protocol; a protocol never touches a socket.

A new gateway is one subclass of :class:`SimulatedProtocol` and one call to
:func:`~sms_async.testing.register_protocol`::

    class ToyProtocol(SimulatedProtocol):
        name = "toy"
        operations = frozenset({"toy.send"})
        default_paths = {"send": "/toy/send"}

        def read(self, request):
            operation = Operation("toy.send", self, request)
            operation.data = json.loads(request.body)
            return operation

        def answer(self, operation, state, *, share=None):
            ...  # state.login, state.charge, state.new_id, state.store, state.record_send
            return json_response(200, {"id": message_id})

Everything here runs on the server's event loop thread.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar, Final, NamedTuple, Protocol
from urllib.parse import unquote

if TYPE_CHECKING:
    from sms_async.testing._state import GatewayState

__all__ = [
    "JSON",
    "SENDER_ID",
    "TEXT",
    "GatewayView",
    "Operation",
    "Request",
    "Response",
    "SimulatedProtocol",
    "json_response",
    "parse_query",
    "phone_digits_ok",
    "text_response",
]

TEXT: Final = "text/plain; charset=utf-8"
JSON: Final = "application/json"
#: A sender id: up to 11 letters, digits and spaces with at least one letter,
#: or up to 15 digits.
SENDER_ID: Final = re.compile(r"(?=[^A-Za-z]*[A-Za-z])[A-Za-z0-9 ]{1,11}|[0-9]{1,15}")


def phone_digits_ok(digits: str) -> bool:
    """Whether ``digits`` can be an international number: 7 to 15 ASCII digits, not starting with 0."""
    return 7 <= len(digits) <= 15 and digits.isdigit() and digits.isascii() and digits[0] != "0"


class Request:
    """One HTTP request as the server read it.

    Attributes:
        method: The method, such as ``"GET"``.
        path: The path, without the query string.
        query: The raw query string (after ``?``, before any ``#``), not decoded.
        headers: Header values by lower-case name; repeated headers joined with ``", "``.
        body: The body (Content-Length bytes; empty when there is none).
        keep_alive: Whether the connection stays open after the answer.
        client: The client's address (host only), when known.
    """

    __slots__ = ("body", "client", "headers", "keep_alive", "method", "path", "query")

    def __init__(
        self,
        method: str,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes,
        keep_alive: bool,
        client: str | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.client = client


class Response(NamedTuple):
    """An answer to write: status, content type, body and any extra headers."""

    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class Operation:
    """A request read as one gateway operation, before it is carried out.

    Attributes:
        name: The operation's name, ``"<gateway>.<operation>"`` (``"iton.sendSMS"``,
            ``"itecpay.send"``, ``"http.other"``): what faults are limited to and
            what :attr:`GatewayStats.requests` counts.
        protocol: The protocol that read it and answers it.
        request: The request it was read from.
        params: Decoded parameters, for protocols that take them (query or form).
        data: Whatever else the protocol read (a JSON body, say).
        error: An answer already decided while reading (a malformed body, a
            method not allowed): it is given instead of carrying anything out.
    """

    __slots__ = ("data", "error", "name", "params", "protocol", "request")

    def __init__(self, name: str, protocol: SimulatedProtocol, request: Request) -> None:
        self.name = name
        self.protocol = protocol
        self.request = request
        self.params: dict[str, str] = {}
        self.data: object = None
        self.error: Response | None = None


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def text_response(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A ``text/plain`` answer."""
    return Response(status, TEXT, text.encode(), headers)


def json_response(status: int, value: object, headers: tuple[tuple[str, str], ...] = ()) -> Response:
    """A compact JSON answer (UTF-8, not ASCII-escaped)."""
    return Response(status, JSON, _json_bytes(value), headers)


def parse_query(query: str) -> list[tuple[str, str]]:
    """Split a query string into decoded (name, value) pairs, in order, repeats kept.

    ``+`` is a space and ``%XX`` a UTF-8 byte, as in ``urllib.parse.parse_qsl``
    with blank values kept and strict decoding (a ``UnicodeDecodeError`` for
    bytes that are not UTF-8); only faster, as most pieces need no decoding.
    """
    pairs: list[tuple[str, str]] = []
    for piece in query.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        if "+" in name:
            name = name.replace("+", " ")
        if "%" in name:
            name = unquote(name, errors="strict")
        if "+" in value:
            value = value.replace("+", " ")
        if "%" in value:
            value = unquote(value, errors="strict")
        pairs.append((name, value))
    return pairs


class SimulatedProtocol(abc.ABC):
    """One gateway's protocol, as the simulated gateway speaks it.

    Subclasses set the class attributes and implement :meth:`read` and
    :meth:`answer`; the other methods have defaults. An instance holds its
    configuration (paths, answer form) and belongs to one gateway; state
    shared by every protocol (accounts, credits, messages, the do-not-disturb
    list, counters) lives in the :class:`GatewayState` passed to
    :meth:`answer`.

    Class attributes:
        name: The gateway's name (``"iton"``): the prefix of its operation
            names, the key of :func:`register_protocol` and of
            ``SimulatedGateway.url(name)``.
        title: The name as people write it (``"ITON"``), for banners; empty
            for :attr:`name`.
        operations: Every operation name :meth:`read` can give; faults may be
            limited to these.
        default_paths: The paths it serves, by role (``{"send": "/api/sms/send"}``).
        answer_forms: The answer forms it can give (for gateways that answer
            one request in more than one documented way); the first is the default.
        shorthands: Keyword arguments ``SimulatedGateway(...)`` takes for this
            protocol's options, each naming what it sets: ``"answer_form"`` or
            ``"paths.<role>"`` (such as ``{"toy_send_form": "answer_form"}``).
            ``SimulatedGateway(answer_forms=..., paths=...)`` set the same for any protocol.

    Args:
        paths: Paths to serve instead of some defaults, by role; each starts with ``/``.
        answer_form: One of :attr:`answer_forms`; None for the first.
    """

    name: ClassVar[str]
    title: ClassVar[str] = ""
    operations: ClassVar[frozenset[str]]
    default_paths: ClassVar[Mapping[str, str]]
    answer_forms: ClassVar[tuple[str, ...]] = ("default",)
    shorthands: ClassVar[Mapping[str, str]] = {}

    def __init__(self, *, paths: Mapping[str, str] | None = None, answer_form: str | None = None) -> None:
        given = dict(paths or {})
        unknown = given.keys() - self.default_paths.keys()
        if unknown:
            known = sorted(self.default_paths)
            raise ValueError(f"{self.name}: unknown path role(s) {sorted(unknown)!r}; known: {known!r}")
        for role, path in given.items():
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"{self.name}: the {role} path must start with '/', got {path!r}")
        self.paths: dict[str, str] = {**self.default_paths, **given}
        self.answer_form = self.answer_forms[0] if answer_form is None else answer_form
        self.check_answer_form(self.answer_form)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.paths} {self.answer_form}>"

    @classmethod
    def check_answer_form(cls, form: str) -> None:
        """Raise ``ValueError`` unless ``form`` is one of :attr:`answer_forms`."""
        if form not in cls.answer_forms:
            raise ValueError(f"{cls.name}: the answer form must be one of {cls.answer_forms!r}, got {form!r}")

    def served_paths(self) -> Iterable[str]:
        """Every request path this protocol answers (by default the values of :attr:`paths`)."""
        return self.paths.values()

    def base_url(self, origin: str) -> str:
        """The URL a driver for this gateway is given, from the server's ``http://host:port``.

        The default is the origin itself; a gateway with one command endpoint
        returns that endpoint.
        """
        return origin

    @abc.abstractmethod
    def read(self, request: Request) -> Operation:
        """Read ``request`` as an operation; cheap, carries nothing out.

        A request this protocol cannot read still gets an operation (an
        ``<name>.unknown`` one, say) with :attr:`Operation.error` set to the answer.
        """

    @abc.abstractmethod
    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Carry ``operation`` out against ``state`` and answer it.

        ``operation.error`` is never set here (the caller answers with it).
        ``share``, from a ``partial_accept`` fault, asks a send to accept only
        that share of its acceptable numbers (see :meth:`GatewayState.keep_share`).
        """

    def auth_failure(self, operation: Operation) -> Response:
        """The answer the gateway gives to bad credentials (the ``auth_failure`` fault)."""
        return text_response(401, "Unauthorized")

    def busy(self, operation: Operation, status: int, headers: tuple[tuple[str, str], ...]) -> Response:
        """A 429 or 503 answer given before processing, with ``headers`` (Retry-After)."""
        return text_response(status, HTTPStatus(status).phrase, headers)


class GatewayView(Protocol):
    """What a protocol module's shorthand properties need of the gateway that serves it."""

    @property
    def origin(self) -> str:
        """``http://host:port``."""

    def protocol(self, name: str) -> SimulatedProtocol:
        """The protocol served under ``name``."""

    def url(self, name: str) -> str:
        """The base URL a driver for gateway ``name`` is given."""

    def answer_form(self, name: str) -> str:
        """How gateway ``name`` answers a send."""

    def set_answer_form(self, name: str, form: str) -> None:
        """Change how gateway ``name`` answers from the next request on."""


class UnknownPath(SimulatedProtocol):
    """What answers a path no protocol serves: a 404, counted as ``http.other``."""

    name = "http"
    operations = frozenset({"http.other"})
    default_paths: ClassVar[Mapping[str, str]] = {}

    def read(self, request: Request) -> Operation:
        """Every request is ``http.other``, answered 404."""
        operation = Operation("http.other", self, request)
        operation.error = text_response(404, "Not Found")
        return operation

    def answer(self, operation: Operation, state: GatewayState, *, share: float | None = None) -> Response:
        """Not Found (never reached in practice: :meth:`read` gives every such operation its 404)."""
        return text_response(404, "Not Found")
