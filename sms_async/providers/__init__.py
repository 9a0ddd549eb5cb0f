"""Gateway drivers: each describes requests and reads answers for one gateway, without I/O.

Drivers are registered by name (:func:`register_gateway`); the engine, the
command line and the simulator find them with :func:`gateway`.
"""

from sms_async.providers._base import Capabilities, Driver, PreparedSend, SendAnswer
from sms_async.providers._registry import gateway, gateway_names, register_gateway, unregister_gateway
from sms_async.providers.itecpay import ItecPay
from sms_async.providers.iton import Iton

register_gateway(Iton)
register_gateway(ItecPay)

__all__ = [
    "Capabilities",
    "Driver",
    "ItecPay",
    "Iton",
    "PreparedSend",
    "SendAnswer",
    "gateway",
    "gateway_names",
    "register_gateway",
    "unregister_gateway",
]
