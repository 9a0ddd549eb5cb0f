"""Tests of the de-duplication key store: it must behave exactly like a set of keys."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sms_async import _keys
from sms_async._keys import SeenNumbers

TOP = 2**63 - 1


def e164(key: int) -> str:
    """The E.164 spelling of a key (the store takes numbers as the normaliser writes them)."""
    return f"+{key}"


def e164s(keys: list[int]) -> list[str]:
    """The E.164 spellings of keys."""
    return [e164(key) for key in keys]


PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=400)


@contextlib.contextmanager
def small_limits(spill_at: int = 40, pending: int = 6, split_rows: int = 4) -> Iterator[None]:
    """Make the store leave its plain set, settle single keys and split rows after a few keys."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_keys, "_SPILL_AT", spill_at)
        patch.setattr(_keys, "_PENDING_MAX", pending)
        patch.setattr(_keys, "_RECENT_MIN", pending)
        patch.setattr(_keys, "_SPLIT_ROWS", split_rows)
        yield


def check_same(store: SeenNumbers, reference: set[int], probes: list[int]) -> None:
    """The store holds exactly the reference's keys, as far as length and the probes tell."""
    assert len(store) == len(reference)
    for key in probes:
        assert (e164(key) in store) == (key in reference), key


keys = st.one_of(st.integers(1, 3_000), st.integers(TOP - 40, TOP))
# Twelve digits each, as a chunk of one country's numbers: read as one block of bytes.
same_length = st.integers(10**11, 10**11 + 2_000)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), keys),
        st.tuples(st.just("add"), same_length),
        st.tuples(st.just("add_new"), st.lists(keys, max_size=40)),
        st.tuples(st.just("add_new"), st.lists(keys, max_size=40, unique=True)),
        st.tuples(st.just("add_new"), st.lists(st.integers(3_000, 100_000), max_size=120, unique=True)),
        st.tuples(st.just("add_new"), st.lists(same_length, max_size=120)),
        st.tuples(st.just("add_new"), st.lists(same_length, max_size=120, unique=True)),
    ),
    max_size=60,
)


@PROPERTY
@given(
    operations,
    st.sampled_from([(40, 6, 4), (1, 1, 1), (200, 50, 64), (10**9, 6, 4)]),
    st.booleans(),
)
def test_behaves_exactly_like_a_set(steps, limits, compact):
    """Under any sequence of add and add_new, across spill and growth, the store answers as a set would."""
    with small_limits(*limits):
        store = SeenNumbers(compact=compact)
        reference: set[int] = set()
        for name, argument in steps:
            if name == "add":
                assert store.add(e164(argument)) == (argument not in reference)
                reference.add(argument)
                probes = [argument, argument + 1]
            else:
                fresh = len(set(argument)) == len(argument) and reference.isdisjoint(argument)
                assert store.add_new(e164s(argument)) == fresh
                if fresh:
                    reference.update(argument)
                probes = argument[:5]
            check_same(store, reference, probes)
        check_same(store, reference, [*sorted(reference)[:200], 0, 5_000_000, TOP - 100])


@PROPERTY
@given(st.lists(st.integers(10**11, 10**12 - 1), min_size=1, max_size=300))
def test_a_block_of_one_length_gives_each_numbers_own_key(keys_in):
    """Numbers of one length, read as one block of bytes, get the keys int() gives them one by one."""
    _keys._load_numpy()
    assert _keys._keys_array(e164s(keys_in)).tolist() == keys_in


@pytest.mark.parametrize(
    "numbers",
    [
        ["+919812345678", "+9198123456x8"],  # not a digit
        ["+919812345678", "-919812345678"],  # no plus
        ["+919812345678", "+019812345678"],  # a leading zero
        ["+919812345678", "+91981234567\u0668"],  # a digit, but not an ASCII one
    ],
)
def test_a_block_with_a_bad_number_is_refused_as_one_by_one(numbers):
    """A block of one length holding something that is not E.164 is refused with the same error as alone."""
    store = SeenNumbers(compact=True)
    with pytest.raises(ValueError, match="positive integers below 2\\*\\*63"):
        store.add_new(numbers)
    assert len(store) == 0


