"""Tests of the batcher's compact key store: the same batches as with a set of strings."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async._batching import Batch, Batcher, iter_chunks
from sms_async._message import Message
from sms_async._phone import PhoneNormaliser

NORMALISER = PhoneNormaliser("IN")
MESSAGE = Message.create("Hello", "ITONAB")

# Valid Indian mobiles in two spellings, a few of them often repeated, and invalid inputs.
inputs = st.lists(
    st.one_of(
        st.integers(0, 30).map(lambda n: f"+9198123{n:05d}"),
        st.integers(0, 30).map(lambda n: f"098123 {n:05d}"),
        st.integers(0, 10**9 - 1).map(lambda n: f"+919{n:09d}"),
        st.sampled_from(["not a number", "+91", "12", ""]),
    ),
    max_size=700,
)


def cut(batcher: Batcher, items: list[str], size: int = 256) -> list[Batch]:
    """Every batch the batcher makes of ``items``, fed in lists of ``size``."""
    done = [b for start in range(0, len(items), size) for b in batcher.feed(items[start : start + size])]
    return done + batcher.finish()


def shape(batches: list[Batch]) -> list[tuple[object, ...]]:
    """What a batch is, for comparing two runs."""
    return [
        (b.index, b.first, b.numbers, b.inputs, [(x.offset, x.raw, x.e164) for x in b.local], b.duplicates)
        for b in batches
    ]


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=150)
@given(inputs)
def test_compact_keys_cut_the_same_batches(items):
    """With compact keys, every input lands in the same batch, at the same place, with the same verdict."""
    plain = cut(Batcher(NORMALISER, 100, message=MESSAGE), items)
    compact = cut(Batcher(NORMALISER, 100, message=MESSAGE, compact_keys=True), items)
    assert shape(compact) == shape(plain)
    assert sum(b.size for b in compact) == len(items)
    sent = [n for b in compact for n in b.numbers]
    assert len(sent) == len(set(sent))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=100)
@given(inputs, st.sampled_from([1, 7, 256, 1024]), st.booleans())
def test_the_lists_the_input_is_read_in_change_no_batch(items, size, compact):
    """Fed in lists of any size, the batcher cuts the same batches as fed in lists of 1024."""
    expected = cut(Batcher(NORMALISER, 100, message=MESSAGE), items, 1024)
    found = cut(Batcher(NORMALISER, 100, message=MESSAGE, compact_keys=compact), items, size)
    assert shape(found) == shape(expected)


def test_for_text_passes_compact_keys_on():
    """Batcher.for_text(..., compact_keys=True) keeps its numbers in the table from the first one."""
    batcher = Batcher.for_text(NORMALISER, 100, "Hello", sender_id="ITONAB", compact_keys=True)
    batcher.feed(["+919812345678", "+919812345678"])
    assert batcher.distinct == 1
    assert batcher._seen._small is None


def test_a_list_is_read_in_slices_that_see_items_appended_meanwhile():
    """iter_chunks on a list gives every item once, in order, including items appended while it reads."""
    items = [f"+9198123{n:05d}" for n in range(2500)]
    seen: list[str] = []
    for chunk in iter_chunks(items):
        seen.extend(chunk)
        if len(items) < 3000:
            items.append(f"+9197123{len(items):05d}")
    assert seen == items
    assert [len(c) for c in iter_chunks(list(range(2049)))] == [1024, 1024, 1]
