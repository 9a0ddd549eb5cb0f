"""Phone numbers to E.164, fast, with exactly the verdicts of phonenumbers.

One module on purpose, though a long one: it is one replay of phonenumbers'
parsing and validity rules, step for step, and its parts (country codes,
national prefixes, the regions of a shared code, the length checks) only make
sense beside each other; the prefix tables and the automata they are built
from live in ``_phone_tables`` and ``_phone_automata``.

Every recipient goes through :class:`PhoneNormaliser` on the hot path. The
*reference* is :func:`reference_normalise`: ``phonenumbers.parse`` followed by
``is_valid_number`` and ``format_number(E164)``, with letters and extensions
refused. It costs tens of microseconds a number, which is more than a whole
gateway request spends per recipient, so the normaliser has a fast path whose
answer is, by construction and by property tests, the reference's answer.

What counts as a letter
    Any character for which :meth:`str.isalpha` is true, that is Unicode
    categories Lu, Ll, Lt, Lm and Lo: ASCII letters (vanity numbers such as
    ``1-800-FLOWERS``, extension labels such as ``ext`` or ``x``), accented and
    non-Latin letters, full-width letters. An input holding one is invalid.
    Digits of other scripts (Arabic-Indic, full-width) are not letters; those
    inputs are left to phonenumbers, which reads them as digits.

The fast path
    After surrounding whitespace is stripped, it takes two shapes: ``+``
    followed by ASCII digits, or ASCII digits alone (a national spelling read
    under the default region: with its national prefix such as ``0``, its
    international prefix such as ``00``, or its country code without ``+``).
    In both, the digits may be separated by spaces, dashes, dots, slashes and
    parentheses, which phonenumbers drops without a trace; any other character
    sends the input to the reference.

    For those shapes it replays what phonenumbers does, step for step, with
    the same metadata: extracting the country code
    (``_maybe_extract_country_code``), stripping a national prefix or applying
    its transform rule (``_maybe_strip_national_prefix_carrier_code``) and
    keeping the result only when its length is possible, finding the region
    of a shared country code (``_region_code_for_number_from_list``, where a
    region with ``leading_digits`` wins on that match alone), and testing the
    national significant number against the general description and each
    number type, possible lengths before patterns (``_number_type_helper``).
    The national significant number is the digit string itself, leading
    zeros included, as phonenumbers' Italian-leading-zero fields make it. The
    patterns for one region and one length are compiled, lazily, into a single
    regular expression.

    Before that replay, prefix tables (:mod:`sms_async._phone_tables`)
    settle the usual inputs with a slice and a dict look-up or two: per
    country code and length, a table of the E.164 numbers that are valid as
    they stand (no national prefix to strip); per default region, length and
    national prefix, a table of the national spellings phonenumbers reads as
    a valid number of that region (starting with neither the international
    prefix nor the country code). Tables are compiled from the same metadata
    patterns, accept only what the reference accepts, and leave everything
    else to the replay. A region whose national prefix rule has a transform,
    or is not a list of literal prefixes, has no national tables.

The bulk path
    :meth:`PhoneNormaliser.normalise_many` checks a whole list's shape at
    once (joined, its separators deleted, its digits tested in one C-level
    pass each), then asks the table of each length about every number in one
    ``frozenset.issuperset`` over the first look-up's slices, deeper look-ups
    only where the first does not decide. For a list of valid E.164 numbers
    of one country, or of national spellings with one national prefix, no
    Python code runs per number unless its first look-up leaves it open; any
    other list is decided one by one, tables first.

The slow path (the reference itself) takes
    * any character other than ASCII digits, the separators above, a leading
      ``+`` and surrounding whitespace (letters, ``#``, ``*``, ``;``, ``tel:``,
      non-ASCII digits or spaces, a ``+`` that is not first, ``++``);
    * fewer than three digits (phonenumbers' viability rule differs there);
    * ``+`` followed by digits that begin with no known country code (phonenumbers
      then retries the number as a national one under the default region);
    * metadata this module does not know how to replay (none in the installed
      phonenumbers; the check guards against future data).

    Its results are kept in a small least-recently-used cache, so a list with
    the same malformed entry repeated does not pay for it each time. Inputs
    longer than 250 characters, which phonenumbers refuses at once, are
    invalid without either. Nothing else is cached: memory does not grow with
    the number of recipients.
"""

from __future__ import annotations

import functools
import itertools
import re
from typing import TYPE_CHECKING, Final, cast

import phonenumbers
from phonenumbers import NumberParseException, PhoneMetadata, ValidationResult

from sms_async._exceptions import ConfigurationError, InvalidNumberError
from sms_async._phone_tables import (
    Node,
    Table,
    dropped_tables,
    e164_table,
    length_verdict,
    national_prefixes,
    national_table,
    number_types,
)

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["PhoneNormaliser", "e164_key", "key_to_e164", "reference_normalise"]

# phonenumbers' own limits (``_MAX_INPUT_STRING_LENGTH``, ``_MIN_LENGTH_FOR_NSN``,
# ``_MAX_LENGTH_FOR_NSN``); the tests check that they still agree.
_MAX_INPUT_LENGTH: Final = 250
_MIN_NSN_LENGTH: Final = 2
_MAX_NSN_LENGTH: Final = 17

# Length tables are indexed by a national number's length. Those are at most
# the input's 250 digits, plus the few a national prefix transform rule adds.
_LENGTH_TABLE_SIZE: Final = 512

