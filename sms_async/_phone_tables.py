"""Prefix tables: phonenumbers' validity rules for one country and one length, as dict look-ups.

:mod:`sms_async._phone` asks this module for a table per country calling code
and number length (and, for national spellings, per default region, length
and national prefix). A table answers "is this a valid number that
phonenumbers reads as it stands?" with a slice of the string and a dict
look-up or two, instead of a regular expression per number.

How a table is made
    The verdict is a formula over the metadata's patterns, replaying
    phonenumbers: a region's general description and any of its number types
    of that length (``_number_type_helper``), the first region of a shared
    code whose leading digits match (``_region_code_for_number_from_list``),
    no national prefix to strip, and for national spellings the rules of
    ``parse`` (no international prefix, no own country code, a national
    prefix stripped only when the rest is kept). :mod:`sms_async._phone_automata`
    turns it into a decision tree over the digits, and the tree is cut into
    strides: a node looks up a slice of several digits at once (as many as
    keep its dict under a cap), so that the usual number is decided by one
    slice and one look-up.

What a table does not say
    A table holds only *accepted* prefixes, and it is exact about them: a
    number it accepts is valid, and phonenumbers reads it as it stands.
    Everything else, invalid or merely unusual, is for the caller's exact
    replay to decide, as is every number of metadata outside the syntax the
    automata compile (none in the installed phonenumbers; the tests check).

Memory
    Tables are built on first use (a few milliseconds each; about 60 ms for
    the 10-digit numbers of +1, whose 25 regions share one table) and kept
    under an entry budget (``_MAX_ENTRIES``): they grow with the countries
    and lengths a run meets, never with the number of recipients.
"""

from __future__ import annotations

import functools
import itertools
import operator
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Final

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumberDesc, ValidationResult

from sms_async._phone_automata import (
    Automata,
    Formula,
    Not,
    Tree,
    UntabulatableError,
    all_of,
    any_of,
    decide,
    literal_language,
)

__all__ = [
    "TYPE_FIELDS",
    "Node",
    "Table",
    "column_code",
    "dropped_tables",
    "e164_table",
    "length_verdict",
    "national_prefixes",
    "national_table",
    "number_types",
]

# phonenumbers' limits on a national significant number's length (the
# normaliser's tests pin them to the library's own).
_MIN_NSN_LENGTH: Final = 2
_MAX_NSN_LENGTH: Final = 17

# The largest dict the first look-up of a table, and any further one, may
# hold (an entry costs about 90 B). Larger strides decide more numbers in one
# look-up: with these, the valid numbers of the largest countries take 1 to
# 1.3 look-ups on average, and every table of every calling code together
# holds about 100,000 entries.
_ROOT_CAP: Final = 4096
_NODE_CAP: Final = 256
# A node's stride stops growing once no more than this share of the valid
# numbers below it would need another look-up.
_OPEN_SHARE: Final = 0.05

# Entries all built tables may hold together (about 13 MB); beyond this the
# oldest are dropped, and rebuilt if they are needed again. Every E.164 table
# of every calling code fits in it.
_MAX_ENTRIES: Final = 150_000

_MISSING: Final = object()

# The order in which a region's number types are tried. Any match makes the
# number valid, so the order changes only the speed: an SMS recipient is most
# often a mobile, then a fixed line.
TYPE_FIELDS: Final = (
    "mobile",
    "fixed_line",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)


def length_verdict(length: int, possible: tuple[int, ...], local_only: tuple[int, ...]) -> int:
    """Replay phonenumbers' ``_test_number_length`` for the general description."""
    if length in local_only:
        return int(ValidationResult.IS_POSSIBLE_LOCAL_ONLY)
    if possible[0] == length:
        return int(ValidationResult.IS_POSSIBLE)
    if possible[0] > length:
        return int(ValidationResult.TOO_SHORT)
    if possible[-1] < length:
        return int(ValidationResult.TOO_LONG)
    if length in possible[1:]:
        return int(ValidationResult.IS_POSSIBLE)
    return int(ValidationResult.INVALID_LENGTH)


