"""Phone normalisation alone: the library's fast path against phonenumbers itself, numbers/s."""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable

import phonenumbers

from harness.clients import Job, check, recipients
from sms_async._phone import PhoneNormaliser


def measure_normalise(job: Job) -> dict[str, float]:
    """Numbers/s of the fast path and of phonenumbers itself, per spelling, alternating."""
    e164_format = phonenumbers.PhoneNumberFormat.E164

    def reference(raw: str, region: str | None) -> str | None:
        try:
            number = phonenumbers.parse(raw, region)
        except phonenumbers.NumberParseException:
            return None
        if not phonenumbers.is_valid_number(number):
            return None
        return phonenumbers.format_number(number, e164_format)

    out: dict[str, float] = {}
    expected = recipients(job.recipients)
    for spelling, region in (("e164", None), ("national", "IN")):
        inputs = recipients(job.recipients, spelling=spelling)
        fast = PhoneNormaliser(region).normalise_or_none
        check([fast(x) for x in inputs] == expected, f"fast path answers, {spelling}")
        check([reference(x, region) for x in inputs] == expected, f"phonenumbers answers, {spelling}")
        fast_rates, reference_rates = [], []
        for _ in range(job.rounds):
            # The fast path goes over the list 10 times, so that both sides run for a similar time.
            fast_rates.append(_calls_per_second(fast, inputs, 10))
            reference_rates.append(_calls_per_second(functools.partial(reference, region=region), inputs, 1))
        out[f"{spelling}_fast"] = statistics.median(fast_rates)
        out[f"{spelling}_reference"] = statistics.median(reference_rates)
    return out


def _calls_per_second(fn: Callable[[str], object], inputs: list[str], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for raw in inputs:
            fn(raw)
    return len(inputs) * repeat / (time.perf_counter() - start)