# Separators that phonenumbers removes without any other effect: they are all
# in its ``_VALID_PUNCTUATION`` and none starts an extension or a second number.
_SEPARATORS: Final = b" -./()"
_DIGITS: Final = b"0123456789"
# A bytes.translate table: digits and newlines stay, every other byte becomes 0xff.
_DIGITS_AND_NEWLINES: Final = bytes(c if c in _DIGITS or c == 0x0A else 0xFF for c in range(256))
# ASCII digits to their values, for bytes.translate.
_DIGIT_VALUES: Final = bytes.maketrans(_DIGITS, bytes(range(10)))
# _national_one_length's answer for digits of several lengths.
_MIXED: Final = object()

_LETTERS_REASON: Final = "it contains letters (vanity numbers and extensions are not accepted)"
_NO_REGION_REASON: Final = (
    "national number without a default region — pass default_region= or use +<country code>"
)


def reference_normalise(raw: str, default_region: str | None) -> str | None:
    """Normalise one number the slow, authoritative way.

    Args:
        raw: The recipient as given.
        default_region: The region national spellings are read in (upper-case
            ISO 3166 code), or ``None`` to accept ``+<country code>`` only.

    Returns:
        The number in E.164 (``"+919812345678"``), or ``None`` when it is not a
        valid number. Letters are refused outright: phonenumbers would turn
        vanity letters into digits, which is never what a bulk sender means. So
        is an extension: an SMS cannot reach one.
    """
    if any(c.isalpha() for c in raw):
        return None
    try:
        number = phonenumbers.parse(raw, default_region)
    except NumberParseException:
        return None
    if number.extension or not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# Inputs the fast path hands over are usually malformed entries; the same one
# often repeats in a list, so a small bounded cache pays for itself.
_cached_reference = functools.lru_cache(maxsize=1024)(reference_normalise)


def _slow_path(raw: str, default_region: str | None) -> str | None:
    """Return ``reference_normalise(raw, default_region)``, cached for inputs of a sane size."""
    if len(raw) > _MAX_INPUT_LENGTH:
        # parse() refuses these outright, and they are kept out of the cache.
        return None
    return _cached_reference(raw, default_region)


def e164_key(e164: str) -> int:
    """Return a compact de-duplication key for an E.164 number: ``int(e164[1:])``.

    The key is unique because an E.164 number made by this module is ``+``
    followed by ASCII digits whose first digit is not ``0`` (no country calling
    code starts with one): the digits are then the canonical decimal spelling
    of the key, and :func:`key_to_e164` gives the number back. A valid number
    has at most 19 digits, since phonenumbers allows national numbers of up to
    17 digits and its metadata has such lengths only under two-digit codes
    that start with 6 or 8 (+62, +81): every key is below ``2**63`` and fits a
    signed 64-bit integer. The tests check that bound, code by code, against
    the installed metadata.

    Args:
        e164: A number as returned by :meth:`PhoneNormaliser.normalise`.

    Returns:
        The digits of the number as an integer.

    Raises:
        ValueError: ``e164`` is not ``+`` followed by digits that do not start with 0.
    """
    digits = e164[1:]
    if e164[:1] != "+" or not (digits.isdigit() and digits.isascii()) or digits[0] == "0":
        raise ValueError(f"not an E.164 number: {_shown(e164)}")
    return int(digits)


def key_to_e164(key: int) -> str:
    """Return the E.164 number whose :func:`e164_key` is ``key``.

    Args:
        key: A key made by :func:`e164_key`.

    Returns:
        ``"+"`` followed by the key's decimal digits.

    Raises:
        ValueError: ``key`` is not a positive integer.
    """
    if key <= 0:
        raise ValueError(f"not a phone number key: {key!r}")
    return f"+{key}"


class _UnsupportedMetadataError(Exception):
    """Metadata this module cannot replay exactly; its numbers take the slow path."""


def _compile(pattern: str) -> re.Pattern[str]:
    # Metadata patterns only ever see ASCII digits here, where ``\d`` in ASCII
    # mode means the same as in Unicode mode and is quicker to test.
    return re.compile(pattern, re.ASCII)