class Node:
    """One look-up of a table: ``table.get(number[start:stop])``.

    The value found is ``True`` (accepted), another :class:`Node` (look
    further), or nothing (not accepted as it stands).
    """

    __slots__ = ("start", "stop", "table")

    def __init__(self, start: int, stop: int, table: dict[str, Node | bool]) -> None:
        self.start = start
        self.stop = stop
        self.table = table


class Table:
    """The look-ups that accept the numbers of one kind and one length.

    Attributes:
        root: The first look-up.
        entries: How many dict entries its nodes hold (each shared node once).
    """

    __slots__ = ("_columns", "_decided", "_slice", "entries", "root")

    def __init__(self, root: Node) -> None:
        self.root = root
        # The keys of the first look-up that decide on their own, and the
        # slice that makes them: a C-level pass over a whole list.
        self._decided = frozenset(key for key, value in root.table.items() if value is True)
        self._slice = operator.itemgetter(slice(root.start, root.stop))
        seen: set[int] = set()

        def count(node: Node) -> int:
            if id(node) in seen:
                return 0
            seen.add(id(node))
            return len(node.table) + sum(count(v) for v in node.table.values() if isinstance(v, Node))

        self.entries = count(root)
        self._columns: dict[int, tuple[int, re.Pattern[str] | None] | None] = {}

    def accepts(self, number: str) -> bool:
        """Say whether the table accepts ``number``."""
        node = self.root
        found = node.table.get(number[node.start : node.stop])
        while isinstance(found, Node):
            found = found.table.get(number[found.start : found.stop])
        return found is True

    def accepts_all(self, numbers: Iterable[str]) -> bool:
        """Say whether the table accepts every number, each usually in one C-level step."""
        if not isinstance(numbers, list):
            numbers = list(numbers)
        return self._decided.issuperset(map(self._slice, numbers)) or all(map(self.accepts, numbers))

    def columns(self, head: int) -> tuple[int, re.Pattern[str] | None] | None:
        """The first look-up as a test of digits, for numbers whose first ``head`` characters it knows.

        A number's first look-up reads its head (``"+<code>"``, the same for
        every number the table is asked about) and the ``width`` digits after
        it; :func:`column_code` makes those digits one code point. ``pattern``
        finds a code point whose look-up does not decide on its own (its
        number is invalid, or needs a further look-up), so that a string of a
        whole list's code points is tested in one C-level search.

        Returns:
            ``(width, pattern)``; ``pattern`` is ``None`` when every code point
            decides. ``None`` when the first look-up is not of that form (its
            keys do not start at the head, or are more than 4 digits long, or
            it reads no digit and does not decide).
        """
        try:
            return self._columns[head]
        except KeyError:
            pass
        root = self.root
        width = root.stop - head
        found: tuple[int, re.Pattern[str] | None] | None = None
        if root.start == 0 and width == 0:
            # Every number of this length, or none, as the head's look-up says.
            found = (0, None) if self._decided else None
        elif root.start == 0 and 0 < width <= 4:
            codes = sorted(column_code(key[head:]) for key in self._decided)
            if len(codes) == 10**width:
                found = (width, None)
            else:
                # A code point that is not one of ``codes`` (``\\u`` escapes of four hex digits
                # spell any of them safely in a class).
                excluded = "".join(f"\\u{code:04x}" for code in codes)
                found = (width, re.compile(f"[^{excluded}]" if codes else "(?s:.)"))
        self._columns[head] = found
        return found


def column_code(digits: str) -> int:
    """The code point that stands for up to 4 digits in :meth:`Table.columns`.

    Made to be computed for a whole list at once from the digits' columns
    (``_phone._column_codes``): a digit is its ASCII code, two digits are
    two bytes of a UTF-16 code unit, and 3 or 4 take the value of a pair
    (``"42"`` is 42) as the low byte. Every code is below 0x3A00, never a
    surrogate.
    """
    if len(digits) <= 2:
        return sum(ord(c) << (8 * i) for i, c in enumerate(digits))
    return int(digits[:2]) + 256 * (ord(digits[2]) if len(digits) == 3 else int(digits[2:]))


