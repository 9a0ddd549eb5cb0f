"""``SimulatedGateway``: the registered gateway protocols on one loopback port, in a thread or the foreground.

The gateway owns the pieces and their life cycle: the shared state
(``_state.py``), the protocols (one module per gateway, or any registered
one), the router, the fault plan and the HTTP server. Options of one
protocol (its paths, its answer form) are given by gateway name
(``answer_forms=``, ``paths=``) or by the keyword shorthands a protocol class
declares; properties named after a built-in gateway live in that gateway's
module and reach this class through ``_builtin.py``. The module is a little
over 500 lines because it is the simulator's whole public face: every method
is a short, documented delegation to the pieces above, run on the server's
loop by ``_runner.py``.
"""

from __future__ import annotations

import copy
import random
from typing import TYPE_CHECKING, Self, get_args

from sms_async.testing._admin import SimulatorAdmin
from sms_async.testing._builtin import BuiltinShorthands
from sms_async.testing._faults import Fault, FaultPlan
from sms_async.testing._http import HttpServer, is_loopback
from sms_async.testing._protocol import SimulatedProtocol
from sms_async.testing._registry import check_protocol, registered_protocols
from sms_async.testing._router import Router
from sms_async.testing._runner import LoopRunner
from sms_async.testing._state import Account, DndAction, GatewayState, SentMessage
from sms_async.testing._stats import GatewayStats

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from types import TracebackType

    from sms_async._clock import Clock
    from sms_async.testing._delivery import DeliveryPlan, RequestLog

__all__ = ["SimulatedGateway", "is_loopback", "protocol_options"]

#: A protocol given to the gateway: a class (built here, with its options) or an instance (copied).
ProtocolSpec = SimulatedProtocol | type[SimulatedProtocol]


