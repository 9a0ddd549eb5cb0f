"""The distinct E.164 numbers a run has seen, kept compactly.

A run de-duplicates its recipients by their E.164 form. :class:`SeenNumbers`
takes the E.164 strings themselves and, once it is large, answers the same
questions in 11 to 23 bytes a number (15 at 10 million) instead of a set's
65 or more, by keeping :func:`sms_async._phone.e164_key` (an integer below
``2**63``) in a table.

How
    Up to ``_SPILL_AT`` numbers (about a million) the store *is* a Python set
    of the E.164 strings: the strings are the ones the batches and the
    results hold anyway, so ``send`` pays only the set's slots, nothing is
    converted, and numpy is never imported. Then the keys move into
    ``_Table``, a hash table in numpy
    of the keys' 64-bit hashes (a one-to-one hash, so a hash stands for its
    key): ``2**bits`` buckets of eight slots (one cache line), a hash's
    bucket being its top bits. Looking up a chunk is a handful of vectorised
    steps with one memory access a key, and adding it reuses what the lookup
    read. When 75 % of the slots are taken the table doubles in place: each
    bucket splits in two by the next bit of its hashes, so nothing moves
    anywhere else and memory peaks at the new table, not at the old and the
    new together. A hash whose bucket is full waits in a small overflow set
    (2 to 5 % of them) and gets its chance at the next doubling. Single keys
    added with :meth:`SeenNumbers.add` wait in a small set and join the table
    in batches.

What it costs
    Measured in ``benchmarks/bench_keys.py``, side by side with the set: the
    same CPU up to the spill; there, a one-off 0.3 to 0.4 s (importing numpy,
    converting the set's ints, freeing them); past it, about 25 us a chunk
    of 256 plus the doublings (about 0.35 s in all up to ten million keys).
    All told, at ten million keys, 1.5 to 2.5 times the set's CPU per key
    for a quarter of its memory. :meth:`SeenNumbers.add` costs about 1 us
    past the spill, against a set's 0.1 to 0.2 us.

Numbers must be E.164 as the normaliser makes them (``+`` and digits, no
leading 0), so that their keys are positive integers below ``2**63``: the
table marks an empty slot with 0.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
else:
    # Bound by _load_numpy when the first store outgrows its plain set.
    np = None

__all__ = ["SeenNumbers"]

# Keys held in a plain set before the table takes over: a set of a million
# ints is about 65 MB; the table holds them in about 13.
_SPILL_AT: Final = 1 << 20
# Keys a bucket holds: eight 64-bit keys are one 64-byte cache line.
_SLOTS: Final = 8
# The table doubles once this share of its slots is taken: a 10-million-key
# table then holds its keys in 60 % of 2**24 slots (13.4 B a key).
_MAX_LOAD: Final = 0.75
# Rows split at a time when the table doubles: bounds the temporary arrays.
_SPLIT_ROWS: Final = 1 << 16
# Single keys (add) wait in a set up to this many, then join the table at once.
_PENDING_MAX: Final = 4096
# The hash: multiply, fold the high half into the low, multiply again (the
# first and last steps of MurmurHash3's finaliser). One multiplication alone
# (Fibonacci hashing) piles up keys in arithmetic progression, which
# generated test lists are.
_MIX1: Final = 0xFF51AFD7ED558CCD
_MIX2: Final = 0xC4CEB9FE1A85EC53
_MASK64: Final = (1 << 64) - 1
# What a number costs in the plain set besides the set's own table, when only
# the set holds its string (``stream``; in ``send`` the results hold it too).
_STR_BYTES: Final = 64
# What a pending number costs besides the set's table: its int key.
_INT_BYTES: Final = 32
# The smallest table (64 buckets of 8 slots, 4 KiB), which a compact store starts with.
_MIN_BITS: Final = 6
# Numbers of one length with at most this many digits are read as one block of bytes.
_BLOCK_DIGITS: Final = 18
_PLUS: Final = ord("+")
_BAD_KEY: Final = "SeenNumbers holds E.164 numbers: their digits must be positive integers below 2**63"


def _load_numpy() -> None:
    """Import numpy: only a run that outgrows the plain set pays for it."""
    global np  # noqa: PLW0603 - the lazily imported module, bound once
    import numpy as np  # noqa: PLC0415 - imported lazily on purpose


def _hash(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Return the keys' 64-bit hashes: a one-to-one map, so a hash stands for its key."""
    hashed = keys.view(np.uint64) * np.uint64(_MIX1)
    hashed ^= hashed >> np.uint64(32)
    hashed *= np.uint64(_MIX2)
    return hashed


