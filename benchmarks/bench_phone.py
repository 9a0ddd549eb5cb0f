"""Phone-number normalisation: the bulk and one-by-one paths against the phonenumbers reference.

Run as ``python benchmarks/bench_phone.py``. Four inputs, each generated from
a fixed seed:

* ``e164 IN``: distinct valid Indian E.164 numbers (``+919812345678``), the
  shape of a usual bulk campaign;
* ``national IN``: Indian national spellings such as ``098123 45678``, read
  with ``default_region="IN"``;
* ``e164 10 countries``: distinct valid E.164 numbers of ten countries, mixed
  in every chunk;
* ``national GB/DE/US``: national spellings of GB, DE and US numbers as
  phonenumbers formats them (``020 7946 0018``, ``0151 12345678``,
  ``(650) 253-0000``), each read in its own region.

Each input is cut into chunks (``--chunk``, 100 by default: one request of
either gateway). For every chunk each path runs ``--rounds`` times, the paths
interleaved, and the best time is kept, so that noise from other processes on
the machine counts against none of them. Figures are microseconds per 100
numbers. ``normalise_many`` is what the engine calls on a chunk; "one by one"
is ``normalise_or_none`` in a loop; "phonenumbers" is ``reference_normalise``
(``parse``, ``is_valid_number``, ``format_number``) on a sample of the input.

``--fresh`` measures as the engine calls it instead: chunks of 1,024
(``--chunk`` to change), each input a new string made before the round and
pushed out of the CPU's caches, every chunk timed once with
``time.process_time``; each round gives microseconds per 1,024 numbers over
the whole set, and the figure is the median of ``--rounds`` rounds (with
their range), the paths alternating round by round. That is what a bulk
``send`` pays: its inputs are strings read from cold memory.

``--baseline FILE`` also times the ``PhoneNormaliser`` of another revision's
``_phone.py`` (for instance ``git show main:sms_async/_phone.py > /tmp/p.py``)
in the same rounds, so that before and after are measured side by side.
Every answer of every path is compared with the reference's first.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import phonenumbers
from phonenumbers import PhoneNumber

from sms_async._phone import PhoneNormaliser, reference_normalise

E164_REGIONS = ("IN", "GB", "DE", "US", "BR", "NG", "ID", "FR", "PK", "KE")

Inputs = list[tuple[str, str | None]]


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


def _indian_mobiles(count: int, rng: random.Random) -> list[str]:
    """Return ``count`` distinct valid Indian mobile numbers' ten digits, in random order."""
    out: set[str] = set()
    while len(out) < count:
        digits = rng.choice("6789") + "".join(rng.choice("0123456789") for _ in range(9))
        if digits not in out and phonenumbers.is_valid_number(
            PhoneNumber(country_code=91, national_number=int(digits))
        ):
            out.add(digits)
    return sorted(out, key=lambda _: rng.random())


def e164_in_inputs(count: int, seed: int) -> Inputs:
    return [(f"+91{digits}", None) for digits in _indian_mobiles(count, random.Random(seed))]


def national_in_inputs(count: int, seed: int) -> Inputs:
    return [(f"0{d[:5]} {d[5:]}", "IN") for d in _indian_mobiles(count, random.Random(seed))]


def e164_mix_inputs(count: int, seed: int) -> Inputs:
    rng = random.Random(seed)
    fmt = phonenumbers.PhoneNumberFormat.E164
    return [(phonenumbers.format_number(n, fmt), None) for n in _valid_numbers(E164_REGIONS, count, rng)]


def national_mix_inputs(count: int, seed: int) -> Inputs:
    rng = random.Random(seed)
    out: Inputs = []
    fmt = phonenumbers.PhoneNumberFormat.NATIONAL
    per_region = count // 3
    for region in ("GB", "DE", "US"):
        size = per_region if region != "US" else count - 2 * per_region
        out += [(phonenumbers.format_number(n, fmt), region) for n in _valid_numbers((region,), size, rng)]
    rng.shuffle(out)
    return out


