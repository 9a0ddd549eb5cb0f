"""De-duplication keys: ``SeenNumbers`` against the plain ``set[int]`` it replaces.

Run as ``python benchmarks/bench_keys.py`` (``--sizes 1000000 10000000`` by
default; about two minutes). Keys are ``91`` followed by ten digits, all
distinct, in a scrambled order (``j * 6364136223 mod 10**10`` for
``j = 0, 1, ...``), in chunks of 256 as the engine's batcher hands them over.

For each size:

* CPU, side by side in one process: each chunk goes to ``SeenNumbers.add_new``
  and to today's set approach (``len(set(keys)) == len(keys) and
  seen.isdisjoint(s)``, then ``seen |= s``), the two alternating which goes
  first; only those calls are timed (making the chunks is not). Reported in
  nanoseconds per key over the whole run, and over the keys past the store's
  spill (``_SPILL_AT``, when its plain set gives way to the table), with the
  spill and the table's doublings counted in.
* Memory, in a fresh process for the store and another for the set: bytes
  per key (``SeenNumbers.nbytes``; for the set, ``sys.getsizeof`` plus 32
  bytes an int), and peak RSS (``ru_maxrss``), the interpreter included.
* ``add``: nanoseconds per call on the full store, for new keys and for keys
  already seen, beside ``set.add``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sms_async import _keys
from sms_async._keys import SeenNumbers

_MULTIPLIER = 6364136223  # coprime with 10: j -> j * m mod 10**10 is a permutation
_SPAN = 10**10
_BASE = 91 * _SPAN
_CHUNK = 256


def chunk_at(start: int, size: int = _CHUNK) -> list[int]:
    return [_BASE + (j * _MULTIPLIER) % _SPAN for j in range(start, start + size)]


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), which, unlike ru_maxrss, starts afresh at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc/self/status")


def side_by_side(count: int) -> dict[str, float]:
    """Time add_new and the set approach on the same chunks, alternating which goes first."""
    store = SeenNumbers()
    seen: set[int] = set()
    store_time = set_time = 0.0
    store_after = set_after = spill_time = 0.0
    spill = _keys._SPILL_AT  # noqa: SLF001 - where the store changes its nature
    for index, start in enumerate(range(0, count, _CHUNK)):
        keys = chunk_at(start, min(_CHUNK, count - start))
        for turn in (index % 2, 1 - index % 2):
            if turn == 0:
                begin = time.perf_counter()
                added = store.add_new(keys)
                spent = time.perf_counter() - begin
                store_time += spent
                if start < spill <= start + _CHUNK:
                    spill_time = spent  # the chunk that moves the set into the table
                elif start + _CHUNK > spill:
                    store_after += spent
            else:
                begin = time.perf_counter()
                fresh = set(keys)
                added = len(fresh) == len(keys) and seen.isdisjoint(fresh)
                if added:
                    seen |= fresh
                spent = time.perf_counter() - begin
                set_time += spent
                if start >= spill:
                    set_after += spent
            if not added:
                raise SystemExit(f"chunk at {start} refused: the keys are meant to be distinct")
    past = max(1, count - spill)
    return {
        "store ns/key": store_time / count * 1e9,
        "set ns/key": set_time / count * 1e9,
        "store ns/key past spill": store_after / past * 1e9 if count > spill else float("nan"),
        "set ns/key past spill": set_after / past * 1e9 if count > spill else float("nan"),
        "spill ms": spill_time * 1e3,
    }


def alone(count: int, kind: str) -> dict[str, float]:
    """Fill one structure alone (in this fresh process): bytes per key, peak RSS, and add() costs."""
    rss_before = peak_rss_mb()
    if kind == "store":
        store = SeenNumbers()
        for start in range(0, count, _CHUNK):
            store.add_new(chunk_at(start, min(_CHUNK, count - start)))
        size = store.nbytes
        if not all(key in store for key in chunk_at(0, 2_000)) or any(
            key in store for key in chunk_at(count, 2_000)
        ):
            raise SystemExit("the store lost a key, or holds one it was never given")
        added = store.add
    else:
        seen: set[int] = set()
        for start in range(0, count, _CHUNK):
            fresh = set(chunk_at(start, min(_CHUNK, count - start)))
            if seen.isdisjoint(fresh):
                seen |= fresh
        size = sys.getsizeof(seen) + 32 * len(seen)
        added = seen.add  # type: ignore[assignment]
    peak = peak_rss_mb()
    new_keys = chunk_at(count, 20_000)
    old_keys = chunk_at(0, 20_000)
    begin = time.perf_counter()
    for key in new_keys:
        added(key)
    add_new = (time.perf_counter() - begin) / len(new_keys) * 1e9
    begin = time.perf_counter()
    for key in old_keys:
        added(key)
    add_old = (time.perf_counter() - begin) / len(old_keys) * 1e9
    return {
        "bytes/key": size / count,
        "peak RSS MB": peak,
        "RSS before MB": rss_before,
        "add new ns": add_new,
        "add seen ns": add_old,
    }


def fresh_process(count: int, kind: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--alone", kind, "--sizes", str(count)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--alone", choices=["store", "set"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.alone:
        print(json.dumps(alone(args.sizes[0], args.alone)))
        return
    spill = _keys._SPILL_AT  # noqa: SLF001 - where the store changes its nature
    print(f"Python {sys.version.split()[0]}, chunks of {_CHUNK}, spill at {spill:,} keys")
    print()
    print(
        "| keys | add_new ns/key | set ns/key | ratio | the spill | past the spill: add_new | set | ratio |"
        " B/key store | B/key set | peak RSS store | peak RSS set |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    adds = []
    for count in args.sizes:
        cpu = side_by_side(count)
        store = fresh_process(count, "store")
        plain = fresh_process(count, "set")
        print(
            f"| {count:,} | {cpu['store ns/key']:.0f} | {cpu['set ns/key']:.0f} |"
            f" {cpu['store ns/key'] / cpu['set ns/key']:.2f}x | {cpu['spill ms']:.0f} ms |"
            f" {cpu['store ns/key past spill']:.0f} | {cpu['set ns/key past spill']:.0f} |"
            f" {cpu['store ns/key past spill'] / cpu['set ns/key past spill']:.2f}x |"
            f" {store['bytes/key']:.1f} | {plain['bytes/key']:.1f} |"
            f" {store['peak RSS MB']:.0f} MB | {plain['peak RSS MB']:.0f} MB |",
            flush=True,
        )
        adds.append((count, store, plain))
    print()
    print("| keys held | store.add, new key | store.add, seen key | set.add, new key | set.add, seen key |")
    print("|---:|---:|---:|---:|---:|")
    for count, store, plain in adds:
        print(
            f"| {count:,} | {store['add new ns']:.0f} ns | {store['add seen ns']:.0f} ns |"
            f" {plain['add new ns']:.0f} ns | {plain['add seen ns']:.0f} ns |"
        )
    print()
    print(f"(interpreter before filling: {adds[0][1]['RSS before MB']:.0f} MB peak RSS)")


if __name__ == "__main__":
    main()
