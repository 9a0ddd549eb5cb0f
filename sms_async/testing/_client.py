"""Read a simulator's counters from another process: ``SimulatorClient(origin).stats()``.

For tests that run the simulated gateway in a process of its own
(``python -m sms_async.testing``) and send to it from several others: the
client speaks to the simulator's own endpoint (``/_simulator/stats``,
``/_simulator/reset``) on the gateway's port, loopback only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import attrs
import httpx

from sms_async.testing._http import is_loopback
from sms_async.testing._stats import max_in_window

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["SimulatorClient", "SimulatorStats"]


@attrs.frozen
class SimulatorStats:
    """A simulator's counters as read over HTTP; the fields mean what :class:`GatewayStats`'s do.

    Attributes:
        requests: Requests by operation name.
        faults: Faults fired, by kind.
        received: Numbers listed in authenticated send requests carried out.
        accepted: Numbers accepted.
        refused: Numbers received but not accepted.
        numbers_tracked: Whether the simulator counts every number
            (``duplicates``, ``numbers`` and the series are empty otherwise).
        duplicates: The numbers accepted more than once, with how many times each was.
        accepted_by_account: Numbers accepted, by account user name.
        accepted_series: For each account, ``(time, count)`` per processed send
            that accepted numbers, in time order (the simulator's monotonic clock).
        params: Send parameters the gateway does not own, as ``"name=value"`` -> sends.
        max_in_flight: The most requests handled at one time.
        connections_opened: Connections accepted.
        bytes_in: Bytes received.
        bytes_out: Bytes sent.
        numbers: Every accepted number with how many times it was accepted,
            when asked for (``stats(numbers=True)``); else None.
        texts: For every number of the messages the simulator stored, as
            sent, the ``(text, params)`` of each message that covers it, in
            the order accepted, when asked for (``stats(texts=True)``); else
            None. A reset does not clear them (status look-ups read them).
    """

    requests: dict[str, int]
    faults: dict[str, int]
    received: int
    accepted: int
    refused: int
    numbers_tracked: bool
    duplicates: dict[str, int]
    accepted_by_account: dict[str, int]
    accepted_series: dict[str, list[tuple[float, int]]]
    params: dict[str, int]
    max_in_flight: int
    connections_opened: int
    bytes_in: int
    bytes_out: int
    numbers: dict[str, int] | None = None
    texts: dict[str, list[tuple[str, dict[str, str]]]] | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> SimulatorStats:
        """Read the JSON body of ``GET /_simulator/stats``."""
        accounts: dict[str, dict[str, Any]] = document["accounts"]
        return cls(
            requests=dict(document["requests"]),
            faults=dict(document["faults"]),
            received=int(document["received"]),
            accepted=int(document["accepted"]),
            refused=int(document["refused"]),
            numbers_tracked=bool(document["numbers_tracked"]),
            duplicates=dict(document["duplicates"]),
            accepted_by_account={name: int(entry["accepted"]) for name, entry in accounts.items()},
            accepted_series={
                name: [(float(at), int(count)) for at, count in entry["series"]]
                for name, entry in accounts.items()
            },
            params=dict(document["params"]),
            max_in_flight=int(document["max_in_flight"]),
            connections_opened=int(document["connections_opened"]),
            bytes_in=int(document["bytes_in"]),
            bytes_out=int(document["bytes_out"]),
            numbers=dict(document["numbers"]) if "numbers" in document else None,
            texts={
                number: [(str(sent["text"]), dict(sent["params"])) for sent in sents]
                for number, sents in document["texts"].items()
            }
            if "texts" in document
            else None,
        )

    def max_in_window(self, window: float = 1.0, account: str | None = None) -> int:
        """The most numbers accepted in any ``window`` seconds, for one account or (None) for all together."""
        if account is not None:
            return max_in_window(self.accepted_series.get(account, []), window)
        merged = sorted(point for series in self.accepted_series.values() for point in series)
        return max_in_window(merged, window)


class SimulatorClient:
    """Read and reset the counters of a simulator running in another process.

    ::

        with SimulatorClient("http://127.0.0.1:8080") as simulator:
            simulator.reset()
            ...  # workers send through the simulator
            stats = simulator.stats()
            assert not stats.duplicates
            assert stats.max_in_window(1.0, account="demo") <= 2000

    Args:
        origin: The simulator's ``http://host:port`` (loopback only).
        timeout: Seconds to wait for an answer.
    """

    def __init__(self, origin: str, *, timeout: float = 10.0) -> None:
        url = httpx.URL(origin)
        if url.scheme != "http" or not is_loopback(url.host):
            raise ValueError(f"the simulator's endpoint answers loopback clients only; got {origin!r}")
        self._client = httpx.Client(base_url=url, timeout=timeout, trust_env=False)

    def stats(self, *, numbers: bool = False, texts: bool = False) -> SimulatorStats:
        """The counters now; with ``numbers``, every accepted number too (large for big runs); with
        ``texts``, the texts each number of a stored message got (a simulator without stored messages
        refuses it: RuntimeError).
        """  # noqa: D205
        params = {"numbers": "1"} if numbers else {}
        if texts:
            params["texts"] = "1"
        return SimulatorStats.from_document(self._call("GET", "/_simulator/stats", params))

    def reset(self) -> None:
        """Zero the counters and restart fault request numbers."""
        self._call("POST", "/_simulator/reset", {})

    def _call(self, method: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        response = self._client.request(method, path, params=params)
        if response.status_code != 200:
            raise RuntimeError(
                f"the simulator refused {method} {path}: HTTP {response.status_code} {response.text}"
            )
        document: dict[str, Any] = response.json()
        return document

    def close(self) -> None:
        """Close the connection."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