def _hash_int(key: int) -> int:
    """Return one key's hash, as :func:`_hash` makes it."""
    hashed = (key * _MIX1) & _MASK64
    return ((hashed ^ (hashed >> 32)) * _MIX2) & _MASK64


class _Table:
    """Keys' hashes in ``2**bits`` buckets of ``_SLOTS``; what a full bucket cannot hold, in a set.

    It holds hashes rather than keys: the hash is one-to-one, the bucket is
    its top ``bits`` bits, and doubling splits each bucket in two by the next
    bit, all without hashing anything again. 0 marks an empty slot (only the
    key 0, never stored, hashes to 0).
    """

    __slots__ = ("_fill", "_shift", "_slots", "bits", "count", "overflow")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._shift = np.uint64(64 - bits)
        self._slots: npt.NDArray[np.uint64] = np.zeros((1 << bits, _SLOTS), dtype=np.uint64)
        self._fill: npt.NDArray[np.uint8] = np.zeros(1 << bits, dtype=np.uint8)
        self.overflow: set[int] = set()
        self.count = 0

    @property
    def nbytes(self) -> int:
        """Bytes held: the slots, the fill counts and the overflow set."""
        overflow = sys.getsizeof(self.overflow) + _INT_BYTES * len(self.overflow)
        return int(self._slots.nbytes + self._fill.nbytes) + overflow

    @property
    def full(self) -> bool:
        """Whether the table should grow before it takes more keys."""
        return self.count >= _MAX_LOAD * _SLOTS * (1 << self.bits)

    def bucket_of(self, hashes: npt.NDArray[np.uint64]) -> npt.NDArray[np.intp]:
        """Return each hash's bucket, its top ``bits`` bits, as indices."""
        return (hashes >> self._shift).view(np.intp)

    def holds(self, hashed: int) -> bool:
        """Say whether one hash is held (Python arithmetic and one row read)."""
        return hashed in self._slots[hashed >> (64 - self.bits)].tolist() or hashed in self.overflow

    def add_chunk(
        self, hashes: npt.NDArray[np.uint64], buckets: npt.NDArray[np.intp], *, shared: bool
    ) -> bool:
        """Add ``hashes`` (distinct, in their ``buckets``) unless one is held; say whether they were added.

        ``shared`` says whether two of them share a bucket. Lookup and
        insertion share their reads: the rows, then the buckets' fill counts.
        """
        # take() gathers whole rows several times quicker than fancy indexing.
        if (self._slots.take(buckets, axis=0) == hashes[:, None]).any():
            return False
        fills = self._fill[buckets]
        full = fills == _SLOTS
        any_full = bool(full.any())
        if any_full and self.overflow and not self.overflow.isdisjoint(hashes[full].tolist()):
            return False
        if shared:
            self._insert_sharing(hashes, buckets)
        elif any_full:
            fits = ~full
            self._slots.put(buckets[fits] * _SLOTS + fills[fits], hashes[fits])
            self._fill[buckets[fits]] = fills[fits] + 1
            self.overflow.update(hashes[full].tolist())
        else:
            # put() writes by flat index, quicker than a two-axis assignment.
            self._slots.put(buckets * _SLOTS + fills, hashes)
            self._fill[buckets] = fills + 1
        self.count += len(hashes)
        return True

    def insert(self, hashes: npt.NDArray[np.uint64]) -> None:
        """Add ``hashes``: distinct, and none of them held."""
        if len(hashes):
            self._insert_sharing(hashes, self.bucket_of(hashes))
            self.count += len(hashes)

    def _insert_sharing(self, hashes: npt.NDArray[np.uint64], buckets: npt.NDArray[np.intp]) -> None:
        """Add hashes some of which may share a bucket: each takes the bucket's next free slot in turn."""
        size = len(hashes)
        bits = max(1, (size - 1).bit_length())
        # Sort (bucket, index) pairs packed in one integer, which is much
        # quicker than an argsort: buckets are below 2**self.bits, indices 2**bits.
        packed = (buckets << bits) | np.arange(size, dtype=np.intp)
        packed.sort()
        order = packed & ((1 << bits) - 1)
        grouped = packed >> bits
        starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
        sizes = np.diff(starts, append=size)
        rank = np.arange(size) - np.repeat(starts, sizes)
        position = self._fill[grouped].astype(np.intp) + rank
        fits = position < _SLOTS
        self._slots.put(grouped[fits] * _SLOTS + position[fits], hashes[order[fits]])
        firsts = grouped[starts]
        self._fill[firsts] = np.minimum(self._fill[firsts].astype(np.intp) + sizes, _SLOTS)
        if not fits.all():
            self.overflow.update(hashes[order[~fits]].tolist())

    def double(self) -> None:
        """Double the buckets, in place, keeping every key.

        Bucket ``b`` splits into ``2b`` and ``2b + 1`` by the next bit of each
        hash. The slots array is enlarged where it lies (a ``realloc``, which
        for an array this size remaps pages rather than copying them), and the
        buckets are split a block at a time from the last, so that a block's
        new rows only ever cover rows already split: memory peaks at the new
        table and one block, not at the old and the new tables.
        """
        old_rows = 1 << self.bits
        self._slots.resize((2 * old_rows, _SLOTS), refcheck=False)  # the new rows are zeros
        fill = np.zeros(2 * old_rows, dtype=np.uint8)
        self.bits += 1
        self._shift = np.uint64(64 - self.bits)
        order, count = _split_tables()
        for start in reversed(range(0, old_rows, _SPLIT_ROWS)):
            stop = min(start + _SPLIT_ROWS, old_rows)
            rows = self._slots[start:stop]
            held = rows != 0
            upper = ((rows >> self._shift) & np.uint64(1)).astype(bool)  # 0 for an empty slot
            # Each row's two halves as bit masks, and from them (by table) the
            # columns of each half's hashes in order, padded with column 8: a
            # zero. This also copies the rows, which the first block's new rows cover.
            upper_mask = np.packbits(upper, axis=1, bitorder="little").ravel()
            lower_mask = np.packbits(held ^ upper, axis=1, bitorder="little").ravel()
            padded = np.zeros((stop - start, _SLOTS + 1), dtype=np.uint64)
            padded[:, :_SLOTS] = rows
            base = ((_SLOTS + 1) * np.arange(stop - start, dtype=np.intp))[:, None]
            new_rows = self._slots[2 * start : 2 * stop]
            new_rows[0::2] = padded.take(base + order.take(lower_mask, axis=0))
            new_rows[1::2] = padded.take(base + order.take(upper_mask, axis=0))
            fill[2 * start : 2 * stop : 2] = count.take(lower_mask)
            fill[2 * start + 1 : 2 * stop : 2] = count.take(upper_mask)
        self._fill = fill
        if self.overflow:
            # Hashes that overflowed may fit now.
            extra = np.fromiter(self.overflow, dtype=np.uint64, count=len(self.overflow))
            self.overflow = set()
            self.count -= len(extra)
            self.insert(extra)