class _Plan:
    """What phonenumbers checks against one region's metadata, compiled once.

    Attributes:
        general: The general description's pattern.
        npfp: The national prefix for parsing, or ``None`` when there is none.
        transform: The national prefix transform rule, or ``None``.
        npfp_groups: How many groups ``npfp`` captures.
        idd: The international prefix, or ``None`` when there is none.
        leading: The ``leading_digits`` pattern, or ``None``.
        keeps_stripped: By length: a national number stripped to this length is
            kept (phonenumbers' length test says possible or too long).
        too_long: By length: phonenumbers' length test says too long.
        checks: By length: a callable that returns ``None`` for a national
            significant number of that length that is not valid here.
    """

    __slots__ = (
        "_general_pattern",
        "_types",
        "checks",
        "general",
        "idd",
        "keeps_stripped",
        "leading",
        "npfp",
        "npfp_groups",
        "too_long",
        "transform",
    )

    def __init__(self, metadata: PhoneMetadata) -> None:
        general = metadata.general_desc
        if general is None or not general.national_number_pattern or not general.possible_length:
            raise _UnsupportedMetadataError
        self._general_pattern = general.national_number_pattern
        self.general = _compile(general.national_number_pattern)
        verdicts = [
            length_verdict(length, general.possible_length, general.possible_length_local_only)
            for length in range(_LENGTH_TABLE_SIZE)
        ]
        keep = (int(ValidationResult.IS_POSSIBLE), int(ValidationResult.TOO_LONG))
        self.keeps_stripped = tuple(v in keep for v in verdicts)
        self.too_long = tuple(v == int(ValidationResult.TOO_LONG) for v in verdicts)

        self.npfp: re.Pattern[str] | None = None
        self.npfp_groups = 0
        self.transform: str | None = None
        if metadata.national_prefix_for_parsing:
            self.npfp = _compile(metadata.national_prefix_for_parsing)
            self.npfp_groups = self.npfp.groups
            self.transform = metadata.national_prefix_transform_rule or None
            if self.transform is not None and self.npfp_groups == 0:
                # phonenumbers indexes the last group here and would fail.
                raise _UnsupportedMetadataError
        self.idd = _compile(metadata.international_prefix) if metadata.international_prefix else None
        self.leading = _compile(metadata.leading_digits) if metadata.leading_digits is not None else None

        # (pattern, possible lengths or None for "any") for every number type
        # _number_type_helper accepts.
        self._types: tuple[tuple[str, frozenset[int] | None], ...] = tuple(
            (pattern, frozenset(desc.possible_length) if desc.possible_length else None)
            for pattern, desc in number_types(metadata)
        )
        # By length, the test a national significant number must pass: a
        # callable that returns None for "invalid". A length the general
        # description rules out has none; each is compiled on first use.
        self.checks: dict[int, Callable[[str], object]] = {
            length: functools.partial(self._first_check, length) for length in general.possible_length
        }

    def strip_national_prefix(self, number: str) -> str:
        """Replay ``_maybe_strip_national_prefix_carrier_code``; return the number it leaves.

        The carrier code it may capture is not part of the E.164 form, so it is dropped.
        """
        if self.npfp is None or not number:
            return number
        match = self.npfp.match(number)
        return number if match is None else self.strip_match(number, match)

    def strip_match(self, number: str, match: re.Match[str]) -> str:
        """Finish :meth:`strip_national_prefix` once ``npfp`` has matched ``number``."""
        if self.transform is None or match.group(self.npfp_groups) is None:
            result = number[match.end() :]
        else:
            # What re.sub(count=1) does: the first match is this one, at 0.
            result = match.expand(self.transform) + number[match.end() :]
        # phonenumbers keeps the original when it matched the general pattern
        # and the result does not; testing the result first saves a match.
        general = self.general.fullmatch
        if general(result) is None and general(number) is not None:
            return number
        return result

    def without_own_code(self, digits: str, code: str) -> str | None:
        """Replay ``_maybe_extract_country_code`` for national digits that start with the region's code.

        phonenumbers takes the code off (and a national prefix after it) when
        the rest matches the general pattern and the whole does not, or when
        the whole is too long.

        Returns:
            The national number without the code, or ``None`` to keep ``digits``.
        """
        candidate = self.strip_national_prefix(digits[len(code) :])
        general = self.general.fullmatch
        if (general(digits) is None and general(candidate) is not None) or self.too_long[len(digits)]:
            return candidate
        return None

    def is_valid(self, nsn: str) -> bool:
        """Replay ``_number_type_helper(nsn, metadata) != UNKNOWN``."""
        check = self.checks.get(len(nsn))
        return check is not None and check(nsn) is not None

    def _first_check(self, length: int, nsn: str) -> object:
        """Compile the check of one length on first use, then run it."""
        check = self._compile_check(length)
        self.checks[length] = check
        return check(nsn)

    def _compile_check(self, length: int) -> Callable[[str], object]:
        """Compile what a national number of ``length`` digits must match."""
        source = self._check_source(length)
        return _never if source is None else _compile(source).fullmatch

    def _check_source(self, length: int) -> str | None:
        """Return the pattern a valid national number of ``length`` digits matches, if any.

        That is the general pattern (checked as a look-ahead) and any of the
        patterns of the number types whose possible lengths allow ``length``.
        The caller checks ``length`` against the general possible lengths.
        """
        alternatives = [p for p, lengths in self._types if lengths is None or length in lengths]
        if not alternatives:
            return None
        body = "|".join(f"(?:{p})" for p in alternatives)
        return rf"(?=(?:{self._general_pattern})\Z)(?:{body})"


def _never(_nsn: str) -> None:
    """The check of a length no number type allows."""


class _Country:
    """What ``is_valid_number`` checks for one country calling code.

    Attributes:
        code: The country calling code as digits, such as ``"91"``.
        main: The plan of the code's main region, whose metadata ``parse`` uses.
        single: ``main`` when the code has one region, else ``None``.
        checks: ``single.checks``, or ``None``.
        calling_code: The country calling code as a number, such as ``91``.
        plans: The plans of the code's regions, in phonenumbers' order.
    """

    __slots__ = ("calling_code", "checks", "code", "main", "plans", "single")

    def __init__(self, code: int, plans: tuple[_Plan, ...]) -> None:
        self.calling_code = code
        self.code = str(code)
        self.main = plans[0]
        self.plans = plans
        self.single = plans[0] if len(plans) == 1 else None
        # The single region's checks by length, for the hot path to use directly.
        self.checks = self.single.checks if self.single is not None else None

    def is_valid(self, nsn: str) -> bool:
        """Replay ``is_valid_number`` for a national significant number of this code."""
        if self.single is not None:
            return self.single.is_valid(nsn)
        # _region_code_for_number_from_list: a region with leading digits is
        # chosen on that match alone, one without on full validation.
        for plan in self.plans:
            if plan.leading is not None:
                if plan.leading.match(nsn) is not None:
                    return plan.is_valid(nsn)
            elif plan.is_valid(nsn):
                return True
        return False


