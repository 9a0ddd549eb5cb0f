"""Send one SMS text to very many recipients and know what became of each.

::

    from sms_async import BulkSender, Iton

    async with BulkSender(Iton(username="u", password="p"), default_region="IN") as bulk:
        result = await bulk.send(numbers, "Hello", sender_id="ITONAB")
"""

from sms_async._engine import BulkSender
from sms_async._exceptions import (
    AmbiguousResponseError,
    AuthenticationError,
    CallStopped,
    ConfigurationError,
    EndpointError,
    GatewayBusyError,
    GatewayError,
    InsufficientCreditError,
    InvalidMessageError,
    InvalidNumberError,
    InvalidSenderIdError,
    MaybeSentError,
    NotSentError,
    OutOfCreditError,
    RecipientsError,
    RejectedError,
    SendCancelled,
    SenderClosed,
    SendTimeout,
    SmsError,
    TransportError,
    UnsupportedOperationError,
    UsageError,
)
from sms_async._journal import Journal
from sms_async._lookups import Estimate
from sms_async._message import Message, Template
from sms_async._models import (
    BatchResult,
    BulkResult,
    DeliveryReport,
    DeliveryStatus,
    Failure,
    Outcome,
    SenderStats,
)
from sms_async._redact import install_log_filter
from sms_async._retry import RetryPolicy
from sms_async._text import Encoding
from sms_async.instrumentation import Hooks
from sms_async.providers import ItecPay, Iton
from sms_async.transports import Timeouts

__version__ = "0.1.0"

__all__ = [
    "AmbiguousResponseError",
    "AuthenticationError",
    "BatchResult",
    "BulkResult",
    "BulkSender",
    "CallStopped",
    "ConfigurationError",
    "DeliveryReport",
    "DeliveryStatus",
    "Encoding",
    "EndpointError",
    "Estimate",
    "Failure",
    "GatewayBusyError",
    "GatewayError",
    "Hooks",
    "InsufficientCreditError",
    "InvalidMessageError",
    "InvalidNumberError",
    "InvalidSenderIdError",
    "ItecPay",
    "Iton",
    "Journal",
    "MaybeSentError",
    "Message",
    "NotSentError",
    "OutOfCreditError",
    "Outcome",
    "RecipientsError",
    "RejectedError",
    "RetryPolicy",
    "SendCancelled",
    "SendTimeout",
    "SenderClosed",
    "SenderStats",
    "SmsError",
    "Template",
    "Timeouts",
    "TransportError",
    "UnsupportedOperationError",
    "UsageError",
    "__version__",
    "install_log_filter",
]
