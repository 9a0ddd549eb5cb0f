"""Instrumentation: hooks that hear what a sender does, fed frozen records.

::

    class Metrics:
        def on_request(self, record: RequestFinished) -> None: ...
        def on_batch(self, record: BatchSettled) -> None: ...

    BulkSender(driver, hooks=[Metrics()])

Every method is optional. Without ``hooks=``, a sender logs retries, pauses
and aborts on the ``sms_async`` logger (:class:`LoggingHooks`).
:class:`OpenTelemetryHooks` (``pip install 'sms_async[otel]'``) and
:class:`PrometheusHooks` (``pip install 'sms_async[prometheus]'``) feed
metrics and traces; importing this package imports neither library.
"""

from sms_async.instrumentation._data import (
    BatchSettled,
    GatewayPaused,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)
from sms_async.instrumentation._hooks import Hooks, Instruments, LoggingHooks, default_hooks
from sms_async.instrumentation._otel import OpenTelemetryHooks
from sms_async.instrumentation._prometheus import PrometheusHooks

__all__ = [
    "BatchSettled",
    "GatewayPaused",
    "Hooks",
    "Instruments",
    "LoggingHooks",
    "OpenTelemetryHooks",
    "PrometheusHooks",
    "RequestFinished",
    "RetryScheduled",
    "RunAborted",
    "default_hooks",
]