# Compiled lazily and shared by every normaliser; bounded by the metadata
# (a few hundred regions and codes), not by the numbers seen.
_PLANS: dict[str | int, _Plan | None] = {}
_COUNTRIES: dict[int, _Country | None] = {}


def _plan(key: str | int) -> _Plan | None:
    """Return the plan of a region code or a non-geographic calling code, or ``None``."""
    try:
        return _PLANS[key]
    except KeyError:
        pass
    if isinstance(key, int):
        metadata = PhoneMetadata.metadata_for_nongeo_region(key, None)
    else:
        metadata = PhoneMetadata.metadata_for_region(key, None)
    plan = None
    if metadata is not None:
        try:
            plan = _Plan(metadata)
        except _UnsupportedMetadataError:
            plan = None
    _PLANS[key] = plan
    return plan


def _load_country(code: int) -> _Country | None:
    """Build (once) the country of a calling code; ``None`` sends its numbers to the slow path."""
    plans: list[_Plan] = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
        plan = _plan(code if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY else region)
        if plan is None:
            # Missing or unexpected metadata: not what this module replays.
            _COUNTRIES[code] = None
            return None
        plans.append(plan)
    country = _Country(code, tuple(plans))
    _COUNTRIES[code] = country
    return country


def _country(code: int) -> _Country | None:
    """Return the country of a calling code, building it on first use."""
    try:
        return _COUNTRIES[code]
    except KeyError:
        return _load_country(code)


def _code_by_prefix() -> dict[str, int]:
    """Map every three-digit prefix to the calling code ``_extract_country_code`` finds in it.

    It tries the first one, two and three digits in turn; a prefix with none
    of them is left out.
    """
    codes = phonenumbers.COUNTRY_CODE_TO_REGION_CODE
    table: dict[str, int] = {}
    for value in range(100, 1000):
        prefix = str(value)
        for size in (1, 2, 3):
            if int(prefix[:size]) in codes:
                table[prefix] = int(prefix[:size])
                break
    return table


_CODE_BY_PREFIX: Final = _code_by_prefix()

# The same, resolved to countries as they are first met: one dict look-up on
# the hot path. Bounded by the 900 three-digit prefixes.
_COUNTRY_BY_PREFIX: dict[str, _Country] = {}


def _country_for_prefix(prefix: str) -> _Country | None:
    """Return the country whose calling code starts ``prefix``; ``None`` for none or unsupported."""
    code = _CODE_BY_PREFIX.get(prefix)
    country = _country(code) if code is not None else None
    if country is not None:
        _COUNTRY_BY_PREFIX[prefix] = country
    return country


def _shown(raw: str) -> str:
    """Return ``repr(raw)``, cut to about 40 characters for messages."""
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def _e164_table(country: _Country, length: int) -> Table | None:
    """Return the table of the country's E.164 numbers of ``length`` characters ("+" included)."""
    nsn_length = length - 1 - len(country.code)
    if not _MIN_NSN_LENGTH <= nsn_length <= _MAX_NSN_LENGTH:
        return None
    return e164_table(country.calling_code, nsn_length)


def _plus_and_digits(raws: list[str]) -> tuple[int, bytes] | None:
    """Say whether the inputs hold one "+" each, and otherwise only ASCII digits.

    With the tables' keys, which start with "+" and a country code, that
    means each input is "+" and digits: all a table needs to decide it.

    Returns:
        ``None`` when they do not; else the length they all have, or 0 when
        their lengths differ, and the inputs joined, as bytes.
    """
    joined = "".join(raws)
    if not joined.isascii():
        return None
    blob = joined.encode("ascii")
    plus = b"+" * len(raws)
    if blob.translate(None, _DIGITS) != plus:
        return None
    # One "+" a number; if every L-th byte is one, each number is L long.
    length = len(raws[0])
    return (length if blob[::length] == plus and len(blob) == length * len(raws) else 0), blob


def _one_length(joined: str, lines: list[str]) -> int:
    """The length every line has, or 0 if they differ; ``joined`` is the lines joined by newlines.

    They are all as long as the first when every (length + 1)-th character
    is a newline and the whole is as long as that makes it: two C-level steps.
    """
    length = len(lines[0])
    ends = joined[length :: length + 1]
    return length if len(joined) == (length + 1) * len(lines) - 1 and ends == "\n" * len(ends) else 0


def _accepted_by_columns(table: Table, numbers: list[str], blob: bytes, stride: int, head: int) -> bool:
    """Say whether ``table`` accepts every number; they all start with its ``"+<code>"``.

    ``blob`` holds the numbers' characters (newlines or anything else
    between them), number ``i`` at ``i * stride``; ``head`` is the length of
    ``"+<code>"``. The digits of each number's first look-up are read from
    ``blob`` as code points of one string, searched in one step for those
    that do not decide alone; only those numbers are looked up one by one.
    """
    columns = table.columns(head)
    if columns is None:
        return table.accepts_all(numbers)
    width, undecided = columns
    if undecided is None:
        return True
    codes = _column_codes(blob, stride, head, width, len(numbers))
    accepts = table.accepts
    return all(accepts(numbers[found.start()]) for found in undecided.finditer(codes))