def test_a_compact_store_holds_every_number_in_its_table_from_the_first():
    """A compact store keeps no strings: its first number goes to the table, and repeats are found."""
    store = SeenNumbers(compact=True)
    assert store._small is None
    assert store._narrow is not None
    assert store.add_new(e164s([919812345678, 919812345679]))
    assert not store.add_new(e164s([919812345679]))
    assert store.add(e164(442079460018))
    assert not store.add(e164(442079460018))
    assert e164(919812345678) in store
    assert len(store) == 3
    assert store.nbytes < 10_000


def test_a_refused_chunk_adds_nothing():
    """A chunk with a repeat, or with one key seen before, leaves the store as it was, in both phases."""
    with small_limits(spill_at=10):
        for filled in (5, 50):  # before and after the table takes over
            store = SeenNumbers()
            assert store.add_new(e164s(list(range(1, filled + 1))))
            assert not store.add_new(e164s([10_001, 10_002, 10_001]))
            assert not store.add_new(e164s([10_003, 3, 10_004]))
            assert len(store) == filled
            assert e164(10_001) not in store
            assert e164(10_003) not in store
            assert store.add_new(e164s([10_001, 10_003]))
            assert len(store) == filled + 2


def test_boundaries_of_the_spill_the_pending_set_and_growth():
    """The chunk that fills the plain set, the key that settles pending keys, and doubling keep every key."""
    with small_limits(spill_at=64, pending=8, split_rows=2):
        store = SeenNumbers()
        assert store.add_new(e164s(list(range(1, 64))))
        assert store._narrow is None
        assert store.add_new(e164s([64]))  # the 64th key: the set gives way to the table
        assert store._small is None
        assert store._narrow is not None
        for key in range(65, 65 + 8):
            assert store.add(e164(key))
        assert not store._pending  # the eighth single key settled them all
        bits = store._narrow.bits
        next_key = 73
        while store._narrow.bits == bits:
            assert store.add_new(e164s(list(range(next_key, next_key + 50))))
            next_key += 50
        assert len(store) == next_key - 1
        assert all(e164(key) in store for key in range(1, next_key))
        assert not any(e164(key) in store for key in range(next_key, next_key + 100))


def test_keys_near_the_top_of_the_64_bit_range():
    """Keys up to 2**63 - 1 are held in both phases; 2**63 and non-positive keys are refused clearly."""
    with small_limits(spill_at=4):
        store = SeenNumbers()
        assert store.add_new(e164s([TOP, TOP - 1, 1]))
        assert store.add_new(e164s([TOP - 2, TOP - 3]))  # past the spill
        assert not store.add_new(e164s([TOP]))
        assert not store.add(e164(TOP - 1))
        assert store.add(e164(TOP - 4))
        assert all(e164(key) in store for key in (TOP, TOP - 1, TOP - 2, TOP - 3, TOP - 4, 1))
        assert e164(TOP + 1) not in store
        assert e164(0) not in store
        with pytest.raises(ValueError, match="positive integers below 2\\*\\*63"):
            store.add_new(e164s([TOP + 1]))
        with pytest.raises(ValueError, match="positive integers below 2\\*\\*63"):
            store.add(e164(0))
        with pytest.raises(ValueError, match="positive integers below 2\\*\\*63"):
            store.add(e164(2**63))
        assert len(store) == 6


def test_an_empty_chunk_is_new_and_changes_nothing():
    """add_new([]) is True in both phases and adds nothing."""
    with small_limits(spill_at=3):
        store = SeenNumbers()
        assert store.add_new(e164s([]))
        assert store.add_new(e164s([1, 2, 3]))
        assert store.add_new(e164s([]))
        assert len(store) == 3


def test_chunks_whose_keys_share_buckets():
    """Keys that fall in one bucket take its slots in turn, then overflow, and stay findable."""
    with small_limits(spill_at=2):
        store = SeenNumbers()
        assert store.add_new(e164s([1, 2]))
        table = store._narrow
        assert table is not None
        candidates = _keys.np.arange(3, 200_000, dtype=_keys.np.int64)
        buckets, _, _ = table.place(_keys._hash50(candidates))
        same = candidates[buckets == buckets[0]][:20].tolist()
        assert len(same) == 20
        assert store.add_new(e164s(same))  # more than one bucket's eight slots
        assert all(e164(key) in store for key in same)
        assert not store.add_new(e164s([same[-1]]))
        assert len(store) == 22


