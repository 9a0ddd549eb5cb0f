"""Instrumentation: hooks that hear what a sender does, fed frozen records.

::

    class Metrics:
        def on_request(self, record: RequestFinished) -> None: ...
        def on_batch(self, record: BatchSettled) -> None: ...

    BulkSender(driver, hooks=[Metrics()])

Every method is optional. Besides its own hooks, every sender has the default
ones (:func:`default_hooks`): :class:`LoggingHooks`, which logs retries,
pauses and aborts on the ``sms_async`` logger; :class:`PrometheusHooks`
(``pip install 'sms_async[prometheus]'``) when ``prometheus-client`` can be
imported; :class:`OpenTelemetryHooks` (``pip install 'sms_async[otel]'``) when
the application has set an OpenTelemetry meter or tracer provider.
:func:`set_default_hooks` changes the defaults for senders made after it.
Importing this package imports neither library.
"""

from sms_async.instrumentation._data import (
    BatchSettled,
    GatewayPaused,
    RequestFinished,
    RetryScheduled,
    RunAborted,
)
from sms_async.instrumentation._defaults import DefaultHooksRestorer, default_hooks, set_default_hooks
from sms_async.instrumentation._hooks import Hooks, Instruments, LoggingHooks
from sms_async.instrumentation._otel import OpenTelemetryHooks
from sms_async.instrumentation._prometheus import PrometheusHooks

__all__ = [
    "BatchSettled",
    "DefaultHooksRestorer",
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
    "set_default_hooks",
]
