"""The distinct E.164 numbers a run has seen, kept compactly.

A run de-duplicates its recipients by their E.164 form. :class:`SeenNumbers`
takes the E.164 strings themselves and, in its table, answers the same
questions in 7 to 11 bytes a number from 10,000 numbers up (7 at 10 million)
instead of a set's 65 to 100, by keeping :func:`sms_async._phone.e164_key`
(an integer below ``2**63``) in a hash table.

How
    Up to ``_SPILL_AT`` numbers (about a million) the store *is* a Python set
    of the E.164 strings, unless it was made ``compact``: the strings are the
    ones ``send``'s batches and results hold anyway, so ``send`` pays only the
    set's slots, nothing is converted, and numpy is never imported. A
    ``compact`` store (a stream holds no results, so there the set's strings
    would be pure overhead) and a store past the spill keep keys in tables:

    * ``_Compact``, for keys below ``2**50`` (every number of 15 digits or
      fewer, which is every number E.164 allows): ``2**bits`` buckets of
      eight slots, a key's 50-bit one-to-one hash giving its bucket (the top
      bits) and its fingerprint (the rest), of which only the fingerprint is
      stored: 4 to 6 bytes a slot. Looking up a chunk is a handful of
      vectorised steps with one row read a key, and adding it reuses what
      the lookup read. When it holds as many keys as it has slots the
      table doubles in place: each bucket splits in two by its fingerprints' top bit, so
      nothing moves anywhere else and memory peaks at the new table, not at
      the old and the new together. A key whose bucket is full waits in
      the overflow, a sorted array of hashes (up to 12 % of them, at 8 bytes
      each still less than the slots a lower load would leave empty), and
      gets its chance at the next doubling.
    * ``_Table``, for longer keys (and the 63-bit digests of invalid
      inputs), the same with whole 64-bit hashes; made when the first comes.

    Numbers of one length (a chunk of one country's numbers) are read into
    keys as one block of bytes. Single keys added with :meth:`SeenNumbers.add`
    wait in a small set and join the tables in batches.

What it costs
    Measured in ``benchmarks/bench_keys.py`` and ``benchmarks/run.py``: the
    plain set about 5 us of CPU for 100 numbers in a tight loop; the compact
    table about 18 us for 100 in lists of 1024 (about 26 in lists of 256: its
    array steps cost the same for either, so the batcher reads lists of
    1024), the doublings included. In a ``stream`` run, where the set's
    probes of new strings miss the cache, both cost about the same.
    :meth:`SeenNumbers.add` costs about 1 us past the spill, against a set's
    0.1 to 0.2 us.

Numbers must be E.164 as the normaliser makes them (``+`` and ASCII digits,
no leading 0), so that their keys are positive integers below ``2**63``;
anything else is refused with ValueError.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    _USED: npt.NDArray[np.bool_]
    _HASH50: tuple[np.uint64, np.uint64, np.uint64, np.uint64]
else:
    # Bound by _load_numpy when the first store outgrows its plain set.
    np = None
    _USED = _HASH50 = None

__all__ = ["SeenNumbers"]

# Keys held in a plain set before the table takes over: a set of a million
# ints is about 65 MB; the table holds them in about 13.
_SPILL_AT: Final = 1 << 20
# Keys a bucket holds: eight 64-bit keys are one 64-byte cache line.
_SLOTS: Final = 8
# The 64-bit table doubles once this share of its slots is taken.
_MAX_LOAD: Final = 0.75
# The compact table doubles once it holds as many keys as slots: at 8 bytes an
# overflowed key (about 12 % of them then) costs less than a lower load's
# empty 4- to 6-byte slots, so a million keys fit in 2**17 buckets (7 B a key).
_COMPACT_LOAD: Final = 1.0
# Overflowed hashes wait in a set at least up to this many before joining the array.
_RECENT_MIN: Final = 256
# Rows split at a time when the table doubles: bounds the temporary arrays.
_SPLIT_ROWS: Final = 1 << 12
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
_FLOAT_DIGITS: Final = 15
_DIGITS: Final = b"0123456789"
_PLUS: Final = ord("+")
# Keys below 2**50 (15 digits or fewer: every number E.164 allows) go to the
# compact table; longer ones (and 63-bit digests) to the 64-bit one.
_NARROW_BITS: Final = 50
_MASK50: Final = (1 << _NARROW_BITS) - 1
_MASK32: Final = (1 << 32) - 1
_BAD_KEY: Final = "SeenNumbers holds E.164 numbers: their digits must be positive integers below 2**63"


def _load_numpy() -> None:
    """Import numpy: only a run that outgrows the plain set (or a compact store) pays for it."""
    global np, _USED, _HASH50  # noqa: PLW0603 - the lazily imported module and constants of it, bound once
    import numpy as np  # noqa: PLC0415 - imported lazily on purpose

    # Row f: the slots in use in a bucket that holds f keys.
    _USED = np.arange(_SLOTS)[None, :] < np.arange(_SLOTS + 1)[:, None]
    # numpy scalars made once: making them costs more than a step on a chunk.
    _HASH50 = (np.uint64(_MIX1), np.uint64(_MIX2), np.uint64(_MASK50), np.uint64(_NARROW_BITS // 2))


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


class _Overflow:
    """Hashes a full bucket could not take: a sorted array, and the latest few in a set.

    A Python set would cost 60 to 80 bytes a hash (5 % of a table's keys at
    its fullest: 4 bytes a key); the array costs 8. New hashes wait in the set
    and join the array, in one sort, when they are a sixteenth of it (or 256).
    """

    __slots__ = ("_recent", "_sorted")

    def __init__(self) -> None:
        self._sorted: npt.NDArray[np.uint64] = np.zeros(0, dtype=np.uint64)
        self._recent: set[int] = set()

    def __len__(self) -> int:
        return len(self._sorted) + len(self._recent)

    def __bool__(self) -> bool:
        return bool(self._recent) or bool(len(self._sorted))

    def __contains__(self, hashed: int) -> bool:
        if hashed in self._recent:
            return True
        held = self._sorted
        at = int(held.searchsorted(np.uint64(hashed)))
        return at < len(held) and int(held[at]) == hashed

    @property
    def nbytes(self) -> int:
        return int(self._sorted.nbytes) + sys.getsizeof(self._recent) + _INT_BYTES * len(self._recent)

    def holds_any(self, hashes: npt.NDArray[np.uint64]) -> bool:
        """Say whether any of ``hashes`` is held."""
        if self._recent and not self._recent.isdisjoint(hashes.tolist()):
            return True
        held = self._sorted
        if not len(held) or not len(hashes):
            return False
        at = held.searchsorted(hashes)
        at[at == len(held)] = 0
        return bool(np.count_nonzero(held[at] == hashes))

    def update(self, hashes: npt.NDArray[np.uint64]) -> None:
        """Add ``hashes`` (none of them held)."""
        recent = self._recent
        recent.update(hashes.tolist())
        if len(recent) >= max(_RECENT_MIN, len(self._sorted) >> 4):
            fresh = np.fromiter(recent, dtype=np.uint64, count=len(recent))
            fresh.sort()
            merged = np.concatenate((self._sorted, fresh))
            # Two sorted runs: the stable sort (a merge sort) joins them in one pass.
            merged.sort(kind="stable")
            self._sorted = merged
            recent.clear()

    def blocks(self, size: int) -> Iterator[npt.NDArray[np.uint64]]:
        """Every hash held, ``size`` at a time (no copy of the whole array)."""
        held = self._sorted
        for start in range(0, len(held), size):
            yield held[start : start + size]
        if self._recent:
            yield np.fromiter(self._recent, dtype=np.uint64, count=len(self._recent))


class _Compact:
    """Keys below ``2**50`` in ``2**bits`` buckets of ``_SLOTS``, each kept as what its bucket does not say.

    A key's 50-bit hash (one-to-one, :func:`_hash50`) is its bucket (the top
    ``bits`` bits) and its fingerprint (the other ``50 - bits``): a bucket and
    a fingerprint stand for exactly one key. Fingerprints are stored in 4 to
    6 bytes: the low 32 bits in ``lo``, the rest (at most 16 bits, none from
    ``2**18`` buckets up) in ``hi``. A bucket's first ``fill`` slots are in
    use. What a full bucket cannot hold waits, as its hash, in ``overflow``
    (2 to 5 % of keys) and gets its chance at the next doubling, which splits
    each bucket in two by its fingerprints' top bit, in place, as
    :meth:`_Table.double` does.
    """

    __slots__ = ("_fill", "bits", "count", "hi", "lo", "overflow")

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.lo: npt.NDArray[np.uint32] = np.zeros((1 << bits, _SLOTS), dtype=np.uint32)
        dtype = _hi_dtype(_NARROW_BITS - bits)
        self.hi: npt.NDArray[np.unsignedinteger[Any]] | None = (
            None if dtype is None else np.zeros((1 << bits, _SLOTS), dtype=dtype)
        )
        self._fill: npt.NDArray[np.uint8] = np.zeros(1 << bits, dtype=np.uint8)
        self.overflow = _Overflow()
        self.count = 0

    @property
    def nbytes(self) -> int:
        """Bytes held: the fingerprints, the fill counts and the overflow."""
        hi = 0 if self.hi is None else int(self.hi.nbytes)
        return int(self.lo.nbytes + self._fill.nbytes) + hi + self.overflow.nbytes

    @property
    def full(self) -> bool:
        """Whether the table should grow before it takes more keys."""
        return self.count >= _COMPACT_LOAD * _SLOTS * (1 << self.bits)

    def place(
        self, hashes: npt.NDArray[np.uint64]
    ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.uint32], npt.NDArray[Any] | None]:
        """Return each hash's bucket and its fingerprint's two parts."""
        width = _NARROW_BITS - self.bits
        buckets = (hashes >> np.uint64(width)).astype(np.intp)
        fingerprints = hashes & np.uint64((1 << width) - 1)
        lo = fingerprints.astype(np.uint32)  # the low 32 bits
        hi = None if self.hi is None else (fingerprints >> np.uint64(32)).astype(self.hi.dtype)
        return buckets, lo, hi

    def _matches(
        self,
        buckets: npt.NDArray[np.intp],
        lo: npt.NDArray[np.uint32],
        hi: npt.NDArray[Any] | None,
        fills: npt.NDArray[np.uint8],
    ) -> bool:
        """Say whether any fingerprint is in its bucket's used slots (one row read a key)."""
        # take() gathers whole rows several times quicker than fancy indexing.
        match = self.lo.take(buckets, axis=0) == lo[:, None]
        if hi is not None and self.hi is not None:
            match &= self.hi.take(buckets, axis=0) == hi[:, None]
        match &= _USED.take(fills, axis=0)
        # count_nonzero is a plain C call; .any() goes through Python first.
        return bool(np.count_nonzero(match))

    def holds(self, hashed: int) -> bool:
        """Say whether one hash is held."""
        width = _NARROW_BITS - self.bits
        bucket, fingerprint = hashed >> width, hashed & ((1 << width) - 1)
        used = int(self._fill[bucket])
        los = self.lo[bucket, :used].tolist()
        his = self.hi[bucket, :used].tolist() if self.hi is not None else [0] * used
        return (fingerprint & _MASK32, fingerprint >> 32) in zip(los, his, strict=True) or (
            hashed in self.overflow
        )

    def holds_any(self, hashes: npt.NDArray[np.uint64]) -> bool:
        """Say whether any of ``hashes`` is held."""
        buckets, lo, hi = self.place(hashes)
        fills = self._fill[buckets]
        if self._matches(buckets, lo, hi, fills):
            return True
        full = fills == _SLOTS
        return bool(self.overflow) and bool(np.count_nonzero(full)) and self.overflow.holds_any(hashes[full])

    def add_chunk(self, hashes: npt.NDArray[np.uint64], later: npt.NDArray[np.intp] | None) -> bool:
        """Add ``hashes`` (distinct) unless one is held; say whether they were added.

        ``later`` are the positions of hashes whose bucket an earlier one of
        them shares (``None``: none does). Lookup and insertion share their
        reads: the rows, then the buckets' fill counts.
        """
        buckets, lo, hi = self.place(hashes)
        fills = self._fill[buckets]
        if self._matches(buckets, lo, hi, fills):
            return False
        full = fills == _SLOTS
        any_full = bool(np.count_nonzero(full))
        if any_full and self.overflow and self.overflow.holds_any(hashes[full]):
            return False
        if later is not None:
            # The first of each bucket go in at once; the few others after them.
            first = np.ones(len(hashes), dtype=bool)
            first[later] = False
            self._put(
                hashes[first], buckets[first], lo[first], None if hi is None else hi[first], fills[first]
            )
            self._insert_sharing(hashes[later], buckets[later], lo[later], None if hi is None else hi[later])
        else:
            self._put(hashes, buckets, lo, hi, fills, any_full=any_full)
        self.count += len(hashes)
        return True

    def _put(
        self,
        hashes: npt.NDArray[np.uint64],
        buckets: npt.NDArray[np.intp],
        lo: npt.NDArray[np.uint32],
        hi: npt.NDArray[Any] | None,
        fills: npt.NDArray[np.uint8],
        *,
        any_full: bool = True,
    ) -> None:
        """Add hashes in distinct buckets, at each one's next free slot (or in the overflow)."""
        if any_full:
            full = fills == _SLOTS
            if np.count_nonzero(full):
                self.overflow.update(hashes[full])
                fits = ~full
                buckets, lo, fills = buckets[fits], lo[fits], fills[fits]
                hi = None if hi is None else hi[fits]
        # put() writes by flat index, quicker than a two-axis assignment.
        flat = buckets * _SLOTS + fills
        self.lo.put(flat, lo)
        if hi is not None and self.hi is not None:
            self.hi.put(flat, hi)
        self._fill[buckets] = fills + 1

    def insert(self, hashes: npt.NDArray[np.uint64]) -> None:
        """Add ``hashes``: distinct, and none of them held."""
        if len(hashes):
            buckets, lo, hi = self.place(hashes)
            self._insert_sharing(hashes, buckets, lo, hi)
            self.count += len(hashes)

    def _insert_sharing(
        self,
        hashes: npt.NDArray[np.uint64],
        buckets: npt.NDArray[np.intp],
        lo: npt.NDArray[np.uint32],
        hi: npt.NDArray[Any] | None,
    ) -> None:
        """Add hashes some of which may share a bucket, in rounds.

        Each round writes every hash to its bucket's next free slot; where
        several wrote to one slot, the last write stays, and the others (read
        back: a fingerprint in its bucket stands for one key) try again at
        the next slot. Rounds are as many as the most keys a bucket gets at
        once: two or three, the last ones on a handful of keys.
        """
        lo_table, hi_table = self.lo, self.hi
        while len(hashes):
            fills = self._fill[buckets]
            full = fills == _SLOTS
            if np.count_nonzero(full):
                self.overflow.update(hashes[full])
                fits = ~full
                hashes, buckets, lo, fills = hashes[fits], buckets[fits], lo[fits], fills[fits]
                hi = None if hi is None else hi[fits]
            flat = buckets * _SLOTS + fills
            # put() writes by flat index, quicker than a two-axis assignment.
            lo_table.put(flat, lo)
            landed = lo_table.take(flat) == lo
            if hi is not None and hi_table is not None:
                hi_table.put(flat, hi)
                landed &= hi_table.take(flat) == hi
            self._fill[buckets] = fills + 1
            if np.count_nonzero(landed) == len(landed):
                return
            again = ~landed
            hashes, buckets, lo = hashes[again], buckets[again], lo[again]
            hi = None if hi is None else hi[again]

    def double(self) -> None:
        """Double the buckets, in place, keeping every key (see :meth:`_Table.double`).

        Bucket ``b`` splits into ``2b`` and ``2b + 1`` by the top bit of its
        fingerprints, which the bucket then says: it is cleared, and the
        fingerprints' ``hi`` part narrows (or goes) when it can.
        """
        old_rows = 1 << self.bits
        width = _NARROW_BITS - self.bits  # the fingerprints' bits before the split
        top = width - 1
        # A hi part the split empties is only read (for its one bit), never grown.
        keep_hi = self.hi is not None and _hi_dtype(top) is not None
        parts = [self.lo, self.hi] if keep_hi and self.hi is not None else [self.lo]
        for part in parts:
            part.resize((2 * old_rows, _SLOTS), refcheck=False)  # the new rows are zeros
        fill = np.zeros(2 * old_rows, dtype=np.uint8)
        order, count = _split_tables()
        source = self.lo if top < 32 else self.hi
        if source is None:
            raise AssertionError("a fingerprint wider than 32 bits without its hi part")
        shift = source.dtype.type(top if top < 32 else top - 32)
        for start in reversed(range(0, old_rows, _SPLIT_ROWS)):
            stop = min(start + _SPLIT_ROWS, old_rows)
            held = _USED.take(self._fill[start:stop], axis=0)
            upper = ((source[start:stop] >> shift) & 1).astype(bool) & held
            upper_mask = np.packbits(upper, axis=1, bitorder="little").ravel()
            lower_mask = np.packbits(held ^ upper, axis=1, bitorder="little").ravel()
            base = ((_SLOTS + 1) * np.arange(stop - start, dtype=np.intp))[:, None]
            lower_at = base + order.take(lower_mask, axis=0)
            upper_at = base + order.take(upper_mask, axis=0)
            for part in parts:
                # Padded with a zero column, which the tables' padding points at;
                # this also copies the rows, which the first block's new rows cover.
                padded = np.zeros((stop - start, _SLOTS + 1), dtype=part.dtype)
                padded[:, :_SLOTS] = part[start:stop]
                new_rows = part[2 * start : 2 * stop]
                new_rows[0::2] = padded.take(lower_at)
                new_rows[1::2] = padded.take(upper_at)
            fill[2 * start : 2 * stop : 2] = count.take(lower_mask)
            fill[2 * start + 1 : 2 * stop : 2] = count.take(upper_mask)
        self._fill = fill
        self.bits += 1
        if top < 32:
            self.lo &= np.uint32((1 << top) - 1)
        elif not keep_hi:
            self.hi = None  # the fingerprints now fit their 32 low bits
        elif self.hi is not None:
            self.hi &= self.hi.dtype.type((1 << (top - 32)) - 1)
            dtype = _hi_dtype(top)
            if dtype is not None and dtype != self.hi.dtype:
                self.hi = self.hi.astype(dtype)
        if self.overflow:
            # Hashes that overflowed may fit now; a block at a time, so that
            # the insertion's temporary arrays stay small at the peak.
            waiting, self.overflow = self.overflow, _Overflow()
            self.count -= len(waiting)
            for block in waiting.blocks(_SPLIT_ROWS):
                self.insert(block)


