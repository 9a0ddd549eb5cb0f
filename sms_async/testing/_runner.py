"""An event loop of the simulator's own, run in a background thread or in the foreground.

The gateway's state is touched only on that loop's thread; :meth:`LoopRunner.call`
is how other threads read or change it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import threading
from typing import TYPE_CHECKING, Final, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from sms_async.testing._http import HttpServer

__all__ = ["LoopRunner", "new_event_loop"]

_T = TypeVar("_T")
_CALL_TIMEOUT: Final = 30.0


def new_event_loop(use_uvloop: bool | None) -> asyncio.AbstractEventLoop:
    """A uvloop loop when asked for, or when ``None`` and uvloop is installed; else asyncio's."""
    if use_uvloop is not False:
        try:
            import uvloop  # noqa: PLC0415  (optional, and only needed once a server starts)
        except ImportError:
            if use_uvloop:
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


class LoopRunner:
    """Serves ``http`` on a loop of its own until stopped; can be started again afterwards.

    Args:
        http: The server to open on start and close on stop.
        use_uvloop: As :func:`new_event_loop` takes it.
        thread_name: The name of the background thread.
    """

    def __init__(self, http: HttpServer, *, use_uvloop: bool | None, thread_name: str) -> None:
        self._http = http
        self._use_uvloop = use_uvloop
        self._thread_name = thread_name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._thread: threading.Thread | None = None
        self._stop_event: asyncio.Event | None = None
        self.running = False

    def start(self) -> None:
        """Serve in a background thread; return once the port is open (or raise why it could not open)."""
        self._refuse_if_running()
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self._run(ready.set, install_signal_handlers=False, on_report=None)
            except BaseException as exc:  # noqa: BLE001  (handed to the starting thread)
                failure.append(exc)
                ready.set()

        thread = threading.Thread(target=run, name=self._thread_name, daemon=True)
        self._thread = thread
        thread.start()
        ready.wait()
        if failure:
            thread.join()
            self._thread = None
            raise failure[0]

    def stop(self) -> None:
        """Stop serving: close the port and every connection, end the thread."""
        loop, event, thread = self._loop, self._stop_event, self._thread
        if loop is not None and event is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between
                loop.call_soon_threadsafe(event.set)
        if thread is not None and thread is not threading.current_thread():
            thread.join()
            self._thread = None

    def serve_forever(self, ready: Callable[[], None], on_report: Callable[[], None] | None) -> None:
        """Serve in this thread until SIGINT or SIGTERM (in the main thread) or :meth:`stop`.

        ``ready`` is called once the port is open; ``on_report`` on SIGUSR1.
        """
        self._refuse_if_running()
        self._run(
            ready,
            install_signal_handlers=threading.current_thread() is threading.main_thread(),
            on_report=on_report,
        )

    def _refuse_if_running(self) -> None:
        if self._thread is not None or self.running:
            raise RuntimeError("the simulated gateway is already running")

    def _run(
        self,
        ready: Callable[[], None],
        *,
        install_signal_handlers: bool,
        on_report: Callable[[], None] | None,
    ) -> None:
        loop = new_event_loop(self._use_uvloop)
        self._loop = loop
        self._loop_thread = threading.get_ident()
        try:
            loop.run_until_complete(
                self._main(ready, install_signal_handlers=install_signal_handlers, on_report=on_report)
            )
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                self._loop = None
                self._loop_thread = None
                loop.close()

    async def _main(
        self,
        ready: Callable[[], None],
        *,
        install_signal_handlers: bool,
        on_report: Callable[[], None] | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        stop_event = asyncio.Event()
        await self._http.start_listening()
        handlers: list[tuple[signal.Signals, Callable[[], None]]] = []
        if install_signal_handlers:
            handlers += [(signal.SIGINT, stop_event.set), (signal.SIGTERM, stop_event.set)]
            usr1 = getattr(signal, "SIGUSR1", None)
            if on_report is not None and usr1 is not None:
                handlers.append((usr1, on_report))
        signals: list[signal.Signals] = []
        for sig, handler in handlers:
            try:
                loop.add_signal_handler(sig, handler)
                signals.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover  (platforms without them)
                pass
        self._stop_event = stop_event
        self.running = True
        try:
            ready()
            await stop_event.wait()
        finally:
            self.running = False
            self._stop_event = None
            for sig in signals:
                loop.remove_signal_handler(sig)
            await self._http.close()

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run ``fn`` on the loop's thread (or here, when it is not running) and return its result."""
        loop = self._loop
        if loop is None or not self.running or threading.get_ident() == self._loop_thread:
            return fn()
        future: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001  (handed to the calling thread)
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=_CALL_TIMEOUT)

    def await_on_loop(self, make: Callable[[], Coroutine[object, object, _T]], what: str) -> _T:
        """Run the coroutine ``make()`` on the running loop from another thread, and return its result."""
        loop = self._loop
        if loop is None or not self.running:
            raise RuntimeError("the simulated gateway is not running")
        if threading.get_ident() == self._loop_thread:
            raise RuntimeError(f"call {what} from another thread than the server's")
        return asyncio.run_coroutine_threadsafe(make(), loop).result(timeout=_CALL_TIMEOUT)