def _to_table(tree: Tree, head: str, length: int) -> Table | None:
    """Cut a decision tree over ``length`` digits into look-ups of the strings ``head`` + digits.

    A node's stride grows while more than ``_OPEN_SHARE`` of the valid
    numbers below it would still need another look-up and its dict stays
    within its cap: most numbers are then decided by the first look-up, and
    a stride never grows only to expand decided prefixes.
    """
    widths: dict[tuple[int, int], int] = {}
    shares: dict[int, float] = {}
    opens: dict[tuple[int, int], float] = {}
    made: dict[tuple[int, int], Node] = {}

    def width(subtree: Tree, stride: int) -> int:
        """Entries a node of this stride would hold."""
        if isinstance(subtree, bool):
            return 10**stride if subtree else 0
        if stride == 0:
            return 1
        key = (id(subtree), stride)
        found = widths.get(key)
        if found is None:
            found = widths[key] = sum(width(child, stride - 1) for child in subtree)
        return found

    def share(subtree: Tree) -> float:
        """The share of all completions that are valid."""
        if isinstance(subtree, bool):
            return float(subtree)
        found = shares.get(id(subtree))
        if found is None:
            found = shares[id(subtree)] = sum(map(share, subtree)) / 10
        return found

    def still_open(subtree: Tree, stride: int) -> float:
        """The share of all completions that are valid and undecided after ``stride`` digits."""
        if isinstance(subtree, bool):
            return 0.0
        if stride == 0:
            return share(subtree)
        key = (id(subtree), stride)
        found = opens.get(key)
        if found is None:
            found = opens[key] = sum(still_open(child, stride - 1) for child in subtree) / 10
        return found

    def fill(table: dict[str, Node | bool], subtree: Tree, path: str, stride: int, offset: int) -> None:
        if subtree is False:
            return
        if stride == 0:
            table[path] = True if subtree is True else node(subtree, offset)
            return
        for digit in range(10):
            child = subtree if isinstance(subtree, bool) else subtree[digit]
            fill(table, child, path + str(digit), stride - 1, offset)

    def node(subtree: Tree, offset: int) -> Node:
        key = (id(subtree), offset)
        found = made.get(key)
        if found is None:
            cap = _ROOT_CAP if offset == 0 else _NODE_CAP
            enough = share(subtree) * _OPEN_SHARE
            stride = 1
            while (
                offset + stride < length
                and still_open(subtree, stride) > enough
                and width(subtree, stride + 1) <= cap
            ):
                stride += 1
            table: dict[str, Node | bool] = {}
            fill(table, subtree, "" if offset else head, stride, offset + stride)
            start = offset + len(head) if offset else 0
            found = made[key] = Node(start, offset + len(head) + stride, table)
        return found

    if tree is False:
        return None
    if tree is True:
        # Every string of this length: one look-up of the head says so.
        return Table(Node(0, len(head), {head: True}))
    return Table(node(tree, 0))


# --- what phonenumbers accepts ------------------------------------------------------------------------


def _metadata(code: int, region: str) -> PhoneMetadata:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        found = PhoneMetadata.metadata_for_nongeo_region(code, None)
    else:
        found = PhoneMetadata.metadata_for_region(region, None)
    if found is None:
        raise UntabulatableError(f"no metadata for {region} (+{code})")
    return found


def number_types(metadata: PhoneMetadata) -> Iterator[tuple[str, PhoneNumberDesc]]:
    """(pattern, description) of each number type phonenumbers tries, in :data:`TYPE_FIELDS` order.

    As ``_number_type_helper`` does: a mobile description identical to the
    fixed line's is skipped, and so is a type with no pattern.
    """
    for field in TYPE_FIELDS:
        if field == "mobile" and metadata.same_mobile_and_fixed_line_pattern:
            continue
        desc = getattr(metadata, field)
        if desc is not None and desc.national_number_pattern:
            yield desc.national_number_pattern, desc