def _hi_dtype(width: int) -> type[np.unsignedinteger[Any]] | None:
    """The type of a fingerprint's part above its low 32 bits, for fingerprints of ``width`` bits."""
    if width <= 32:
        return None
    return np.uint8 if width <= 40 else np.uint16


def _hash50(keys: npt.NDArray[np.int64]) -> npt.NDArray[np.uint64]:
    """Return keys' 50-bit hashes (keys below ``2**50``): one-to-one on ``0 .. 2**50 - 1``."""
    mix1, mix2, mask, half = _HASH50
    hashed = keys.view(np.uint64) * mix1  # an odd multiplier, modulo 2**50 (the mask)
    hashed &= mask
    hashed ^= hashed >> half
    hashed *= mix2
    hashed &= mask
    return hashed


def _hash50_int(key: int) -> int:
    """Return one key's hash, as :func:`_hash50` makes it."""
    hashed = (key * _MIX1) & _MASK50
    return ((hashed ^ (hashed >> (_NARROW_BITS // 2))) * _MIX2) & _MASK50


class SeenNumbers:
    """Distinct E.164 numbers seen so far, compact: 7 to 11 B a number past 10,000 in the table.

    Up to about a million numbers this is a plain ``set`` of the strings,
    unless ``compact``; past that, numpy hash tables of their keys (see the
    module's docstring). One run uses one store: it is not safe to share
    between threads.
    """

    __slots__ = ("_narrow", "_pending", "_small", "_wide")

    def __init__(self, *, compact: bool = False) -> None:
        """Make an empty store; ``compact`` uses the table from the first number, never the plain set.

        The plain set is the cheaper choice where something else holds the
        strings anyway (``send``'s results); where nothing does (a stream
        from a generator), the set's strings are 60 to 100 bytes a number of
        pure overhead, and ``compact`` avoids them.
        """
        # The plain set while it lasts; None once the tables have taken over.
        self._small: set[str] | None = set()
        # Keys below 2**50 (every E.164 number of 15 digits or fewer) ...
        self._narrow: _Compact | None = None
        # ... and the others, made when the first one comes.
        self._wide: _Table | None = None
        self._pending: set[int] = set()
        if compact:
            _load_numpy()
            self._small = None
            self._narrow = _Compact(_MIN_BITS)

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
        if not numbers:
            return True
        narrow = self._narrow_table()
        chunk = _keys_array(numbers)
        if narrow.full:
            narrow.double()
        if int(chunk.max()) >> _NARROW_BITS:
            return self._add_new_mixed(chunk)
        hashes = _hash50(chunk)
        # One sort of the hashes (one-to-one with the keys) finds repeats and,
        # by their top bits, keys that share a bucket with the one before.
        order = hashes.argsort()
        ordered = hashes.take(order)
        if np.count_nonzero(ordered[1:] == ordered[:-1]):
            return False
        ordered >>= np.uint64(_NARROW_BITS - narrow.bits)
        same = ordered[1:] == ordered[:-1]
        later = order[1:][same] if np.count_nonzero(same) else None
        if self._pending and not self._pending.isdisjoint(chunk.tolist()):
            return False
        return narrow.add_chunk(hashes, later)

    def _add_new_mixed(self, chunk: npt.NDArray[np.int64]) -> bool:
        """add_new for a chunk with keys of 2**50 and more: each part checked before either is added."""
        if _repeats(chunk) or (self._pending and not self._pending.isdisjoint(chunk.tolist())):
            return False
        is_wide = chunk >= _MASK50 + 1
        narrow_hashes = _hash50(chunk[~is_wide])
        narrow = self._narrow_table()
        if len(narrow_hashes) and narrow.holds_any(narrow_hashes):
            return False
        wide = self._wide_table()
        if wide.full:
            wide.double()
        hashes = _hash(chunk[is_wide])
        if not wide.add_chunk(hashes, wide.bucket_of(hashes), shared=True):
            return False
        narrow.insert(narrow_hashes)
        return True

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
        tables = sum(t.nbytes for t in (self._narrow, self._wide) if t is not None)
        return tables + pending

    def __repr__(self) -> str:
        return f"SeenNumbers({len(self):,} keys, about {self.nbytes:,} bytes)"

    def _held(self, key: int) -> bool:
        if key >> _NARROW_BITS:
            return self._wide is not None and self._wide.holds(_hash_int(key))
        return self._narrow is not None and self._narrow.holds(_hash50_int(key))

    def _count(self) -> int:
        return sum(t.count for t in (self._narrow, self._wide) if t is not None)

    def _narrow_table(self) -> _Compact:
        if self._narrow is None:
            raise AssertionError("no table after the plain set")  # set together in _spill
        return self._narrow

    def _wide_table(self) -> _Table:
        if self._wide is None:
            self._wide = _Table(_MIN_BITS)
        return self._wide

    def _spill(self) -> None:
        """Move the plain set's numbers into the tables, and use the tables from now on."""
        small = self._small
        if small is None:
            return
        _load_numpy()
        try:
            keys = np.fromiter(map(_key_of, small), dtype=np.int64, count=len(small))
        except OverflowError as error:
            raise ValueError(_BAD_KEY) from error
        self._narrow = _Compact(_bits_for(len(keys)))
        # A block at a time, so that the insertion's temporary arrays stay
        # small beside the set and the table.
        for start in range(0, len(keys), _SPLIT_ROWS):
            self._insert(keys[start : start + _SPLIT_ROWS])
        self._small = None
        small.clear()

    def _settle(self) -> None:
        """Move the single keys waiting in the pending set into the tables."""
        self._insert(np.fromiter(self._pending, dtype=np.int64, count=len(self._pending)))
        self._pending.clear()

    def _insert(self, keys: npt.NDArray[np.int64]) -> None:
        """Add ``keys``: distinct, and none of them held."""
        narrow = self._narrow_table()
        is_wide = keys >> _NARROW_BITS != 0
        if is_wide.any():
            wide = self._wide_table()
            if wide.full:
                wide.double()
            wide.insert(_hash(keys[is_wide]))
            keys = keys[~is_wide]
        if narrow.full:
            narrow.double()
        narrow.insert(_hash50(keys))


def _repeats(keys: npt.NDArray[np.int64]) -> bool:
    """Say whether a key comes twice."""
    ordered = np.sort(keys)
    return bool((ordered[1:] == ordered[:-1]).any())


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
    if len(joined) == size * length and 2 <= length <= _BLOCK_DIGITS + 1 and joined.isascii():
        blob = joined.encode("ascii")
        plus = b"+" * size
        # Each number starts with "+", then a digit other than 0, then only
        # digits: without its digits the block is one "+" a number.
        if blob[::length] == plus and b"0" not in blob[1::length] and blob.translate(None, _DIGITS) == plus:
            block = np.frombuffer(blob, dtype=np.uint8).reshape(size, length)[:, 1:]
            weights, offset = _weights(length - 1)
            # Digits' bytes times powers of ten, less what the bytes' 48s add:
            # exact in float64 while everything stays below 2**53.
            keys: npt.NDArray[np.int64] = (block @ weights).astype(np.int64) - offset
            return keys
    try:
        return np.array(_keys_of(numbers), dtype=np.int64)
    except OverflowError as error:
        raise ValueError(_BAD_KEY) from error


_WEIGHTS: dict[int, tuple[npt.NDArray[Any], int]] = {}


def _weights(count: int) -> tuple[npt.NDArray[Any], int]:
    """``10**(count-1), ..., 10, 1``, and what 48 in every place adds up to (the digit bytes' offset).

    Float64 for up to 15 digits, where a row's products and their sum stay
    exact (57 * (10**15 - 1) / 9 < 2**53); int64 beyond, up to 18 digits.
    """
    found = _WEIGHTS.get(count)
    if found is None:
        dtype = np.float64 if count <= _FLOAT_DIGITS else np.int64
        powers = 10 ** np.arange(count - 1, -1, -1, dtype=np.int64)
        found = _WEIGHTS[count] = (powers.astype(dtype), 48 * int(powers.sum()))
    return found


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
    """Return the bucket bits of the smallest table that holds ``count`` keys in at most 75 % of its slots.

    So that it starts at the load a table has between doublings (37.5 to 75 %).
    """
    buckets = -(-count * 4 // (3 * _SLOTS))  # count / (0.75 * _SLOTS), rounded up
    return max(_MIN_BITS, (buckets - 1).bit_length())