class SeenNumbers:
    """Distinct E.164 numbers seen so far, compact: <= 16 B a number at 10M numbers.

    Up to about a million numbers this is a plain ``set`` of the strings;
    past that, a numpy hash table of their keys (see the module's
    docstring). One run uses one store: it is not safe to share between threads.
    """

    __slots__ = ("_pending", "_small", "_table")

    def __init__(self, *, compact: bool = False) -> None:
        """Make an empty store; ``compact`` uses the table from the first number, never the plain set.

        The plain set is the cheaper choice where something else holds the
        strings anyway (``send``'s results); where nothing does (a stream
        from a generator), the set's strings are 60 to 100 bytes a number of
        pure overhead, and ``compact`` avoids them.
        """
        # The plain set while it lasts; None once the table has taken over.
        self._small: set[str] | None = set()
        self._table: _Table | None = None
        self._pending: set[int] = set()
        if compact:
            _load_numpy()
            self._small = None
            self._table = _Table(_MIN_BITS)

    def add_new(self, numbers: list[str]) -> bool:
        """Add every number and return True if all are distinct and unseen; else add nothing, return False.

        The caller then goes number by number with :meth:`add`.
        """
        small = self._small
        if small is not None:
            # No set of the chunk is built: probing the list, then adding it,
            # costs a third less. None was there before, so a chunk that
            # turns out to repeat a number of its own comes out whole again.
            if not small.isdisjoint(numbers):
                return False
            before = len(small)
            small.update(numbers)
            if len(small) - before != len(numbers):
                small.difference_update(numbers)
                return False
            if len(small) >= _SPILL_AT:
                self._spill()
            return True
        table = self._table
        if table is None:
            raise AssertionError("no table after the plain set")  # set together in _spill
        if not numbers:
            return True
        chunk = _keys_array(numbers)
        if table.full:
            table = self._grow()
        hashes = _hash(chunk)
        buckets = table.bucket_of(hashes)
        # Keys in distinct buckets are distinct: only a chunk with a shared
        # bucket (rare once the table is large) needs its keys compared.
        ordered = np.sort(buckets)
        shared = bool((ordered[1:] == ordered[:-1]).any())
        if shared:
            ordered_keys = np.sort(chunk)
            if (ordered_keys[1:] == ordered_keys[:-1]).any():
                return False
        if self._pending and not self._pending.isdisjoint(chunk.tolist()):
            return False
        return table.add_chunk(hashes, buckets, shared=shared)

    def add(self, number: str) -> bool:
        """Add one number; True when it was new."""
        small = self._small
        if small is not None:
            if number in small:
                return False
            small.add(number)
            if len(small) >= _SPILL_AT:
                self._spill()
            return True
        key = _key_of(number)
        if key in self._pending or self._held(key):
            return False
        self._pending.add(key)
        if len(self._pending) >= _PENDING_MAX:
            self._settle()
        return True

    def __contains__(self, number: str) -> bool:
        small = self._small
        if small is not None:
            return number in small
        try:
            key = _key_of(number)
        except ValueError:
            return False  # never stored
        return key in self._pending or self._held(key)

    def __len__(self) -> int:
        if self._small is not None:
            return len(self._small)
        return self._count() + len(self._pending)

    @property
    def nbytes(self) -> int:
        """Approximate memory held, in bytes (the plain set's strings counted as its own)."""
        pending = sys.getsizeof(self._pending) + _INT_BYTES * len(self._pending)
        if self._small is not None:
            return sys.getsizeof(self._small) + _STR_BYTES * len(self._small) + pending
        return (self._table.nbytes if self._table is not None else 0) + pending

    def __repr__(self) -> str:
        return f"SeenNumbers({len(self):,} keys, about {self.nbytes:,} bytes)"

    def _held(self, key: int) -> bool:
        return self._table is not None and self._table.holds(_hash_int(key))

    def _count(self) -> int:
        return self._table.count if self._table is not None else 0

    def _spill(self) -> None:
        """Move the plain set's numbers into a table, and use the table from now on."""
        small = self._small
        if small is None:
            return
        _load_numpy()
        try:
            keys = np.fromiter(map(_key_of, small), dtype=np.int64, count=len(small))
        except OverflowError as error:
            raise ValueError(_BAD_KEY) from error
        table = _Table(_bits_for(len(keys)))
        # A block at a time, so that the insertion's temporary arrays stay
        # small beside the set and the table.
        for start in range(0, len(keys), _SPLIT_ROWS):
            block = keys[start : start + _SPLIT_ROWS]
            table.insert(_hash(block))
        self._table = table
        self._small = None
        small.clear()

    def _settle(self) -> None:
        """Move the single keys waiting in the pending set into the table."""
        if self._table is not None and self._table.full:
            self._grow()
        table = self._table
        if table is None:
            raise AssertionError("no table after the plain set")  # set together in _spill
        table.insert(_hash(np.fromiter(self._pending, dtype=np.int64, count=len(self._pending))))
        self._pending.clear()

    def _grow(self) -> _Table:
        """Double the table's buckets; return it."""
        table = self._table
        if table is None:
            raise AssertionError("no table to grow")  # only called once the table exists
        table.double()
        return table