def _column_codes(blob: bytes, stride: int, start: int, width: int, count: int) -> str:
    """The ``width`` digits at ``start`` of each of ``count`` lines of ``blob``, as a code point each.

    Line ``i`` starts at ``i * stride``; the code points are
    :func:`~sms_async._phone_tables.column_code`'s. A column is a strided
    slice; two columns become the two bytes of UTF-16 code units, and a pair
    of digits becomes its value, in one byte, by integer arithmetic over the
    whole column (each byte stays below 100, so nothing carries).
    """
    columns = [blob[place::stride] for place in range(start, start + width)]
    if width == 1:
        return columns[0].decode("latin-1")
    if width == 2:
        low, high = columns
    else:
        low = _pair_values(columns[0], columns[1], count)
        high = columns[2] if width == 3 else _pair_values(columns[2], columns[3], count)
    units = bytearray(2 * count)
    units[::2] = low
    units[1::2] = high
    return units.decode("utf-16-le")


def _pair_values(tens: bytes, ones: bytes, count: int) -> bytes:
    """Bytes of ``10 * tens[i] + ones[i]`` for two columns of ASCII digits."""
    value = int.from_bytes(tens.translate(_DIGIT_VALUES), "little") * 10
    return (value + int.from_bytes(ones.translate(_DIGIT_VALUES), "little")).to_bytes(count, "little")


def _longest(joined: str, lines: list[str]) -> int:
    """The length of the longest line (``joined`` is the lines joined by newlines)."""
    return _one_length(joined, lines) or max(map(len, lines))


def _all_valid_e164(raws: list[str], country: _Country, length: int, blob: bytes) -> bool:
    """Say whether every input ("+" and digits) is accepted by the country's tables.

    ``length`` is the length every input has, or 0 when their lengths
    differ; ``blob`` is the inputs joined, as bytes.
    """
    if length:
        table = _e164_table(country, length)
        if table is None:
            return False
        # Each input must start with "+<code>" (the "+" is checked).
        count = len(raws)
        for place, digit in enumerate(country.code.encode("ascii"), 1):
            if blob[place::length] != bytes((digit,)) * count:
                return False
        return _accepted_by_columns(table, raws, blob, length, 1 + len(country.code))
    lengths = set(map(len, raws))
    return _all_accepted(raws, {length: _e164_table(country, length) for length in lengths})


# For lists of several countries: by an E.164 number's first four characters
# and its length, the first look-up of its table as (dict.get, start, stop),
# or _NO_ROOT. Bounded by _MAX_ROOTS, and emptied whenever the tables' budget
# drops a table, so as not to keep it alive.
_Root = tuple["Callable[[str], Node | bool | None]", int, int]
_NOTHING: Final[dict[str, Node | bool]] = {}
_NO_ROOT: Final[_Root] = (_NOTHING.get, 0, 0)
_ROOTS: dict[tuple[str, int], _Root] = {}
_MAX_ROOTS: Final = 4096
_ROOTS_SEEN = [0]


def _roots() -> dict[tuple[str, int], _Root]:
    """Return the remembered first look-ups, forgetting them all if a table was dropped or they are many."""
    if len(_ROOTS) >= _MAX_ROOTS or _ROOTS_SEEN[0] != dropped_tables():
        _ROOTS.clear()
        _ROOTS_SEEN[0] = dropped_tables()
    return _ROOTS


def _root(number: str) -> _Root:
    """Find (and remember) the first look-up for an E.164 number's country and length."""
    country = _COUNTRY_BY_PREFIX.get(number[1:4]) or _country_for_prefix(number[1:4])
    table = _e164_table(country, len(number)) if country is not None else None
    root = (table.root.table.get, table.root.start, table.root.stop) if table is not None else _NO_ROOT
    _roots()[number[:4], len(number)] = root
    return root


def _all_accepted(numbers: list[str], tables: dict[int, Table | None]) -> bool:
    """Say whether each number is accepted by the table of its length (one pass a length)."""
    sizes = list(map(len, numbers))
    for length, table in tables.items():
        if table is None or not table.accepts_all(itertools.compress(numbers, map(length.__eq__, sizes))):
            return False
    return True


