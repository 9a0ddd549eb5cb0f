"""Phone-number normalisation: the fast path against the phonenumbers reference.

Run as ``python benchmarks/bench_phone.py``. Three inputs, each generated from
a fixed seed:

* ``e164``: 100k distinct valid E.164 numbers across several countries;
* ``national IN``: 100k Indian national spellings such as ``098123 45678``;
* ``national GB/DE/US``: 100k national spellings of GB, DE and US numbers, as
  phonenumbers formats them (``020 7946 0018``, ``0151 12345678``, ``(650) 253-0000``).

Both paths run over the same list, interleaved in chunks, several times; the
best time per chunk is kept, so that noise from other processes on the
machine counts against neither. Every answer is compared with the reference's.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import phonenumbers
from phonenumbers import PhoneNumber

from sms_async._phone import PhoneNormaliser, reference_normalise

E164_REGIONS = ("IN", "GB", "DE", "US", "BR", "NG", "ID", "FR", "PK", "KE")


def _valid_numbers(regions: tuple[str, ...], count: int, rng: random.Random) -> list[PhoneNumber]:
    """Return ``count`` distinct valid numbers: example numbers with random last digits."""
    types = (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE)
    seeds = [
        n
        for region in regions
        for kind in types
        if (n := phonenumbers.example_number_for_type(region, kind)) is not None
    ]
    seen: set[tuple[int, str]] = set()
    numbers: list[PhoneNumber] = []
    while len(numbers) < count:
        seed = rng.choice(seeds)
        nsn = phonenumbers.national_significant_number(seed)
        tail = min(6, len(nsn) - 2)
        digits = nsn[:-tail] + "".join(rng.choice("0123456789") for _ in range(tail))
        number = PhoneNumber(country_code=seed.country_code, national_number=int(digits))
        key = (seed.country_code, digits)
        if key in seen or not phonenumbers.is_valid_number(number):
            continue
        seen.add(key)
        numbers.append(number)
    return numbers


def e164_inputs(count: int, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    fmt = phonenumbers.PhoneNumberFormat.E164
    return [(phonenumbers.format_number(n, fmt), None) for n in _valid_numbers(E164_REGIONS, count, rng)]


def national_in_inputs(count: int, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < count:
        digits = rng.choice("6789") + "".join(rng.choice("0123456789") for _ in range(9))
        out.add(f"0{digits[:5]} {digits[5:]}")
    return [(x, "IN") for x in sorted(out, key=lambda _: rng.random())]


def national_mix_inputs(count: int, seed: int) -> list[tuple[str, str | None]]:
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL
    per_region = count // 3
    for region in ("GB", "DE", "US"):
        size = per_region if region != "US" else count - 2 * per_region
        out += [(phonenumbers.format_number(n, fmt), region) for n in _valid_numbers((region,), size, rng)]
    rng.shuffle(out)
    return out


def _time(fn: Callable[[list[str]], object], chunk: list[str]) -> float:
    start = time.perf_counter()
    fn(chunk)
    return time.perf_counter() - start


def measure(inputs: list[tuple[str, str | None]], rounds: int, chunk_size: int) -> tuple[float, float]:
    """Return (fast, reference) numbers per second over ``inputs``."""
    by_region: dict[str | None, list[str]] = {}
    for raw, region in inputs:
        by_region.setdefault(region, []).append(raw)
    fast_total = ref_total = 0.0
    for region, raws in by_region.items():
        normaliser = PhoneNormaliser(region)
        fast = normaliser.normalise_or_none

        def run_fast(chunk: list[str], fast: Callable[[str], str | None] = fast) -> None:
            for raw in chunk:
                fast(raw)

        def run_ref(chunk: list[str], region: str | None = region) -> None:
            for raw in chunk:
                reference_normalise(raw, region)

        # Same answers, before any timing.
        for raw in raws:
            expected = reference_normalise(raw, region)
            got = fast(raw)
            if got != expected:
                raise SystemExit(f"MISMATCH {raw!r} {region}: fast {got!r}, reference {expected!r}")
        for start in range(0, len(raws), chunk_size):
            chunk = raws[start : start + chunk_size]
            fast_best = ref_best = float("inf")
            for _ in range(rounds):
                fast_best = min(fast_best, _time(run_fast, chunk))
                ref_best = min(ref_best, _time(run_ref, chunk))
            fast_total += fast_best
            ref_total += ref_best
    return len(inputs) / fast_total, len(inputs) / ref_total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000, help="numbers per input set")
    parser.add_argument("--rounds", type=int, default=3, help="timings per chunk; the best is kept")
    parser.add_argument("--chunk", type=int, default=5_000, help="numbers per timed chunk")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()

    sets = {
        "e164 (10 countries)": e164_inputs(args.count, args.seed),
        "national IN `098123 45678`": national_in_inputs(args.count, args.seed + 1),
        "national GB/DE/US mix": national_mix_inputs(args.count, args.seed + 2),
    }
    python = sys.version.split()[0]
    print(f"phonenumbers {phonenumbers.__version__}, Python {python}, {args.count:,} numbers a set")
    print()
    print("| input | fast path (numbers/s) | reference (numbers/s) | speed-up | fast (us/number) |")
    print("|---|---:|---:|---:|---:|")
    for name, inputs in sets.items():
        fast, ref = measure(inputs, args.rounds, args.chunk)
        print(f"| {name} | {fast:,.0f} | {ref:,.0f} | {fast / ref:.1f}x | {1e6 / fast:.2f} |")


if __name__ == "__main__":
    main()