def _key_of(number: str) -> int:
    """The key of an E.164 number: its digits as an integer (``e164_key``, checked)."""
    digits = number[1:]
    if number[:1] != "+" or digits[:1] == "0" or not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"{_BAD_KEY}, got {number[:20]!r}")
    key = int(number)  # int() takes the leading '+'
    if key >= 1 << 63:
        raise ValueError(_BAD_KEY)
    return key


def _keys_array(numbers: list[str]) -> npt.NDArray[np.int64]:
    """The numbers' keys as an array; numbers of one length are read as one block of bytes."""
    size = len(numbers)
    length = len(numbers[0])
    joined = "".join(numbers)
    # Up to 18 digits the key fits an int64 whatever the digits: 10**18 < 2**63.
    if len(joined) == size * length and 2 <= length <= _BLOCK_DIGITS + 1 and joined.isascii():
        block = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(size, length)
        digits = block[:, 1:] - np.uint8(48)  # a non-digit wraps round to above 9
        if (block[:, 0] == _PLUS).all() and (digits <= 9).all() and digits[:, 0].all():
            return digits.astype(np.int64) @ _powers(length - 1)
    try:
        return np.array(_keys_of(numbers), dtype=np.int64)
    except OverflowError as error:
        raise ValueError(_BAD_KEY) from error