class PhoneNormaliser:
    """Turns recipients into E.164 numbers, with phonenumbers' verdicts, quickly.

    One normaliser per default region; it is cheap to make and safe to share
    between tasks and threads.

    Args:
        default_region: The region national spellings (``098123 45678``) are
            read in, as an ISO 3166 code such as ``"IN"`` or ``"gb"``; ``None``
            accepts only ``+<country code>`` spellings.

    Raises:
        ConfigurationError: ``default_region`` is not a region phonenumbers knows.
    """

    __slots__ = (
        "_default_region",
        "_home",
        "_home_country",
        "_plus_code",
        "_prefix_lengths",
        "_prefixes",
        "_region",
    )

    def __init__(self, default_region: str | None = None) -> None:
        region = None
        if default_region is not None:
            # str() so that a wrong type gets the same clear message.
            region = str(default_region).strip().upper()
            if region not in phonenumbers.SUPPORTED_REGIONS:
                examples = ", ".join(repr(code) for code in ("IN", "GB", "US", "DE"))
                raise ConfigurationError(
                    f"unknown default_region {_shown(str(default_region))}: use an ISO 3166 region code "
                    f"that phonenumbers supports, such as {examples} (phonenumbers.SUPPORTED_REGIONS "
                    f"lists all {len(phonenumbers.SUPPORTED_REGIONS)}), or None"
                )
        self._default_region = region
        self._home: _Plan | None = None
        self._home_country: _Country | None = None
        self._region = region or ""
        # The national prefixes the tables know for this region, or None to
        # leave national spellings to the replay.
        self._prefixes: frozenset[str] | None = None
        self._prefix_lengths: tuple[int, ...] = ()
        self._plus_code = ""
        if region is not None:
            # Either stays None when the region's metadata is not replayed
            # here; national spellings then take the slow path.
            self._home = _plan(region)
            metadata = PhoneMetadata.metadata_for_region(region, None)
            code = metadata.country_code if metadata is not None else None
            self._home_country = _country(code) if code is not None else None
            if self._home is not None and self._home_country is not None:
                self._prefixes = national_prefixes(region)
                self._prefix_lengths = tuple(sorted({len(p) for p in self._prefixes or ()}))
                self._plus_code = "+" + self._home_country.code

    @property
    def default_region(self) -> str | None:
        """The default region, upper-case, or ``None``."""
        return self._default_region

    def __repr__(self) -> str:
        return f"PhoneNormaliser(default_region={self._default_region!r})"

    def normalise(self, raw: str) -> str:
        """Return ``raw`` as an E.164 number.

        Args:
            raw: The recipient as given, international (``+91 98123 45678``) or,
                with a default region, national (``098123 45678``).

        Returns:
            The number in E.164, such as ``"+919812345678"``.

        Raises:
            InvalidNumberError: ``raw`` is not a valid phone number; the message
                names it and says why where that is known.
        """
        result = self.normalise_or_none(raw)
        if result is None:
            raise InvalidNumberError(
                f"{_shown(raw)} is not a valid phone number: {_reason(raw, self._default_region)}", raw=raw
            )
        return result

    def normalise_many(self, raws: list[str]) -> list[str | None]:
        """``[self.normalise_or_none(raw) for raw in raws]``, faster for a bulk list.

        When every input is a valid E.164 number of one country, or every
        input is a valid national spelling in the default region with the same
        national prefix (or none), the inputs are checked as one string and
        then decided by a table look-up each; anything else is decided one by one.
        """
        if raws:
            first = raws[0]
            if first[:1] == "+":
                checked = _plus_and_digits(raws)
                if checked is not None:
                    length, blob = checked
                    country = _COUNTRY_BY_PREFIX.get(first[1:4]) or _country_for_prefix(first[1:4])
                    # A list whose last number is of another country is not
                    # worth a try of the one-country path.
                    if (
                        country is not None
                        and _COUNTRY_BY_PREFIX.get(raws[-1][1:4]) is country
                        and _all_valid_e164(raws, country, length, blob)
                    ):
                        return list(raws)
                    return self._e164_each(raws)
            elif self._prefixes is not None:
                national = self._national_many(raws)
                if national is not None:
                    return national
        return list(map(self.normalise_or_none, raws))

    def _e164_each(self, raws: list[str]) -> list[str | None]:
        """Decide inputs of "+" and digits (several countries, or some invalid) with a look-up each.

        An input its table does not accept goes the one-by-one way.
        """
        roots = _roots()
        out: list[str | None] = []
        append = out.append
        for raw in raws:
            try:
                get, start, stop = roots[raw[:4], len(raw)]
            except KeyError:
                get, start, stop = _root(raw)
            found = get(raw[start:stop])
            if found is True:
                append(raw)
                continue
            while isinstance(found, Node):
                found = found.table.get(raw[found.start : found.stop])
            append(raw if found is True else self.normalise_or_none(raw))
        return out

    def _national_many(self, raws: list[str]) -> list[str | None] | None:
        """Return the E.164 forms of national spellings when the tables accept them all, else ``None``."""
        first = raws[0]
        plus_code = self._plus_code
        if not first.isascii():
            return None
        prefix = self._national_prefix(first.encode("ascii").translate(None, _SEPARATORS).decode("ascii"))
        pad = len(plus_code) - len(prefix)
        if pad >= 0 and len(raws[-1]) == len(first):
            # The usual list: one spelling, so that its first and last inputs
            # are as long as each other, and likely every one.
            found = self._national_one_length(raws, prefix, pad)
            if found is not _MIXED:
                return cast("list[str | None] | None", found)
        return self._national_lengths(raws)

    def _national_one_length(self, raws: list[str], prefix: str, pad: int) -> list[str] | object | None:
        """The E.164 forms of national spellings whose digits are all as long, each starting with ``prefix``.

        The inputs are joined with ``pad`` filler digits before each, so
        that, once separators are taken out, each line is as long as its
        E.164 form: the national prefix and the filler are the places of
        ``"+<code>"``, written over them in a copy. No Python code runs per
        input unless a table's first look-up leaves its number open.

        Returns:
            The E.164 forms; ``None`` when some input is not a valid spelling
            that the tables accept (the caller decides them one by one); or
            ``_MIXED`` when the digits are not all as long.
        """
        count = len(raws)
        filler = "0" * pad
        joined = filler + ("\n" + filler).join(raws)
        if not joined.isascii():
            return None
        # Digits and newlines stay; any other character becomes 0xff.
        blob = joined.encode("ascii").translate(_DIGITS_AND_NEWLINES, _SEPARATORS)
        if b"\xff" in blob:
            return None
        # Over-long inputs are invalid, whatever their digits. A line a table
        # accepts has at most 34 digits (a national prefix and a national
        # number, each at most 17), so only separators can make one that long:
        # count them before measuring each input. Inputs as long as the
        # first are measured in one step: the newlines of the join then
        # stand at one stride (a newline of an input's own is refused below).
        if len(joined) - len(blob) > _MAX_INPUT_LENGTH - 2 * _MAX_NSN_LENGTH:
            size = len(raws[0])
            if size > _MAX_INPUT_LENGTH:
                return None
            step = size + 1 + pad
            if (len(joined) != step * count - 1 or joined[step - 1 :: step] != "\n" * (count - 1)) and max(
                map(len, raws)
            ) > _MAX_INPUT_LENGTH:
                return None
        stride = blob.find(b"\n") + 1 if count > 1 else len(blob) + 1
        if len(blob) != stride * count - 1 or blob[stride - 1 :: stride] != b"\n" * (count - 1):
            return _MIXED
        # Every input must start with the first one's national prefix (or,
        # like it, with none); the tables accept nothing else.
        for place, digit in enumerate(prefix.encode("ascii"), pad):
            if blob[place::stride] != bytes((digit,)) * count:
                return None
        table = self._national_table(stride - 1 - pad, prefix)
        if table is None:
            return None
        spelled = bytearray(blob)
        for place, char in enumerate(self._plus_code.encode("ascii")):
            spelled[place::stride] = bytes((char,)) * count
        numbers = spelled.decode("ascii").split("\n")
        # A newline of an input's own makes one line too many.
        if len(numbers) != count:
            return None
        return numbers if _accepted_by_columns(table, numbers, blob, stride, len(self._plus_code)) else None

    def _national_lengths(self, raws: list[str]) -> list[str | None] | None:
        """:meth:`_national_many` for lists whose spellings differ in length."""
        joined = "\n".join(raws)
        if not joined.isascii():
            return None
        blob = joined.encode("ascii").translate(None, _SEPARATORS)
        if blob.count(b"\n") != len(raws) - 1 or not blob.replace(b"\n", b"").isdigit():
            return None
        # Over-long inputs are invalid, whatever their digits. A line a table
        # accepts has at most 34 digits (a national prefix and a national
        # number, each at most 17), so only separators can make one that long:
        # count them before measuring each input.
        if len(joined) - len(blob) > _MAX_INPUT_LENGTH - 2 * _MAX_NSN_LENGTH and (
            _longest(joined, raws) > _MAX_INPUT_LENGTH
        ):
            return None
        prefix = self._national_prefix(blob[:_MAX_NSN_LENGTH].decode())
        # The E.164 forms if every input starts with the first one's national
        # prefix (or, like it, with none); the tables accept nothing else.
        plus_code = self._plus_code
        spelled = ("\n" + blob.decode()).replace("\n" + prefix, "\n" + plus_code)[1:]
        numbers = spelled.split("\n")
        shift = len(prefix) - len(plus_code)
        length = _one_length(spelled, numbers)
        if length:
            table = self._national_table(length + shift, prefix)
            valid = table is not None and table.accepts_all(numbers)
        else:
            lengths = set(map(len, numbers))
            valid = _all_accepted(
                numbers, {size: self._national_table(size + shift, prefix) for size in lengths}
            )
        return cast("list[str | None]", numbers) if valid else None

    def _national_prefix(self, digits: str) -> str:
        """Return the national prefix ``digits`` start with, or ``""``: at most one can (see the tables)."""
        prefixes = self._prefixes or ()
        for length in self._prefix_lengths:
            if digits[:length] in prefixes:
                return digits[:length]
        return ""

    def _national_table(self, length: int, prefix: str) -> Table | None:
        """Return the table of national spellings of ``length`` digits that start with ``prefix``."""
        if not 3 <= length <= _MAX_NSN_LENGTH + len(prefix):
            return None
        return national_table(self._region, length, prefix)

    def normalise_or_none(self, raw: str) -> str | None:  # noqa: PLR0915
        """Return ``raw`` as an E.164 number, or ``None`` when it is not a valid one.

        This is the hot path: it raises nothing for bad input, and its answer is
        always ``reference_normalise(raw, self.default_region)``.

        Args:
            raw: The recipient as given.

        Returns:
            The number in E.164, or ``None``.
        """
        # One long function on purpose: a call costs as much as a step here.
        text = raw.strip()
        if text[:1] == "+":
            body = text[1:]
            digits = body
            if not (body.isdigit() and body.isascii()):
                # bytes.translate deletes characters faster than str.translate
                # or re.sub; anything left that is not a digit means "slow path".
                packed = body.encode("ascii").translate(None, _SEPARATORS) if body.isascii() else b""
                digits = packed.decode("ascii") if packed.isdigit() else ""
            if len(digits) < 3 or len(raw) > _MAX_INPUT_LENGTH:
                return _slow_path(raw, self._default_region)
            country = _COUNTRY_BY_PREFIX.get(digits[:3]) or _country_for_prefix(digits[:3])
            if country is None:
                # No known code (phonenumbers then retries the digits as a
                # national number), or metadata not replayed here.
                return _slow_path(raw, self._default_region)
            number = text if digits is body else "+" + digits
            table = _e164_table(country, len(number))
            if table is not None and table.accepts(number):
                return number
            national = digits[len(country.code) :]
            # Already E.164 when there were no separators and nothing changes.
            unchanged = national if digits is body else None
            plan = country.main
        else:
            digits = text
            if not (text.isdigit() and text.isascii()):
                # Spaces alone are the usual case, and the quickest to take out.
                digits = text.replace(" ", "")
                if not (digits.isdigit() and digits.isascii()):
                    packed = text.encode("ascii").translate(None, _SEPARATORS) if text.isascii() else b""
                    digits = packed.decode("ascii") if packed.isdigit() else ""
            if len(digits) < 3 or len(raw) > _MAX_INPUT_LENGTH:
                return _slow_path(raw, self._default_region)
            if self._prefixes is not None:
                prefix = self._national_prefix(digits)
                table = self._national_table(len(digits), prefix)
                if table is not None:
                    number = self._plus_code + digits[len(prefix) :]
                    if table.accepts(number):
                        return number
            home = self._home
            home_country = self._home_country
            if home is None or home_country is None:
                # No region to read a national spelling in (or, rarely,
                # metadata not replayed here).
                return None if self._default_region is None else _slow_path(raw, self._default_region)
            unchanged = None
            idd = home.idd.match(digits) if home.idd is not None else None
            if idd is not None and (idd.end() == len(digits) or digits[idd.end()] != "0"):
                # Dialled with the region's international prefix, such as 00.
                rest = digits[idd.end() :]
                if len(rest) <= 2 or _CODE_BY_PREFIX.get(rest[:3]) is None:
                    return None
                country = _COUNTRY_BY_PREFIX.get(rest[:3]) or _country_for_prefix(rest[:3])
                if country is None:
                    return _slow_path(raw, self._default_region)
                national = rest[len(country.code) :]
                plan = country.main
            else:
                country = home_country
                national = digits
                plan = home
                if digits.startswith(country.code):
                    candidate = home.without_own_code(digits, country.code)
                    if candidate is not None:
                        national = candidate
                        plan = country.main
        if len(national) < _MIN_NSN_LENGTH:
            return None
        checks = country.checks
        npfp = plan.npfp
        if npfp is not None:
            match = npfp.match(national)
            if match is not None:
                if plan.transform is None or match.group(plan.npfp_groups) is None:
                    stripped = national[match.end() :]
                else:
                    # What re.sub(count=1) does: the first match is this one.
                    stripped = match.expand(plan.transform) + national[match.end() :]
                if plan.keeps_stripped[len(stripped)]:
                    # A valid result matches the general pattern, the one
                    # condition phonenumbers puts on keeping it: when it
                    # passes, that decides everything in one match.
                    if plan is country.single and len(stripped) <= _MAX_NSN_LENGTH:
                        check = plan.checks.get(len(stripped))
                        if check is not None and check(stripped) is not None:
                            return "+" + country.code + stripped
                    general = plan.general.fullmatch
                    if general(stripped) is not None or general(national) is None:
                        national = stripped
        if len(national) > _MAX_NSN_LENGTH:
            return None
        if checks is None:
            if not country.is_valid(national):
                return None
        else:
            check = checks.get(len(national))
            if check is None or check(national) is None:
                return None
        if national is unchanged:
            return text
        return "+" + country.code + national


