"""The gateway SDK: what a driver is written with, the registry, and the two built-in drivers.

A driver describes each request as a :class:`WireRequest` and reads each
:class:`WireResponse` into values or a typed error; it never sends, retries
or waits (the engine does). Everything a driver needs is exported here, so a
gateway can live in another package and import no private name::

    from sms_async.providers import (
        Capabilities, Origin, SendAnswer, WireRequest, WireResponse,
        check_params, classify_http, classify_text_error, keep_secrets, setting,
    )

A driver class is registered by name with :func:`register_gateway`, or by an
entry point in the ``sms_async.gateways`` group (:data:`ENTRY_POINT_GROUP`);
the engine, the command line and the simulator find it with :func:`gateway`.
"""

from sms_async._redact import REDACTED, keep_secrets, redact
from sms_async._wire import Origin, WireRequest, WireResponse, parse_retry_after
from sms_async.providers._base import (
    RAW_LIMIT,
    Capabilities,
    Driver,
    PreparedSend,
    SendAnswer,
    body_excerpt,
    check_credential,
    check_params,
    classify_http,
    classify_text_error,
    setting,
)
from sms_async.providers._registry import (
    ENTRY_POINT_GROUP,
    gateway,
    gateway_names,
    register_gateway,
    unregister_gateway,
)
from sms_async.providers.itecpay import ItecPay
from sms_async.providers.iton import Iton

register_gateway(Iton)
register_gateway(ItecPay)

__all__ = [
    "ENTRY_POINT_GROUP",
    "RAW_LIMIT",
    "REDACTED",
    "Capabilities",
    "Driver",
    "ItecPay",
    "Iton",
    "Origin",
    "PreparedSend",
    "SendAnswer",
    "WireRequest",
    "WireResponse",
    "body_excerpt",
    "check_credential",
    "check_params",
    "classify_http",
    "classify_text_error",
    "gateway",
    "gateway_names",
    "keep_secrets",
    "parse_retry_after",
    "redact",
    "register_gateway",
    "setting",
    "unregister_gateway",
]
