"""De-duplication keys: the distinct E.164 numbers a run has seen."""

from __future__ import annotations

import sys

__all__ = ["SeenNumbers"]


class SeenNumbers:
    """Distinct E.164 keys (``int(e164[1:])``) seen so far."""

    __slots__ = ("_keys",)

    def __init__(self) -> None:
        self._keys: set[int] = set()

    def add_new(self, keys: list[int]) -> bool:
        """Add every key and return True if all are distinct and unseen; else add nothing, return False."""
        new = set(keys)
        if len(new) != len(keys) or not self._keys.isdisjoint(new):
            return False
        self._keys |= new
        return True

    def add(self, key: int) -> bool:
        """Add one key; True when it was new."""
        if key in self._keys:
            return False
        self._keys.add(key)
        return True

    def __contains__(self, key: int) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def nbytes(self) -> int:
        """Approximate memory held, in bytes."""
        return sys.getsizeof(self._keys) + 32 * len(self._keys)