def _reason(raw: str, region: str | None) -> str:
    """Say why ``raw`` is not a valid number, as far as phonenumbers can tell."""
    text = raw.strip()
    if not text:
        return "it is empty"
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        if any(c.isalpha() for c in raw):
            return _LETTERS_REASON
        return _parse_error_reason(text, region, exc.error_type)
    if number.extension:
        return "it has an extension, which an SMS cannot reach"
    if any(c.isalpha() for c in raw):
        return _LETTERS_REASON
    return _validity_reason(number)


def _validity_reason(number: phonenumbers.PhoneNumber) -> str:
    """Say why a parsed number is not valid, from its length where that tells."""
    where = phonenumbers.region_code_for_number(number)
    if where in (None, phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY):
        where = f"country code +{number.country_code}"
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible == ValidationResult.INVALID_COUNTRY_CODE:
        return f"country calling code +{number.country_code} is not known"
    template = {
        ValidationResult.TOO_SHORT: "it is too short for {}",
        ValidationResult.TOO_LONG: "it is too long for {}",
        ValidationResult.INVALID_LENGTH: "it has the wrong number of digits for {}",
    }.get(possible, "it is not a valid number for its country ({})")
    return template.format(where)


def _parse_error_reason(text: str, region: str | None, error: int) -> str:
    """Turn a ``NumberParseException`` type into words."""
    digit_count = sum(c.isdigit() for c in text)
    if error == NumberParseException.INVALID_COUNTRY_CODE:
        if region is None and not text.startswith(("+", "\uff0b")):
            return _NO_REGION_REASON
        after_plus = text.lstrip("+\uff0b").lstrip(" -.()/")
        if after_plus[:1] == "0":
            return "country calling codes never start with 0"
        return "its country calling code is not known"
    if digit_count == 0:
        return "it has no digits"
    if error == NumberParseException.NOT_A_NUMBER and digit_count < 3:
        error = NumberParseException.TOO_SHORT_NSN
    return {
        NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short",
        NumberParseException.TOO_SHORT_NSN: "it is too short",
        NumberParseException.TOO_LONG: "it is too long",
    }.get(error, "it does not look like a phone number")