def _powers(count: int) -> npt.NDArray[np.int64]:
    """``10**(count-1), ..., 10, 1`` as int64: a row of digits times this is its number."""
    return 10 ** np.arange(count - 1, -1, -1, dtype=np.int64)


def _keys_of(numbers: list[str]) -> list[int]:
    joined = "".join(numbers)
    # int() alone would also take "+0...", "-1", " 1", "1_0" and non-ASCII
    # digits; one "+" a number, then ASCII digits not starting with 0, is
    # what the normaliser's E.164 is, and int() then reads each exactly.
    if (
        joined.isascii()
        and joined.count("+") == len(numbers)
        and "+0" not in joined
        and joined.replace("+", "").isdigit()
    ):
        try:
            keys = list(map(int, numbers))  # a "+" inside a number still raises
        except ValueError:
            keys = [_key_of(number) for number in numbers]
    else:
        keys = [_key_of(number) for number in numbers]
    if keys and (min(keys) <= 0 or max(keys) >= 1 << 63):
        raise ValueError(_BAD_KEY)
    return keys


def _split_tables() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint8]]:
    """For each 8-bit mask: the columns of its set bits in order, padded with 8; and how many there are."""
    masks = np.arange(256, dtype=np.uint8)[:, None]
    bits = (masks >> np.arange(_SLOTS, dtype=np.uint8)) & 1  # (256, 8): bit j of each mask
    # A stable sort of "not set" puts the set columns first, in order.
    order = np.argsort(1 - bits, axis=1, kind="stable").astype(np.intp)
    count = bits.sum(axis=1).astype(np.uint8)
    order[np.arange(_SLOTS)[None, :] >= count[:, None]] = _SLOTS
    return order, count


def _bits_for(count: int) -> int:
    """Return the bucket bits of a table that holds ``count`` keys in at most half its slots."""
    return max(_MIN_BITS, (2 * count - 1).bit_length() - (_SLOTS.bit_length() - 1))
