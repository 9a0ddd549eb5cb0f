"""A simulated ITON and ItecPay gateway: a real HTTP/1.1 server on loopback, for tests and benchmarks.

::

    from sms_async.testing import Fault, SimulatedGateway

    with SimulatedGateway(faults=[Fault("status_429", rate=0.1, retry_after=1)]) as gw:
        gw.iton_url        # http://127.0.0.1:PORT/ItonSMSAPI/smsService/api/
        gw.itecpay_url     # http://127.0.0.1:PORT
        gw.username, gw.password, gw.token
        # send through it with BulkSender, then:
        assert not gw.stats.duplicate_numbers()

Pytest gets two fixtures, ``sms_gateway`` and ``sms_gateway_factory``, from
this package's plugin. ``python -m sms_async.testing --port 8080`` serves it in
the foreground.
"""

from sms_async.testing._cli import main, serve
from sms_async.testing._core import SentMessage
from sms_async.testing._faults import Fault, FaultKind
from sms_async.testing._gateway import SimulatedGateway
from sms_async.testing._stats import GatewayStats

__all__ = ["Fault", "FaultKind", "GatewayStats", "SentMessage", "SimulatedGateway", "main", "serve"]