class SimulatedGateway(BuiltinShorthands):
    """A real HTTP/1.1 server on loopback that speaks every registered gateway protocol (ITON, ItecPay, ...).

    Start it in a background thread with its own event loop (``with``,
    ``async with`` under any async library, or :meth:`start`/:meth:`stop`), or
    in the foreground with :meth:`serve_forever`. Every method may be called
    from any thread while it runs.

    Args:
        host: Address to listen on; loopback only unless ``allow_non_loopback``.
        port: Port to listen on; 0 picks a free one (see :attr:`port`).
        username: The default account's user name (every gateway).
        password: The default account's password (every gateway).
        token: The default account's API token, for gateways that take one
            instead of a password (ITON's ``Authorization: ITON <token>``); None for none.
        credits: The default account's credits; a send costs segments x
            accepted recipients.
        accounts: More accounts, as ``(username, password)`` or
            ``(username, password, credits)`` tuples (credits default to 10**9).
        protocols: The gateway protocols to serve, as :class:`SimulatedProtocol`
            classes or instances; None serves every registered one (see
            :func:`register_protocol`). ``answer_forms``, ``paths`` and the
            shorthands configure those given as classes or by default.
        answer_forms: How a gateway answers a send, by gateway name (one of
            its protocol's ``answer_forms``), such as ``{"iton": "json"}``.
        paths: Paths a gateway serves instead of its defaults, by gateway name
            and path role, such as ``{"itecpay": {"send": "/v2/send"}}``.
        dnd_numbers: Numbers on the do-not-disturb list (digits; a leading ``+``
            is dropped).
        dnd_action: What a send does with a do-not-disturb number: ``"allow"``
            sends it like any other; ``"omit"`` accepts the request but not the
            number (no id in the per-number answer forms, silently not sent in
            the single-id forms); ``"refuse"`` treats it as an invalid number
            (the single-id forms refuse the whole request).
        status_delays: Seconds a message stays queued, then sent, before its
            final status.
        undelivered_rate: Share of numbers that end undelivered (ITON's
            UNDELIVERED, ItecPay's U), fixed per message and number by ``seed``.
        failed_rate: Share that ends failed (ITON's FAILED, ItecPay's E).
        faults: The faults in force at start (see :class:`Fault`).
        seed: Seeds fault draws, partial acceptance and final statuses.
        store_messages: Keep accepted messages for status look-ups; False keeps
            memory flat under load (every id is then unknown).
        track_numbers: Count every number, and keep the accepted-numbers time
            series, in :attr:`stats`; False keeps memory flat under load.
        idle_timeout: Close a keep-alive connection idle this many seconds;
            None keeps it open.
        use_uvloop: Run the server on uvloop (True), asyncio (False), or uvloop
            when installed (None).
        allow_non_loopback: Allow a ``host`` other than loopback.
        backlog: The listening socket's backlog.
        clock: The clock message ages, delivery delays and the request log
            are read on (a :class:`~sms_async.testing.TestClock` a test drives);
            None: the machine's.
        delivery: How each number's messages end and when
            (:class:`~sms_async.testing.DeliveryPlan`); None: by
            ``status_delays``, ``undelivered_rate`` and ``failed_rate``.
        request_log: A :class:`~sms_async.testing.RequestLog` that records
            the time of every request received.
        shorthands: Keyword shorthands the registered protocols declare
            (:attr:`SimulatedProtocol.shorthands`): ITON's ``iton_send_form``
            (``"text"`` or ``"json"``) and ``iton_path``; ItecPay's
            ``itecpay_send_form`` (``"single"`` or ``"per_recipient"``),
            ``itecpay_send_path`` and ``itecpay_status_path``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "demo",
        password: str = "demo-password",  # noqa: S107  (the simulator's published demo account)
        token: str | None = "demo-token",  # noqa: S107  (as above)
        credits: int = 10**9,  # noqa: A002  (the gateway's own word for an account's balance)
        accounts: Iterable[tuple[str, str] | tuple[str, str, int]] = (),
        protocols: Iterable[ProtocolSpec] | None = None,
        answer_forms: Mapping[str, str] | None = None,
        paths: Mapping[str, Mapping[str, str]] | None = None,
        dnd_numbers: Iterable[str] = (),
        dnd_action: DndAction = "allow",
        status_delays: tuple[float, float] = (0.05, 0.2),
        undelivered_rate: float = 0.0,
        failed_rate: float = 0.0,
        faults: Iterable[Fault] = (),
        seed: int = 0,
        store_messages: bool = True,
        track_numbers: bool = True,
        idle_timeout: float | None = None,
        use_uvloop: bool | None = None,
        allow_non_loopback: bool = False,
        backlog: int = 1024,
        clock: Clock | None = None,
        delivery: DeliveryPlan | None = None,
        request_log: RequestLog | None = None,
        **shorthands: str,
    ) -> None:
        if not allow_non_loopback and not is_loopback(host):
            raise ValueError(
                f"refusing to listen on {host!r}: not a loopback address (allow_non_loopback=True)"
            )
        _check_choice("dnd_action", dnd_action, DndAction)
        queued, sent = status_delays
        if queued < 0 or sent < 0:
            raise ValueError(f"status_delays must not be negative, got {status_delays!r}")
        if not (0 <= undelivered_rate <= 1 and 0 <= failed_rate <= 1 and undelivered_rate + failed_rate <= 1):
            raise ValueError(
                "undelivered_rate and failed_rate must be between 0 and 1 and add up to at most 1"
            )
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be between 0 and 65535, got {port!r}")
        chosen = registered_protocols() if protocols is None else tuple(protocols)
        options = protocol_options(chosen, answer_forms, paths, shorthands)
        self._host = host
        self._username = username
        self._password = password
        self._token = token
        self._stats = GatewayStats()
        rng = random.Random(seed)  # noqa: S311  (reproducible test behaviour, not security)
        self._state = GatewayState(
            stats=self._stats,
            rng=rng,
            seed=seed,
            dnd_numbers=dnd_numbers,
            dnd_action=dnd_action,
            status_delays=(float(queued), float(sent)),
            undelivered_rate=undelivered_rate,
            failed_rate=failed_rate,
            store_messages=store_messages,
            track_numbers=track_numbers,
        )
        self._state.clock = clock
        self._state.delivery = delivery
        self._state.request_log = request_log
        self._state.add_account(username, password, token, credits)
        for account in accounts:
            self._state.add_account(*_account_fields(account))
        self._router = Router(
            [_build_protocol(p, options) for p in chosen],
            self._state,
            admin=SimulatorAdmin(reset=self._reset_counters),
        )
        faults = tuple(faults)
        self._check_faults(faults)
        self._plan = FaultPlan(faults, rng)
        self._http = HttpServer(
            self._router,
            self._plan,
            self._stats,
            host=host,
            port=port,
            idle_timeout=idle_timeout,
            backlog=backlog,
        )
        self._runner = LoopRunner(
            self._http, use_uvloop=use_uvloop, thread_name=f"sms-async-simulated-gateway-{id(self):x}"
        )

    def __repr__(self) -> str:
        state = "running" if self._runner.running else "stopped"
        return f"<SimulatedGateway {self._host}:{self._http.port} {state}>"

    # ---------------------------------------------------------------- addresses and credentials

    @property
    def host(self) -> str:
        """The address the server listens on."""
        return self._host

    @property
    def port(self) -> int:
        """The port the server listens on (0 until started when it was asked to pick one)."""
        return self._http.port

    @property
    def origin(self) -> str:
        """``http://host:port``."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def protocols(self) -> tuple[str, ...]:
        """The names of the gateway protocols served, in the order they were given or registered."""
        return tuple(self._router.protocols)

    def protocol(self, name: str) -> SimulatedProtocol:
        """The protocol served under ``name`` (its ``paths`` and ``answer_form`` say how it is set up)."""
        try:
            return self._router.protocols[name]
        except KeyError:
            served = sorted(self._router.protocols)
            raise ValueError(
                f"this gateway serves no protocol named {name!r}; it serves {served!r}"
            ) from None

    def url(self, name: str) -> str:
        """The base URL a driver for gateway ``name`` is given (such as ``url("iton")``)."""
        return self.protocol(name).base_url(self.origin)

    def answer_form(self, name: str) -> str:
        """How gateway ``name`` answers a send (one of its protocol's ``answer_forms``)."""
        return self.protocol(name).answer_form

    def set_answer_form(self, name: str, form: str) -> None:
        """Change how gateway ``name`` answers from the next request on."""
        protocol = self.protocol(name)
        protocol.check_answer_form(form)

        def apply() -> None:
            protocol.answer_form = form

        self._runner.call(apply)

    @property
    def username(self) -> str:
        """The default account's user name."""
        return self._username

    @property
    def password(self) -> str:
        """The default account's password."""
        return self._password

    @property
    def usernames(self) -> tuple[str, ...]:
        """The user names of every account, in the order they were added."""
        return self._runner.call(lambda: tuple(self._state.accounts))

    @property
    def token(self) -> str | None:
        """The default account's API token."""
        return self._token

    @property
    def running(self) -> bool:
        """Whether the server's loop is running."""
        return self._runner.running

    # ---------------------------------------------------------------- life cycle

    def start(self) -> Self:
        """Start serving in a background thread; return once the port is open."""
        self._runner.start()
        return self

    def stop(self) -> None:
        """Stop serving: close the port and every connection, end the thread."""
        self._runner.stop()

    def serve_forever(
        self,
        *,
        on_ready: Callable[[SimulatedGateway], None] | None = None,
        on_report: Callable[[SimulatedGateway], None] | None = None,
    ) -> None:
        """Serve in this thread until SIGINT or SIGTERM (in the main thread) or :meth:`stop`.

        ``on_ready`` is called once the port is open; ``on_report`` whenever
        SIGUSR1 arrives (in the main thread, where signals exist), on the
        server's loop.
        """
        self._runner.serve_forever(
            (lambda: on_ready(self)) if on_ready is not None else (lambda: None),
            (lambda: on_report(self)) if on_report is not None else None,
        )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Starting takes a few milliseconds and involves no async library, so
        # this works the same under asyncio and trio.
        return self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---------------------------------------------------------------- listening and connections

    @property
    def listening(self) -> bool:
        """Whether the port accepts connections."""
        return self._http.listening

    def stop_listening(self, *, close_connections: bool = True) -> None:
        """Close the port: new connections are refused.

        With ``close_connections`` (the default) idle keep-alive connections
        are closed at once and busy ones after their answer, as a gateway that
        goes down would.
        """
        self._runner.call(lambda: self._http.stop_listening(close_connections=close_connections))

    def start_listening(self) -> None:
        """Open the port again, on the same port number."""
        self._runner.await_on_loop(self._http.start_listening, "start_listening()")

    def close_idle_connections(self) -> int:
        """Close every keep-alive connection that is not handling a request; say how many."""
        return self._runner.call(self._http.close_idle_connections)

    @property
    def idle_timeout(self) -> float | None:
        """Seconds after which an idle keep-alive connection is closed (None: never)."""
        return self._http.idle_timeout

    @idle_timeout.setter
    def idle_timeout(self, value: float | None) -> None:
        def apply() -> None:
            self._http.idle_timeout = value

        self._runner.call(apply)

    # ---------------------------------------------------------------- faults and counters

    @property
    def faults(self) -> tuple[Fault, ...]:
        """The faults in force."""
        return self._plan.faults

    def set_faults(self, faults: Iterable[Fault]) -> None:
        """Put ``faults`` in force instead of the current ones; request numbers start again at 1."""
        new = tuple(faults)
        self._check_faults(new)
        self._runner.call(lambda: self._plan.replace(new))

    def _check_faults(self, faults: tuple[Fault, ...]) -> None:
        served = self._router.operations
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"faults must be Fault values, got {fault!r}")
            if fault.operations is not None and not fault.operations <= served:
                raise ValueError(
                    f"the {fault.kind} fault names operation(s) {sorted(fault.operations - served)!r} "
                    f"that this gateway does not serve; it serves {sorted(served)!r}"
                )

    @property
    def stats(self) -> GatewayStats:
        """A snapshot of the counters (see :class:`GatewayStats`)."""
        return self._runner.call(self._stats.copy)

    def reset_stats(self) -> None:
        """Zero the counters and restart request numbers.

        Requests in flight and open connections stay counted.
        """
        self._runner.call(self._reset_counters)

    def _reset_counters(self) -> None:
        self._stats.reset()
        self._plan.restart_numbering()

    @property
    def track_numbers(self) -> bool:
        """Whether every accepted number (and the accepted-numbers series) is counted."""
        return self._state.track_numbers

    def summary(self) -> str:
        """The counters on one line: requests, numbers received, accepted, duplicates and refused.

        ``duplicates`` counts the numbers accepted more than once (``untracked``
        with ``track_numbers=False``); ``refused`` the numbers received but not
        accepted. ``python -m sms_async.testing`` prints this on SIGUSR1 and on exit.
        """
        stats = self.stats
        duplicates = str(len(stats.duplicate_numbers())) if self.track_numbers else "untracked"
        return (
            f"requests={sum(stats.requests.values())} received={stats.received} "
            f"accepted={stats.accepted} duplicates={duplicates} refused={stats.received - stats.accepted}"
        )

    def advance_clock(self, seconds: float) -> None:
        """Age every stored message by ``seconds``, so statuses move on without waiting."""
        if seconds < 0:
            raise ValueError(f"the clock only moves forward, got {seconds!r}")

        def apply() -> None:
            self._state.clock_offset += seconds

        self._runner.call(apply)

    # ---------------------------------------------------------------- accounts, DND, messages

    def add_account(
        self,
        username: str,
        password: str,
        *,
        token: str | None = None,
        credits: int = 10**9,  # noqa: A002  (as above)
    ) -> None:
        """Add an account (or replace the one of that name)."""
        self._runner.call(lambda: self._state.add_account(username, password, token, credits))

    def credits(self, username: str | None = None) -> int:
        """The credits left on an account (the default one when ``username`` is None)."""
        account = self._account(username)
        return self._runner.call(lambda: account.credits)

    def set_credits(self, credits: int, username: str | None = None) -> None:  # noqa: A002  (as above)
        """Set the credits of an account (the default one when ``username`` is None)."""
        account = self._account(username)

        def apply() -> None:
            account.credits = credits

        self._runner.call(apply)

    def _account(self, username: str | None) -> Account:
        name = self._username if username is None else username
        account = self._runner.call(lambda: self._state.accounts.get(name))
        if account is None:
            raise KeyError(name)
        return account

    @property
    def dnd_numbers(self) -> frozenset[str]:
        """The numbers on the do-not-disturb list (digits, no ``+``)."""
        return self._runner.call(lambda: frozenset(self._state.dnd))

    def set_dnd(self, numbers: Iterable[str], *, action: DndAction | None = None) -> None:
        """Replace the do-not-disturb list (and, if given, what a send does with such a number)."""
        new = {n.removeprefix("+") for n in numbers}
        if action is not None:
            _check_choice("action", action, DndAction)

        def apply() -> None:
            self._state.dnd = new
            if action is not None:
                self._state.dnd_action = action

        self._runner.call(apply)

    @property
    def messages(self) -> dict[str, SentMessage]:
        """A snapshot of the accepted messages by id (empty with ``store_messages=False``)."""
        return self._runner.call(lambda: dict(self._state.messages))

    def message(self, message_id: str) -> SentMessage | None:
        """The accepted message with that id, if stored."""
        return self._runner.call(lambda: self._state.messages.get(message_id))


