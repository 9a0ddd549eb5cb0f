"""A simulated SMS gateway: a real HTTP/1.1 server on loopback that speaks each registered gateway's protocol.

::

    from sms_async.testing import Fault, SimulatedGateway

    with SimulatedGateway(faults=[Fault("status_429", rate=0.1, retry_after=1)]) as gw:
        gw.url("iton")     # the base URL a driver is given: http://127.0.0.1:PORT/ItonSMSAPI/smsService/api/
        gw.url("itecpay")  # http://127.0.0.1:PORT
        gw.username, gw.password, gw.token
        # send through it with BulkSender, then:
        assert not gw.stats.duplicate_numbers()

Layout: ``_http`` (the HTTP/1.1 server) and ``_runner`` (its loop, in a
thread or the foreground), ``_router`` (path to protocol), ``_state``
(accounts, credits, messages, statuses, DND: what every gateway has),
``_stats`` (counters), ``_faults`` (the fault plan), one module per built-in
gateway protocol over ``_protocol``'s base class, ``_builtin`` (which
registers them), ``_registry``, ``_admin`` (the simulator's own
``/_simulator/`` endpoint) and ``_client`` (reading it from another process).

A third gateway's protocol is one :class:`SimulatedProtocol` subclass, written
with the names exported here, registered with :func:`register_protocol`, by an
entry point in the ``sms_async.simulator_protocols`` group
(:data:`PROTOCOL_ENTRY_POINT_GROUP`), or given as
``SimulatedGateway(protocols=[...])``.

Pytest gets two fixtures, ``sms_gateway`` and ``sms_gateway_factory``, from
this package's plugin. ``python -m sms_async.testing --port 8080`` serves it in
the foreground; :class:`SimulatorClient` reads its counters from another process.
"""

from sms_async.testing import _builtin  # noqa: F401  (registers the built-in protocols first)
from sms_async.testing._cli import main, serve
from sms_async.testing._client import SimulatorClient, SimulatorStats
from sms_async.testing._faults import Fault, FaultKind
from sms_async.testing._gateway import SimulatedGateway
from sms_async.testing._protocol import (
    SENDER_ID,
    Operation,
    Request,
    Response,
    SimulatedProtocol,
    json_response,
    parse_query,
    phone_digits_ok,
    text_response,
)
from sms_async.testing._registry import ENTRY_POINT_GROUP as PROTOCOL_ENTRY_POINT_GROUP
from sms_async.testing._registry import register_protocol, registered_protocols, unregister_protocol
from sms_async.testing._state import Account, GatewayState, SentMessage
from sms_async.testing._stats import GatewayStats

# isort: split
# Delivery over (test) time: a clock tests drive, delivery outcomes, the request log.
from sms_async.testing._clock import TestClock
from sms_async.testing._delivery import DeliveryPlan, DeliveryRule, LoggedRequest, RequestLog

__all__ = [
    "PROTOCOL_ENTRY_POINT_GROUP",
    "SENDER_ID",
    "Account",
    "Fault",
    "FaultKind",
    "GatewayState",
    "GatewayStats",
    "Operation",
    "Request",
    "Response",
    "SentMessage",
    "SimulatedGateway",
    "SimulatedProtocol",
    "SimulatorClient",
    "SimulatorStats",
    "json_response",
    "main",
    "parse_query",
    "phone_digits_ok",
    "register_protocol",
    "registered_protocols",
    "serve",
    "text_response",
    "unregister_protocol",
]
__all__ += ["DeliveryPlan", "DeliveryRule", "LoggedRequest", "RequestLog", "TestClock"]