def _general(metadata: PhoneMetadata) -> PhoneNumberDesc:
    general = metadata.general_desc
    if general is None or not general.national_number_pattern or not general.possible_length:
        raise UntabulatableError(f"no general description for {metadata.id}")
    return general


def _region_valid(automata: Automata, metadata: PhoneMetadata, length: int, shift: str) -> Formula:
    """``_number_type_helper(nsn, metadata) != UNKNOWN`` for an nsn of ``length`` digits after ``shift``."""
    general = _general(metadata)
    if length not in general.possible_length:
        return False
    types: list[Formula] = []
    for _, desc in number_types(metadata):
        if desc.possible_length and length not in desc.possible_length:
            continue
        types.append(automata.full(f"{shift}(?:{desc.national_number_pattern})"))
    if not types:
        return False
    return all_of(automata.full(f"{shift}(?:{general.national_number_pattern})"), any_of(*types))


def _code_valid(automata: Automata, code: int, length: int, shift: str) -> Formula:
    """``is_valid_number`` for code ``code`` and an nsn of ``length`` digits after ``shift``.

    The region is chosen as ``_region_code_for_number_from_list`` chooses it:
    the first whose leading digits match, or (without leading digits) the
    first for which the number is valid.
    """
    if not _MIN_NSN_LENGTH <= length <= _MAX_NSN_LENGTH:
        return False
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
    formula: Formula = False
    for region in reversed(regions):
        metadata = _metadata(code, region)
        valid = _region_valid(automata, metadata, length, shift)
        if len(regions) > 1 and metadata.leading_digits is not None:
            leading = automata.starts(f"{shift}(?:{metadata.leading_digits})")
            formula = any_of(all_of(leading, valid), all_of(Not(leading), formula))
        else:
            formula = any_of(valid, formula)
    return formula


def _build_e164(code: int, length: int) -> Table | None:
    main = _metadata(code, phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code][0])
    automata = Automata()
    formula = _code_valid(automata, code, length, "")
    if main.national_prefix_for_parsing:
        # phonenumbers strips a national prefix even after "+<code>": such
        # numbers are for the replay.
        formula = all_of(formula, Not(automata.starts(main.national_prefix_for_parsing)))
    return _to_table(decide(automata, formula, length), f"+{code}", length)


@functools.cache
def national_prefixes(region: str) -> frozenset[str] | None:
    """Return the national prefixes a region's numbers may be dialled with, or ``None``.

    An empty set when the region has none; ``None`` when its prefix rule is
    not a list of literal strings none of which starts another (phonenumbers'
    first match would then choose among them), or has a transform rule:
    national spellings of that region are then for the replay.
    """
    metadata = PhoneMetadata.metadata_for_region(region, None)
    if metadata is None:
        return None
    if not metadata.national_prefix_for_parsing:
        return frozenset()
    if metadata.national_prefix_transform_rule:
        return None
    try:
        # China's rule, the largest, spells out about 2,100 carrier prefixes.
        literals = literal_language(metadata.national_prefix_for_parsing, limit=4096)
    except UntabulatableError:
        return None
    if not literals or "" in literals:
        return None
    ordered = sorted(literals)
    # A string that starts another sorts right before one that does.
    if any(after.startswith(before) for before, after in itertools.pairwise(ordered)):
        return None
    return frozenset(literals)


