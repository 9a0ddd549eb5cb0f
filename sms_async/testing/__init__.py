"""A simulated ITON and ItecPay gateway: a real HTTP/1.1 server on loopback, for tests and benchmarks.

::

    from sms_async.testing import Fault, SimulatedGateway

    with SimulatedGateway(faults=[Fault("status_429", rate=0.1, retry_after=1)]) as gw:
        gw.iton_url        # http://127.0.0.1:PORT/ItonSMSAPI/smsService/api/
        gw.itecpay_url     # http://127.0.0.1:PORT
        gw.url("iton")     # the base URL of any served gateway, by name
        gw.username, gw.password, gw.token
        # send through it with BulkSender, then:
        assert not gw.stats.duplicate_numbers()

Layout: ``_http`` (the HTTP/1.1 server) and ``_runner`` (its loop, in a
thread or the foreground), ``_router`` (path to protocol), ``_state``
(accounts, credits, messages, statuses, DND: what every gateway has),
``_stats`` (counters), ``_faults`` (the fault plan), one module per gateway
protocol (``_iton``, ``_itecpay``) over ``_protocol``'s base class,
``_registry``, ``_admin`` (the simulator's own ``/_simulator/`` endpoint) and
``_client`` (reading it from another process). A third gateway is one
:class:`SimulatedProtocol` subclass and one :func:`register_protocol` call (or
``SimulatedGateway(protocols=[...])``).

Pytest gets two fixtures, ``sms_gateway`` and ``sms_gateway_factory``, from
this package's plugin. ``python -m sms_async.testing --port 8080`` serves it in
the foreground; :class:`SimulatorClient` reads its counters from another process.
"""

from sms_async.testing._cli import main, serve
from sms_async.testing._client import SimulatorClient, SimulatorStats
from sms_async.testing._faults import Fault, FaultKind
from sms_async.testing._gateway import SimulatedGateway
from sms_async.testing._protocol import (
    Operation,
    Request,
    Response,
    SimulatedProtocol,
    json_response,
    text_response,
)
from sms_async.testing._registry import register_protocol, registered_protocols, unregister_protocol
from sms_async.testing._state import Account, GatewayState, SentMessage
from sms_async.testing._stats import GatewayStats

# isort: split
# Delivery over (test) time: a clock tests drive, delivery outcomes, the request log.
from sms_async.testing._clock import TestClock
from sms_async.testing._delivery import DeliveryPlan, DeliveryRule, LoggedRequest, RequestLog

__all__ = [
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
    "register_protocol",
    "registered_protocols",
    "serve",
    "text_response",
    "unregister_protocol",
]
__all__ += ["DeliveryPlan", "DeliveryRule", "LoggedRequest", "RequestLog", "TestClock"]