def protocol_options(
    chosen: Iterable[ProtocolSpec],
    answer_forms: Mapping[str, str] | None,
    paths: Mapping[str, Mapping[str, str]] | None,
    shorthands: Mapping[str, str],
) -> dict[str, dict[str, object]]:
    """The constructor options of each protocol to build, by gateway name, checked before anything starts.

    ``answer_forms`` and ``paths`` name gateways; each shorthand is resolved
    through the protocol class that declares it (registered or given).
    """
    classes = {p.name: p for p in registered_protocols()}
    classes.update({p.name: (p if isinstance(p, type) else type(p)) for p in chosen})
    forms: dict[str, str] = dict(answer_forms or {})
    roles: dict[str, dict[str, str]] = {name: dict(given) for name, given in (paths or {}).items()}
    declared = {key: (cls, target) for cls in classes.values() for key, target in cls.shorthands.items()}
    for key, value in shorthands.items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise TypeError(
                f"SimulatedGateway() got an unexpected keyword argument {key!r} "
                f"(the registered protocols' shorthands: {known})"
            )
        cls, target = declared[key]
        if not isinstance(value, str):
            raise TypeError(f"{key} must be text, got {value!r}")
        if target == "answer_form":
            if value not in cls.answer_forms:
                raise ValueError(f"{key} must be one of {cls.answer_forms!r}, got {value!r}")
            forms[cls.name] = value
        else:
            roles.setdefault(cls.name, {})[target.removeprefix("paths.")] = value
    for name in (*forms, *roles):
        if name not in classes:
            raise ValueError(
                f"options were given for the gateway {name!r}, which is neither registered nor given"
            )
    for name, form in forms.items():
        classes[name].check_answer_form(form)
    options: dict[str, dict[str, object]] = {name: {"answer_form": form} for name, form in forms.items()}
    for name, given in roles.items():
        options.setdefault(name, {})["paths"] = given
    return options


def _build_protocol(protocol: ProtocolSpec, options: Mapping[str, Mapping[str, object]]) -> SimulatedProtocol:
    """An instance for one gateway: a class is built (with ``options`` under its name), an instance copied."""
    if isinstance(protocol, SimulatedProtocol):
        check_protocol(type(protocol))
        return copy.copy(protocol)
    check_protocol(protocol)
    return protocol(**options.get(protocol.name, {}))  # type: ignore[arg-type]


def _account_fields(account: tuple[str, str] | tuple[str, str, int]) -> tuple[str, str, None, int]:
    if len(account) == 2:
        username, password = account
        return username, password, None, 10**9
    if len(account) == 3:
        username, password, balance = account
        return username, password, None, balance
    raise ValueError("an account is (username, password) or (username, password, credits)")


def _check_choice(name: str, value: str, choices: object) -> None:
    allowed = get_args(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed!r}, got {value!r}")