def load_baseline(path: Path) -> ModuleType:
    """Import another revision's ``_phone.py`` under a module name of its own."""
    spec = importlib.util.spec_from_file_location("baseline_phone", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _best(fn: Callable[[list[str]], object], chunk: list[str], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn(chunk)
        best = min(best, time.perf_counter() - start)
    return best


def measure(
    inputs: Inputs, rounds: int, chunk_size: int, sample: int, baseline: ModuleType | None
) -> dict[str, float]:
    """Return microseconds per 100 numbers for each path over ``inputs``."""
    by_region: dict[str | None, list[str]] = {}
    for raw, region in inputs:
        by_region.setdefault(region, []).append(raw)
    totals: dict[str, float] = {}
    for region, raws in by_region.items():
        normaliser = PhoneNormaliser(region)
        paths: dict[str, Callable[[list[str]], object]] = {
            "many": normaliser.normalise_many,
            "one by one": lambda chunk, one=normaliser.normalise_or_none: [one(raw) for raw in chunk],
        }
        if baseline is not None:
            paths["baseline many"] = baseline.PhoneNormaliser(region).normalise_many
        chunks = [raws[i : i + chunk_size] for i in range(0, len(raws), chunk_size)]
        # Same answers, before any timing.
        for chunk in chunks:
            expected = [reference_normalise(raw, region) for raw in chunk]
            for name, path in paths.items():
                got = list(path(chunk))  # type: ignore[call-overload]
                if got != expected:
                    raise SystemExit(f"MISMATCH {name} {region}: {got[:3]}... != {expected[:3]}...")
        # Each round runs every path on a chunk before moving on: the paths
        # share the machine's moments, good and bad.
        for chunk in chunks:
            for name, path in paths.items():
                totals[name] = totals.get(name, 0.0) + _best(path, chunk, rounds)
        reference = lambda chunk, region=region: [reference_normalise(raw, region) for raw in chunk]  # noqa: E731
        share = max(1, len(chunks) * sample // len(inputs))
        sampled = chunks[:share]
        time_ref = sum(_best(reference, chunk, 1) for chunk in sampled)
        totals["phonenumbers"] = totals.get("phonenumbers", 0.0) + time_ref * len(chunks) / len(sampled)
    return {name: seconds * 1e6 * 100 / len(inputs) for name, seconds in totals.items()}


def _fresh_copies(raws: list[str]) -> list[str]:
    """New string objects with the same text, then the caches filled with other data."""
    copies = [raw[:1] + raw[1:] for raw in raws]
    flush = bytearray(32 << 20)
    flush[::4096] = b"\x01" * len(flush[::4096])
    return copies


def measure_fresh(
    inputs: Inputs, rounds: int, chunk_size: int, baseline: ModuleType | None
) -> dict[str, list[float]]:
    """Return, per path, each round's microseconds per ``chunk_size`` numbers (CPU time, new strings)."""
    by_region: dict[str | None, list[str]] = {}
    for raw, region in inputs:
        by_region.setdefault(region, []).append(raw)
    samples: dict[str, list[float]] = {}
    paths_by_region = {}
    for region, raws in by_region.items():
        paths: dict[str, Callable[[list[str]], object]] = {"many": PhoneNormaliser(region).normalise_many}
        if baseline is not None:
            paths["baseline many"] = baseline.PhoneNormaliser(region).normalise_many
        for name, path in paths.items():
            for start in range(0, len(raws), chunk_size):
                chunk = raws[start : start + chunk_size]
                if list(path(chunk)) != [reference_normalise(raw, region) for raw in chunk]:  # type: ignore[call-overload]
                    raise SystemExit(f"MISMATCH {name} {region}")
        paths_by_region[region] = paths
    names = list(next(iter(paths_by_region.values())))
    for round_ in range(rounds):
        # Alternate which path goes first.
        for name in names if round_ % 2 == 0 else names[::-1]:
            spent = 0.0
            for region, raws in by_region.items():
                path = paths_by_region[region][name]
                fresh = _fresh_copies(raws)
                chunks = [fresh[i : i + chunk_size] for i in range(0, len(fresh), chunk_size)]
                start = time.process_time()
                for chunk in chunks:
                    path(chunk)
                spent += time.process_time() - start
            samples.setdefault(name, []).append(spent * 1e6 * chunk_size / len(inputs))
    return samples


def main_fresh(args: argparse.Namespace, sets: dict[str, Inputs], baseline: ModuleType | None) -> None:
    """Print the ``--fresh`` table."""
    print(
        f"phonenumbers {phonenumbers.__version__}, Python {sys.version.split()[0]}, {args.count:,} numbers "
        f"a set, new strings each round, chunks of {args.chunk}, median (range) of {args.rounds} rounds; "
        f"CPU microseconds per {args.chunk:,} numbers"
    )
    print()
    head, rule = "| input | normalise_many |", "|---|---:|"
    if baseline is not None:
        head += " baseline normalise_many | speed-up |"
        rule += "---:|---:|"
    print(head)
    print(rule)
    for name, inputs in sets.items():
        result = measure_fresh(inputs, args.rounds, args.chunk, baseline)
        many = result["many"]
        row = f"| {name} | {statistics.median(many):.1f} ({min(many):.1f}-{max(many):.1f}) |"
        if baseline is not None:
            base = result["baseline many"]
            ratios = [b / m for b, m in zip(base, many, strict=True)]
            row += (
                f" {statistics.median(base):.1f} ({min(base):.1f}-{max(base):.1f}) |"
                f" {statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}) |"
            )
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50_000, help="numbers per input set")
    parser.add_argument("--rounds", type=int, default=5, help="timings per chunk and path; the best is kept")
    parser.add_argument(
        "--chunk", type=int, help="numbers per normalise_many call (default 100; --fresh: 1,024)"
    )
    parser.add_argument("--sample", type=int, default=5_000, help="numbers per set timed with phonenumbers")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--baseline", type=Path, help="another revision's sms_async/_phone.py to time too")
    parser.add_argument(
        "--fresh", action="store_true", help="new strings each round, chunks of 1,024, CPU time"
    )
    args = parser.parse_args()
    args.chunk = args.chunk or (1024 if args.fresh else 100)
    baseline = load_baseline(args.baseline) if args.baseline else None

    sets = {
        "e164 IN `+919812345678`": e164_in_inputs(args.count, args.seed),
        "national IN `098123 45678`": national_in_inputs(args.count, args.seed + 1),
        "e164 10 countries, mixed": e164_mix_inputs(args.count, args.seed + 2),
        "national GB/DE/US": national_mix_inputs(args.count, args.seed + 3),
    }
    if args.fresh:
        main_fresh(args, sets, baseline)
        return
    python = sys.version.split()[0]
    print(
        f"phonenumbers {phonenumbers.__version__}, Python {python}, {args.count:,} numbers a set, "
        f"chunks of {args.chunk}, best of {args.rounds}; microseconds per 100 numbers"
    )
    print()
    head = "| input | normalise_many |"
    rule = "|---|---:|"
    if baseline is not None:
        head += " baseline normalise_many | speed-up |"
        rule += "---:|---:|"
    head += " one by one | phonenumbers | normalise_many vs phonenumbers |"
    rule += "---:|---:|---:|"
    print(head)
    print(rule)
    for name, inputs in sets.items():
        result = measure(inputs, args.rounds, args.chunk, args.sample, baseline)
        row = f"| {name} | {result['many']:.1f} |"
        if baseline is not None:
            row += f" {result['baseline many']:.1f} | {result['baseline many'] / result['many']:.2f}x |"
        row += (
            f" {result['one by one']:.1f} | {result['phonenumbers']:.0f} |"
            f" {result['phonenumbers'] / result['many']:.0f}x |"
        )
        print(row, flush=True)


if __name__ == "__main__":
    main()