def test_memory_per_key_is_a_table_at_its_load():
    """Past the plain set, memory is the table's: 5 bytes a slot here, and 8 for each overflowed key."""
    with small_limits(spill_at=1_000):
        store = SeenNumbers()
        for start in range(1, 200_001, 250):
            assert store.add_new(e164s(list(range(start, start + 250))))
        assert len(store) == 200_000
        table = store._narrow
        assert table is not None
        assert table.bits == 15  # so fingerprints have 35 bits: 32 in lo, 3 in an 8-bit hi
        slots = _keys._SLOTS << table.bits
        assert 0.5 <= len(store) / slots <= 1.0
        overflow = 8 * len(table.overflow) + 100 * _keys._RECENT_MIN + 50_000
        assert 5 * slots <= store.nbytes <= 5 * slots + (1 << table.bits) + overflow
        assert store.nbytes / len(store) < 8
        assert len(table.overflow) < 0.08 * len(store)


@pytest.mark.parametrize("compact", [True, False])
def test_bytes_a_number_stay_at_most_16_from_ten_thousand_up(compact):
    """From 10,000 numbers up, through every doubling, the store holds at most 16 bytes a number."""
    with small_limits(spill_at=10_000 if not compact else 10**9, split_rows=1 << 16):
        store = SeenNumbers(compact=compact)
        worst = 0.0
        for start in range(919_000_000_001, 919_000_000_001 + 2_200_000, 1000):
            assert store.add_new(e164s(list(range(start, start + 1000))))
            if len(store) >= 10_000:
                worst = max(worst, store.nbytes / len(store))
        assert len(store) == 2_200_000
        assert worst <= 16


def test_numbers_of_sixteen_digits_and_more_are_held_beside_the_others():
    """Keys of 2**50 and more go to a table of their own; both answer, alone and in mixed chunks."""
    store = SeenNumbers(compact=True)
    wide = [2**50, 2**50 + 1, TOP]
    assert store.add_new(e164s([919812345678, *wide]))
    assert store._wide is not None
    assert not store.add_new(e164s([2**50]))
    assert not store.add_new(e164s([919812345678, 2**50 + 2]))
    assert e164(2**50 + 2) not in store  # a refused mixed chunk adds nothing
    assert not store.add(e164(TOP))
    assert store.add(e164(2**50 + 2))
    assert all(e164(key) in store for key in [919812345678, *wide, 2**50 + 2])
    assert len(store) == 5


def test_a_small_run_never_imports_numpy():
    """Below the spill point the store is a plain set: numpy is not even imported."""
    code = (
        "import sys\n"
        "from sms_async._keys import SeenNumbers\n"
        "s = SeenNumbers()\n"
        "assert s.add_new([f'+{k}' for k in range(1, 100_001)])\n"
        "assert s.add('+100001') and not s.add('+5') and len(s) == 100_001\n"
        "assert 'numpy' not in sys.modules, 'numpy was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)  # noqa: S603 - our own interpreter and code


def test_repr_says_how_many_keys_and_bytes():
    """The repr gives the number of keys and the memory held, and nothing else."""
    store = SeenNumbers()
    store.add_new(e164s([919812345678, 442079460018]))
    assert repr(store).startswith("SeenNumbers(2 keys, about ")


@PROPERTY
@given(st.lists(st.lists(st.integers(1, 2**50 - 1), max_size=30, unique=True), max_size=20))
def test_the_overflow_holds_what_it_was_given_in_its_array_and_its_set(batches):
    """The overflow answers as a set would, whether a hash waits in its set or was merged into its array."""
    _keys._load_numpy()
    with small_limits(pending=4):
        overflow = _keys._Overflow()
        reference: set[int] = set()
        for batch in batches:
            fresh = [h for h in batch if h not in reference]
            overflow.update(_keys.np.array(fresh, dtype=_keys.np.uint64))
            reference.update(fresh)
            assert len(overflow) == len(reference)
            probes = [*batch[:3], 2**50 + 7, 0]
            for probe in probes:
                assert (probe in overflow) == (probe in reference)
            assert overflow.holds_any(_keys.np.array(probes, dtype=_keys.np.uint64)) == any(
                p in reference for p in probes
            )
        assert sorted(h for block in overflow.blocks(7) for h in block.tolist()) == sorted(reference)
