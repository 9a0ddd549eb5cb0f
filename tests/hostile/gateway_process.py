"""Run a SimulatedGateway in this process and answer ``stats`` on stdin with a JSON line on stdout.

Used by the load test so that the gateway's own memory (it counts every
number it processes) stays out of the client's tracemalloc figures. It takes
one argument, a JSON object ``{"faults": [Fault kwargs...], "options": {...}}``,
prints ``{"port": ..., "username": ..., "password": ...}`` once listening, and
stops on ``quit`` or end of input.
"""

from __future__ import annotations

import json
import sys

from sms_async.testing import Fault, SimulatedGateway


def _fault(spec: dict[str, object]) -> Fault:
    seconds = spec.get("seconds")
    if isinstance(seconds, list):
        spec = {**spec, "seconds": tuple(seconds)}
    return Fault(**spec)  # type: ignore[arg-type]


def main() -> None:
    config = json.loads(sys.argv[1])
    faults = [_fault(spec) for spec in config["faults"]]
    with SimulatedGateway(faults=faults, **config["options"]) as gw:
        print(json.dumps({"port": gw.port, "username": gw.username, "password": gw.password}), flush=True)  # noqa: T201
        for line in sys.stdin:
            command = line.strip()
            if command == "quit":
                break
            if command == "stats":
                stats = gw.stats
                summary = {
                    "requests": dict(stats.requests),
                    "numbers": len(stats.numbers),
                    "processed": sum(stats.numbers.values()),
                    "duplicates": stats.duplicate_numbers(),
                    "max_in_flight": stats.max_in_flight,
                    "faults": dict(stats.faults),
                }
                print(json.dumps(summary), flush=True)  # noqa: T201


if __name__ == "__main__":
    main()
