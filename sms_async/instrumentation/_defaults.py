"""The default hooks: what every sender has besides its own, detected as stamina does, or set.

Detected (unless :func:`set_default_hooks` says otherwise), each time a
sender is made:

* :class:`LoggingHooks`, always;
* :class:`PrometheusHooks` on ``prometheus_client.REGISTRY`` when
  ``prometheus-client`` can be imported: a process that has it most likely
  serves that registry (stamina counts its retries there on the same grounds);
* :class:`OpenTelemetryHooks` on the global providers when
  ``opentelemetry-api`` can be imported **and** the application has set a
  meter or tracer provider. The API alone does nothing with what it is given,
  so hooks on it would only cost each request and batch a little for nothing;
  a provider set after a sender was made reaches senders made after that.

The integrations' hooks are made once and shared by every sender.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Final

from sms_async.instrumentation._hooks import LoggingHooks

__all__ = ["DefaultHooksRestorer", "default_hooks", "set_default_hooks"]

logger = logging.getLogger("sms_async")

_lock: Final = threading.Lock()
# What set_default_hooks chose; None: detect.
_chosen: tuple[object, ...] | None = None
# Hooks detection made, by integration; None where the integration could not be made.
_made: dict[str, object | None] = {}


def default_hooks() -> tuple[object, ...]:
    """The hooks a sender made now has besides its own (see the module's documentation)."""
    with _lock:
        if _chosen is not None:
            return _chosen
        found = [_once("logging", LoggingHooks)]
        if _opentelemetry_configured():
            found.append(_once("opentelemetry", _opentelemetry_hooks))
        found.append(_once("prometheus", _prometheus_hooks))
        return tuple(hook for hook in found if hook is not None)


def _once(name: str, make: Callable[[], object]) -> object | None:
    if name in _made:
        return _made[name]
    try:
        hook: object | None = make()
    except ImportError:
        hook = None  # the library is not installed: nothing to feed
    except Exception:
        # A default must never stop a sender from being made (say, a registry that already
        # holds one of these names): say why, once, and carry on without it.
        logger.warning("the %s hooks are left out of the default hooks", name, exc_info=True)
        hook = None
    _made[name] = hook
    return hook


def _opentelemetry_hooks() -> object:
    from sms_async.instrumentation._otel import OpenTelemetryHooks  # noqa: PLC0415 - it imports the library

    return OpenTelemetryHooks()


def _prometheus_hooks() -> object:
    from sms_async.instrumentation._prometheus import PrometheusHooks  # noqa: PLC0415 - as above

    return PrometheusHooks()


def _opentelemetry_configured() -> bool:
    """Whether the application has set a global meter or tracer provider."""
    try:
        from opentelemetry import metrics, trace  # noqa: PLC0415 - an optional dependency
    except ImportError:
        return False
    # The providers in force until one is set (the API's proxies, or its no-op ones) are the API's
    # own classes; an SDK's, or any real one, lives elsewhere.
    return not _from_the_api(metrics.get_meter_provider()) or not _from_the_api(trace.get_tracer_provider())


def _from_the_api(provider: object) -> bool:
    return type(provider).__module__.startswith(("opentelemetry.metrics", "opentelemetry.trace"))


class DefaultHooksRestorer:
    """What :func:`set_default_hooks` returns: leaving it (as a context manager) restores the defaults."""

    __slots__ = ("_previous",)

    def __init__(self, previous: tuple[object, ...] | None) -> None:
        self._previous = previous

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.restore()

    def restore(self) -> None:
        """Put back the default hooks there were before :func:`set_default_hooks`."""
        global _chosen  # noqa: PLW0603 - the process-wide default, as stamina keeps its hooks
        with _lock:
            _chosen = self._previous


def set_default_hooks(hooks: Iterable[object] | None) -> DefaultHooksRestorer:
    """Set the hooks every sender made from now on has besides its own (senders made before keep theirs).

    ``None`` detects them again, afresh (see :func:`default_hooks`); an empty
    list turns every default off, logging included. Used as a context manager
    (``with set_default_hooks([...]):``) it restores the previous defaults on
    leaving, which suits tests::

        @pytest.fixture(autouse=True)
        def no_default_hooks():
            with set_default_hooks([]):
                yield
    """
    global _chosen
    if hooks is not None and (isinstance(hooks, str | bytes) or not isinstance(hooks, Iterable)):
        raise TypeError(
            f"set_default_hooks takes a list of hook objects (or None to detect them again), "
            f"not {type(hooks).__name__}: wrap a single hook as [hook]"
        )
    chosen = None if hooks is None else tuple(hooks)
    with _lock:
        previous, _chosen = _chosen, chosen
        if chosen is None:
            _made.clear()
    return DefaultHooksRestorer(previous)