def _build_national(region: str, length: int, prefix: str) -> Table | None:
    """A table of ``length``-digit national spellings in ``region`` that start with ``prefix``.

    ``prefix`` is one of :func:`national_prefixes`, or ``""`` for spellings
    without one. Accepted: the digits start with neither the region's country
    code nor its international prefix (phonenumbers would read those as
    international), the national prefix is ``prefix`` and phonenumbers strips
    it (the rest is kept by its length test, and matches the general pattern
    whenever the whole does), and the number left is valid. The table looks
    up the E.164 form: ``prefix`` replaced by ``"+<code>"``.
    """
    metadata = _metadata(0, region)
    prefixes = national_prefixes(region)
    if prefixes is None:
        raise UntabulatableError(f"national prefix of {region}")
    code = metadata.country_code
    npfp = metadata.national_prefix_for_parsing
    if code is None:
        raise UntabulatableError(f"no country code for {region}")
    general = _general(metadata)
    automata = Automata()
    rest = length - len(prefix)
    parts: list[Formula] = [Not(automata.starts(str(code)))]
    if metadata.international_prefix:
        parts.append(Not(automata.starts(metadata.international_prefix)))
    if prefix:
        kept = length_verdict(rest, general.possible_length, general.possible_length_local_only) in (
            ValidationResult.IS_POSSIBLE,
            ValidationResult.TOO_LONG,
        )
        shift = "".join(f"[{c}]" for c in prefix)
        parts += [
            kept,
            _code_valid(automata, code, rest, shift),
            any_of(
                automata.full(f"{shift}(?:{general.national_number_pattern})"),
                Not(automata.full(f"(?:{general.national_number_pattern})")),
            ),
        ]
    else:
        if npfp:
            parts.append(Not(automata.starts(npfp)))
        parts.append(_code_valid(automata, code, length, ""))
    tree = decide(automata, all_of(*parts), length)
    # Every accepted spelling starts with the prefix: the table looks up what
    # replaces it, "+<code>" and the national significant number.
    for digit in prefix:
        if isinstance(tree, tuple):
            tree = tree[int(digit)]
    return _to_table(tree, f"+{code}", rest)


# Built tables, oldest first, with their sizes; None for "nothing accepted".
_TABLES: dict[tuple[object, ...], Table | None] = {}
_SIZES: dict[tuple[object, ...], int] = {}
_BUILDING = threading.Lock()
_DROPPED = [0]


def dropped_tables() -> int:
    """Return how many tables the budget has dropped so far: a cache of tables must forget them."""
    return _DROPPED[0]


def _store(key: tuple[object, ...], build: Callable[[], Table | None]) -> Table | None:
    """Build a table once, dropping the oldest ones beyond the entry budget."""
    with _BUILDING:
        if key in _TABLES:
            return _TABLES[key]
        try:
            table = build()
        except UntabulatableError:
            table = None
        size = table.entries if table is not None else 0
        while _SIZES and sum(_SIZES.values()) + size > _MAX_ENTRIES:
            oldest = next(iter(_SIZES))
            del _SIZES[oldest]
            _TABLES.pop(oldest, None)
            _DROPPED[0] += 1
        _TABLES[key] = table
        _SIZES[key] = size
        return table


def e164_table(code: int, length: int) -> Table | None:
    """Return the table of ``"+<code>"`` and ``length`` digits valid as they stand, or ``None``.

    ``None`` when no such number is (length or metadata), or when the code's
    metadata is outside the syntax compiled here.
    """
    key = ("+", code, length)
    table = _TABLES.get(key, _MISSING)
    if table is _MISSING:
        return _store(key, functools.partial(_build_e164, code, length))
    return table  # type: ignore[return-value]


def national_table(region: str, length: int, prefix: str) -> Table | None:
    """Return the table of ``length``-digit national spellings in ``region`` that start with ``prefix``.

    ``prefix`` is one of :func:`national_prefixes` or ``""``. The table is
    asked about the E.164 form, ``"+<code>"`` in place of ``prefix``; it
    accepts that form only when phonenumbers reads the spelling so. ``None``
    as for :func:`e164_table`.
    """
    key = (region, length, prefix)
    table = _TABLES.get(key, _MISSING)
    if table is _MISSING:
        return _store(key, functools.partial(_build_national, region, length, prefix))
    return table  # type: ignore[return-value]
