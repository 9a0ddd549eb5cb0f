"""The loader feeds its batcher runs of "+"-and-digits inputs: the batches are those of the whole lists.

The batcher is handed each list of inputs cut before and after every input
that is not "+" and digits and every repeat of the line before, so that its
vector path takes the runs between; whatever the cut, the batches (their
numbers, inputs, settled inputs, positions and indexes) must be the ones the
whole lists give.
"""

from __future__ import annotations

import random

import pytest
from cluster_support import numbers

from sms_async._batching import LOCAL_FLUSH, Batcher, iter_chunks
from sms_async._message import Message
from sms_async._phone import PhoneNormaliser
from sms_async.cluster import _load


def _inputs(seed: int) -> list[object]:
    pick = random.Random(seed)
    valid = numbers(3000)
    out: list[object] = []
    for _ in range(6000):
        roll = pick.random()
        if roll < 0.7:
            out.append(pick.choice(valid))  # repeats far apart too
        elif roll < 0.75 and out:
            out.append(out[-1])  # the line before, again
        elif roll < 0.8:
            out.append("not a number")
        elif roll < 0.85:
            out.append("098000 " + pick.choice(valid)[-5:])  # a national spelling
        elif roll < 0.9:
            out.append(pick.choice(valid) + "\n")  # a line break inside an input
        elif roll < 0.95:
            out.append("")
        else:
            out.append("+1" + str(pick.randrange(10**9)))
    return out + ["12"] * (LOCAL_FLUSH + 3) + numbers(200, start=9000)


def _shape(batches) -> list[tuple[object, ...]]:
    return [
        (
            b.index,
            b.first,
            b.message,
            list(b.numbers),
            list(b.inputs),
            [(x.offset, x.raw, x.e164, x.failure and (x.failure.outcome, x.failure.reason)) for x in b.local],
            sorted(b.failed),
            dict(b.duplicates),
        )
        for b in batches
    ]


def _batches(inputs: list[object], *, runs: bool, compact: bool) -> list[tuple[object, ...]]:
    batcher = Batcher(
        PhoneNormaliser("IN"), 100, message=Message.create("Hello", "ITONAB"), compact_keys=compact
    )
    found = []
    for chunk in iter_chunks(inputs):
        for run in _load._runs(chunk) if runs else [chunk]:
            found += batcher.feed(run)
    return _shape(found + batcher.finish())


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("compact", [False, True])
def test_runs_give_the_batches_of_the_whole_lists(seed, compact):
    inputs = _inputs(seed)
    assert _batches(inputs, runs=True, compact=compact) == _batches(inputs, runs=False, compact=compact)


def test_runs_cut_around_odd_inputs_and_repeats_only():
    chunk = ["+919800000001", "+919800000002", "bad", "", "+919800000003", "+919800000003", "+919800000004"]
    assert _load._runs(chunk) == [chunk[:2], chunk[2:4], chunk[4:5], chunk[5:6], chunk[6:]]
    assert _load._runs(numbers(5)) == [numbers(5)]
    mixed: list[object] = ["+919800000001", 919800000002]
    assert _load._runs(mixed) == [mixed]  # not all text: whole
    broken = ["+919800000001", "+91980\n0000002"]
    assert _load._runs(broken) == [broken]  # a line break inside: whole
