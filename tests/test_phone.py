"""Tests of phone-number normalisation: the fast path must say what phonenumbers says."""

from __future__ import annotations

import functools
import random
import re
import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sms_async import _phone, _phone_automata, _phone_tables
from sms_async._exceptions import ConfigurationError, InvalidNumberError, UsageError
from sms_async._phone import PhoneNormaliser, e164_key, key_to_e164, reference_normalise

REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
NON_GEO_CODES = sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS)
CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
TYPES = sorted(PhoneNumberType.values())
DESC_FIELDS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
SEPARATORS = " -.()/"
FULL_WIDTH = str.maketrans(string.digits, "".join(chr(0xFF10 + d) for d in range(10)))
ARABIC_INDIC = str.maketrans(string.digits, "".join(chr(0x0660 + d) for d in range(10)))
PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

_NORMALISERS: dict[str | None, PhoneNormaliser] = {}


def normaliser(region: str | None) -> PhoneNormaliser:
    """Return one shared normaliser per region, as an application would keep it."""
    if region not in _NORMALISERS:
        _NORMALISERS[region] = PhoneNormaliser(region)
    return _NORMALISERS[region]


def _example_numbers() -> list[tuple[str | None, phonenumbers.PhoneNumber]]:
    """Every example number phonenumbers has: per region and type, and per non-geographic code."""
    found: list[tuple[str | None, phonenumbers.PhoneNumber]] = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                found.append((region, number))
    for code in NON_GEO_CODES:
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
        assert metadata is not None
        for field in DESC_FIELDS:
            desc = getattr(metadata, field)
            if desc is not None and desc.example_number:
                number = phonenumbers.parse(f"+{code}{desc.example_number}")
                found.append((None, number))
    return found


EXAMPLES = _example_numbers()


def spellings(number: phonenumbers.PhoneNumber) -> list[str]:
    """The ways a sender may write ``number``: formatted, bare, prefixed, international."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    nsn = phonenumbers.national_significant_number(number)
    national_digits = "".join(c for c in national if c.isdigit())
    return [
        e164,
        phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        phonenumbers.format_number(number, PhoneNumberFormat.RFC3966),
        national,
        national_digits,
        nsn,
        "0" + nsn,
        "1" + nsn,
        "8" + nsn,
        e164[1:],
        "00" + e164[1:],
        "011" + e164[1:],
        "+" + e164[1:3] + " (0) " + e164[3:],
    ]


#: The reference's verdicts, remembered: it is a pure function of its arguments, and the checks below
#: ask it about the same spelling and region many times (the fast path is asked every time).
reference = functools.lru_cache(maxsize=1 << 17)(reference_normalise)


def assert_same(raw: str, region: str | None) -> None:
    """The fast path gives the reference's verdict, and normalise() agrees with both."""
    expected = reference(raw, region)
    fast = normaliser(region)
    assert fast.normalise_or_none(raw) == expected, (raw, region)
    if expected is None:
        with pytest.raises(InvalidNumberError):
            fast.normalise(raw)
    else:
        assert fast.normalise(raw) == expected


# --- examples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+919812345678", None),
        ("+91 98123 45678", None),
        ("098123 45678", "IN"),
        ("9812345678", "IN"),
        ("  +91-98123-45678\n", "GB"),
        ("(+91) 98123 45678", None),
        ("0091 98123 45678", "IN"),
        ("919812345678", "IN"),
    ],
)
def test_indian_mobile_spellings(raw, region):
    """Every usual spelling of an Indian mobile gives the same E.164 number."""
    assert PhoneNormaliser(region).normalise(raw) == "+919812345678"


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(020) 7946 0018", "GB", "+442079460018"),
        ("0151 12345678", "DE", "+4915112345678"),
        ("(650) 253-0000", "US", "+16502530000"),
        ("+44 (0)20 7946 0018", None, "+442079460018"),
        ("06 12 34 56 78", "FR", "+33612345678"),
    ],
)
def test_national_spellings_of_other_regions(raw, region, expected):
    """National spellings are read in the default region, national prefix and all."""
    assert PhoneNormaliser(region).normalise(raw) == expected
    assert reference_normalise(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("+", "no digits"),
        ("+0123", "never start with 0"),
        ("+1234567890123456", "too long"),
        ("+91 98123", "too short"),
        ("+1-800-FLOWERS", "letters"),
        ("+1 650 253 0000 ext 12", "extension"),
        ("+1 650 253 0000 #12", "extension"),
        ("+1 555 555 5555", "not a valid number for its country (country code +1)"),
        ("+91 55555 55555", "not a valid number for its country (IN)"),
    ],
)
def test_invalid_numbers_say_why(raw, words):
    """An invalid number raises InvalidNumberError naming the input and the reason."""
    with pytest.raises(InvalidNumberError) as caught:
        PhoneNormaliser("IN").normalise(raw)
    message = str(caught.value)
    assert words in message
    assert repr(raw) in message
    assert caught.value.raw == raw
    assert isinstance(caught.value, UsageError)
    assert PhoneNormaliser("IN").normalise_or_none(raw) is None


def test_sixteen_digits_are_invalid_everywhere():
    """Sixteen digits are no number, with or without "+", with or without a region."""
    for raw in ("1234567890123456", "+1234567890123456", "9876543210987654", "+9876543210987654"):
        for region in (None, "IN", "US", "DE"):
            assert PhoneNormaliser(region).normalise_or_none(raw) is None
            assert reference_normalise(raw, region) is None


def test_national_number_without_region_asks_for_one():
    """A national spelling with no default region tells the user how to fix it."""
    with pytest.raises(InvalidNumberError) as caught:
        PhoneNormaliser().normalise("098123 45678")
    message = str(caught.value)
    assert "national number without a default region" in message
    assert "default_region=" in message
    assert "+<country code>" in message


def test_long_input_is_shown_truncated():
    """The message quotes a long input cut to about 40 characters."""
    raw = "+91 " + "9" * 300
    with pytest.raises(InvalidNumberError) as caught:
        PhoneNormaliser().normalise(raw)
    assert repr(raw)[:37] + "..." in str(caught.value)
    assert raw not in str(caught.value)
    assert caught.value.raw == raw


@pytest.mark.parametrize("region", ["XX", "ZZ", "001", "", "India", "UK", 91])
def test_unknown_region_is_a_configuration_error(region):
    """An unknown default region is refused at once, with examples of valid codes."""
    with pytest.raises(ConfigurationError) as caught:
        PhoneNormaliser(region)
    assert "'IN'" in str(caught.value)
    assert "'GB'" in str(caught.value)


def test_region_is_case_insensitive():
    """Lower-case region codes are accepted and reported upper-case."""
    assert PhoneNormaliser("in").default_region == "IN"
    assert PhoneNormaliser(" in ").default_region == "IN"
    assert PhoneNormaliser("gb").normalise("020 7946 0018") == "+442079460018"
    assert PhoneNormaliser().default_region is None


def test_letters_are_refused_even_when_phonenumbers_would_read_them():
    """Vanity letters and any other letter make a number invalid."""
    assert phonenumbers.is_valid_number(phonenumbers.parse("+1-800-FLOWERS"))
    wide = "+91 98123 45678".translate(FULL_WIDTH)
    for raw in ("+1-800-FLOWERS", "+91 98123 4567x", "+91 98123 45678 \u00e9", wide + " \u03a9"):
        assert reference_normalise(raw, None) is None
        assert PhoneNormaliser().normalise_or_none(raw) is None


def test_other_scripts_digits_follow_phonenumbers():
    """Digits of other scripts are not letters: phonenumbers reads them, and so do we."""
    for raw in ("+91 98123 45678".translate(FULL_WIDTH), "+919812345678".translate(ARABIC_INDIC)):
        assert reference_normalise(raw, None) == "+919812345678"
        assert PhoneNormaliser().normalise(raw) == "+919812345678"


def test_limits_match_phonenumbers():
    """The limits the fast path relies on are phonenumbers' own."""
    util = phonenumbers.phonenumberutil
    assert util._MAX_INPUT_STRING_LENGTH == _phone._MAX_INPUT_LENGTH
    assert util._MIN_LENGTH_FOR_NSN == _phone._MIN_NSN_LENGTH
    assert util._MAX_LENGTH_FOR_NSN == _phone._MAX_NSN_LENGTH
    assert all(c in util._VALID_PUNCTUATION for c in _phone._SEPARATORS.decode())


def test_over_long_inputs_are_invalid_and_not_cached():
    """Inputs over phonenumbers' 250 characters are invalid, valid digits or not."""
    raw = "+919812345678" + " " * 250
    assert reference_normalise(raw, None) is None
    assert PhoneNormaliser().normalise_or_none(raw) is None
    before = _phone._cached_reference.cache_info().currsize
    PhoneNormaliser().normalise_or_none("x" * 300)
    assert _phone._cached_reference.cache_info().currsize == before


def test_memory_is_bounded():
    """Neither the slow-path cache nor the compiled tables grow with the number of inputs."""
    fast = PhoneNormaliser("IN")
    for i in range(5000):
        fast.normalise_or_none(f"#{i}")
        fast.normalise_or_none(f"+9198{i:08d}")
    info = _phone._cached_reference.cache_info()
    assert info.maxsize is not None
    assert info.currsize <= info.maxsize
    assert len(_phone._COUNTRY_BY_PREFIX) <= 900
    assert len(_phone._COUNTRIES) <= len(CODES)
    assert sum(_phone_tables._SIZES.values()) <= _phone_tables._MAX_ENTRIES


# --- the fast path against the reference ------------------------------------------------------


def test_usual_spellings_never_take_the_slow_path(monkeypatch):
    """Valid numbers of every region, written as E.164 or as national digits, are decided fast."""

    def refuse(raw, region):
        raise AssertionError((raw, region))

    monkeypatch.setattr(_phone, "_slow_path", refuse)
    for home, number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if reference_normalise(e164, None) is None:
            continue
        assert normaliser(None).normalise_or_none(e164) == e164
        assert normaliser("IN").normalise_or_none(e164[:3] + " " + e164[3:]) == e164
        if home is not None:
            national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
            assert normaliser(home).normalise_or_none(national) == reference_normalise(national, home)


@pytest.mark.slow
@pytest.mark.timeout(300)  # over 50,000 checks against phonenumbers: 20 s alone, 53 s on a busy machine
def test_every_example_number_in_every_spelling():
    """Every example number of every region, in every spelling, under several regions, agrees."""
    cases = []
    for index, (home, number) in enumerate(EXAMPLES):
        others = {None, home, "US", "GB", "IN", "DE", REGIONS[index % len(REGIONS)]}
        cases += [(raw, region) for raw in spellings(number) for region in others]
    # The "+" spellings first, then the others region by region: each table is built once, rather
    # than built again whenever the entry budget dropped it for another region's (a third as many builds).
    cases.sort(key=lambda case: (not case[0].startswith("+"), case[1] or ""))
    checked = 0
    for raw, region in cases:
        assert_same(raw, region)
        checked += 1
    assert checked > 50_000


mutation = st.sampled_from(["change", "drop", "add", "separator", "country", "length", "space", "junk"])
# The strategies drawn from for every case, made once: hypothesis then validates each once (the
# examples' list, above all, rather than at every draw).
_EXAMPLE = st.sampled_from(EXAMPLES)
_RESPELL = st.booleans()
_MAYBE_SEPARATOR = st.sampled_from(["", "", "", *SEPARATORS])
_MUTATIONS = st.lists(mutation, max_size=3)
_DIGIT = st.sampled_from(string.digits)
_SEPARATOR = st.sampled_from(SEPARATORS)
_CODE = st.sampled_from(CODES)
_INTERNATIONAL = st.sampled_from(["+", "", "00", "011"])
_LENGTH = st.integers(0, 18)
_EIGHTEEN_DIGITS = st.text(string.digits, min_size=18, max_size=18)
_PLUS_OR_NOT = st.sampled_from(["+", ""])
_SPACE = st.sampled_from([" ", "  ", "\t", "\u00a0", "\n"])
_JUNK = st.sampled_from(["+", "#", "*", ";", ",", "x", "0", "\uff10", "_"])
_REGION = st.sampled_from(REGIONS)


@st.composite
def mutated_spellings(draw: st.DrawFn) -> tuple[str, str | None]:
    """A spelling of an example number, perhaps mutated, and a default region to read it in."""
    home, number = draw(_EXAMPLE)
    raw = draw(st.sampled_from(spellings(number)))
    if draw(_RESPELL):
        # Re-spell the digits with separators of one's own.
        plus = "+" if raw.startswith("+") else ""
        digits = [c for c in raw if c.isdigit()]
        raw = plus + "".join(c + draw(_MAYBE_SEPARATOR) for c in digits)
    for op in draw(_MUTATIONS):
        chars = list(raw)
        at = draw(st.integers(0, len(chars)))
        digit = draw(_DIGIT)
        if op == "change" and at < len(chars):
            chars[at] = digit
        elif op == "drop" and at < len(chars):
            del chars[at]
        elif op == "add":
            chars.insert(at, digit)
        elif op == "separator":
            chars.insert(at, draw(_SEPARATOR))
        elif op == "country":
            code = draw(_CODE)
            chars = list(draw(_INTERNATIONAL) + str(code) + raw.lstrip("+"))
        elif op == "length":
            size = draw(_LENGTH)
            digits = "".join(c for c in raw if c.isdigit())
            digits = (digits + draw(_EIGHTEEN_DIGITS))[:size]
            chars = list(draw(_PLUS_OR_NOT) + digits)
        elif op == "space":
            chars.insert(at, draw(_SPACE))
        elif op == "junk":
            chars.insert(at, draw(_JUNK))
        raw = "".join(chars)
    region = draw(st.one_of(st.none(), st.just(home), _REGION))
    return raw, region


@pytest.mark.slow
@settings(PROPERTY, max_examples=3000)
@given(mutated_spellings())
def test_mutated_spellings_agree_with_reference(case):
    """Spellings of example numbers, mutated at random, get the reference's verdict."""
    raw, region = case
    assert_same(raw, region)


@settings(PROPERTY, max_examples=1500)
@given(
    prefix=st.sampled_from(["+", "", "0", "00", "011", "+0", "8", "810", "0011", "1", "9"]),
    code=st.one_of(st.just(""), st.sampled_from(CODES).map(str), st.integers(0, 999).map(str)),
    digits=st.text(string.digits, max_size=18),
    region=st.one_of(st.none(), st.sampled_from(REGIONS)),
)
def test_random_digits_agree_with_reference(prefix, code, digits, region):
    """Random digit strings of 0 to 18 digits after random country codes get the reference's verdict."""
    assert_same(prefix + code + digits, region)


@settings(PROPERTY, max_examples=1000)
@given(
    raw=st.text(alphabet=string.digits + SEPARATORS + "+ #*x\t", max_size=24),
    region=st.one_of(st.none(), st.sampled_from(REGIONS)),
)
def test_any_phone_like_text_agrees_with_reference(raw, region):
    """Any short text of digits, separators and stray symbols gets the reference's verdict."""
    assert_same(raw, region)


@settings(PROPERTY, max_examples=300)
@given(raw=st.text(max_size=30), region=st.one_of(st.none(), st.sampled_from(REGIONS)))
def test_arbitrary_text_agrees_with_reference(raw, region):
    """Arbitrary Unicode text gets the reference's verdict (usually through the slow path)."""
    assert_same(raw, region)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        # Region-specific rules the fast path replays.
        ("0343 15 555 1212", "AR"),  # national prefix transform (mobile "15" to "9")
        ("011 15 2345 6789", "AR"),
        ("0 15 11 98765 4321", "BR"),  # carrier code after the national prefix
        ("0 21 11 98765 4321", "BR"),
        ("460 1234", "AG"),  # seven-digit local number, area code added by a transform
        ("1 268 460 1234", "AG"),
        ("1624 456789", "IM"),
        ("07624 456789", "IM"),
        ("+44 7624 456789", None),  # shared code: leading digits pick the Isle of Man
        ("+7 701 123 4567", None),  # Kazakhstan under +7
        ("+39 06 698 12345", None),  # Italian leading zero, Vatican leading digits
        ("+39 312 345 6789", None),
        ("0549 123456", "SM"),
        ("06 698 12345", "VA"),
        ("+1 242 359 1234", "US"),
        ("242 359 1234", "BS"),
        ("+800 1234 5678", None),  # non-geographic codes
        ("+882 1234 5678", None),
        ("8 800 555 3535", "RU"),
        ("8 10 44 20 7946 0018", "RU"),  # Russian international prefix
        ("00 44 20 7946 0018", "IN"),
        ("00 0 44 20 7946 0018", "IN"),  # international prefix followed by 0: not one
        ("44 20 7946 0018", "GB"),  # own country code without "+"
        ("4420 7946 0018", "GB"),
        ("91 98123 45678", "IN"),
        ("1 650 253 0000", "US"),
        ("0 0000 0000", "IT"),
        ("+390000000000", None),
        ("+0044 20 7946 0018", "IN"),  # phonenumbers retries without the "+"
        ("+011 44 20 7946 0018", "US"),
        ("+999 12345678", "GB"),
        ("12", "GB"),
        ("1-2", "GB"),
        ("(12)", "GB"),
        ("123", "DE"),
        ("++91 98123 45678", None),
    ],
)
def test_hard_cases_agree_with_reference(raw, region):
    """Prefix rules, shared codes, transforms and edge shapes get the reference's verdict."""
    assert_same(raw, region)


# --- keys ---------------------------------------------------------------------------------------


@given(st.sampled_from(EXAMPLES))
def test_keys_round_trip(example):
    """e164_key and key_to_e164 are inverse, and keys fit a signed 64-bit integer."""
    _home, number = example
    e164 = PhoneNormaliser().normalise_or_none(phonenumbers.format_number(number, PhoneNumberFormat.E164))
    if e164 is None:
        return
    key = e164_key(e164)
    assert key_to_e164(key) == e164
    assert 0 < key < 2**63


def test_every_valid_key_fits_64_bits():
    """The longest valid number of every country code still gives a key below 2**63."""
    for code in CODES:
        for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]:
            if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
            else:
                metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
            assert metadata is not None
            assert metadata.general_desc is not None
            longest = min(max(metadata.general_desc.possible_length), _phone._MAX_NSN_LENGTH)
            assert int(f"{code}{'9' * longest}") < 2**63


def test_distinct_numbers_have_distinct_keys():
    """Keys of distinct valid numbers are distinct."""
    numbers = {
        e164
        for _home, number in EXAMPLES
        if (e164 := reference_normalise(phonenumbers.format_number(number, PhoneNumberFormat.E164), None))
    }
    assert len({e164_key(n) for n in numbers}) == len(numbers)


@pytest.mark.parametrize(
    "bad", ["", "+", "919812345678", "+0919812345678", "+91 98123", "+9_1", "+91".translate(ARABIC_INDIC)]
)
def test_key_refuses_what_is_not_e164(bad):
    """e164_key refuses anything that is not "+" and digits without a leading zero."""
    with pytest.raises(ValueError, match=r"E\.164"):
        e164_key(bad)


def test_key_to_e164_refuses_non_positive_keys():
    """key_to_e164 refuses zero and negative keys."""
    with pytest.raises(ValueError, match="key"):
        key_to_e164(0)


_MANY_ITEMS = st.one_of(
    st.from_regex(r"\+91[6-9][0-9]{9}", fullmatch=True),
    st.from_regex(r"\+9[0-9]{8,13}", fullmatch=True),
    st.from_regex(r"\+44[0-9]{9,11}", fullmatch=True),
    st.from_regex(r"0?9[0-9]{4} ?[0-9]{5}", fullmatch=True),
    st.sampled_from(
        ["", "+", "+91", "+919812345678\n+919812345679", "+91\u0669812345678", " +919812345678", "x"]
    ),
)


@given(st.lists(_MANY_ITEMS, max_size=40), st.sampled_from([None, "IN", "GB"]))
@settings(max_examples=1500, deadline=None)
def test_normalise_many_equals_one_by_one(raws, region):
    """normalise_many gives exactly the one-by-one answers, whatever the mix of inputs."""
    normaliser = PhoneNormaliser(region)
    assert normaliser.normalise_many(raws) == [normaliser.normalise_or_none(raw) for raw in raws]


def _one_by_one_forbidden(normaliser: PhoneNormaliser, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(raw: str) -> str | None:
        raise AssertionError(f"{raw!r} went down the one-by-one path")

    monkeypatch.setattr(PhoneNormaliser, "normalise_or_none", fail)


def test_normalise_many_takes_the_bulk_path_for_one_country(monkeypatch):
    """A list of valid E.164 numbers of one country is decided in one pass and returned as given."""
    raws = [f"+9198{i:08d}" for i in range(300)]
    normaliser = PhoneNormaliser("IN")
    _one_by_one_forbidden(normaliser, monkeypatch)
    assert normaliser.normalise_many(raws) == raws


_NATIONAL_ITEMS = st.one_of(
    st.from_regex(r"0?[6-9][0-9]{4} ?[0-9]{5}", fullmatch=True),
    st.from_regex(r" ?0?[0-9]{2,4} ?[0-9]{3,4} ?[0-9]{3,5} ?", fullmatch=True),
    st.from_regex(r"(00|0|)[0-9]{8,13}", fullmatch=True),
)


@given(
    st.lists(_NATIONAL_ITEMS, min_size=1, max_size=30), st.sampled_from(["IN", "GB", "DE", "US", "IT", "BR"])
)
@settings(max_examples=1500, deadline=None)
def test_normalise_many_national_equals_one_by_one(raws, region):
    """For national spellings, normalise_many's one-pass answer is exactly the one-by-one answer."""
    normaliser = PhoneNormaliser(region)
    assert normaliser.normalise_many(raws) == [normaliser.normalise_or_none(raw) for raw in raws]


def test_normalise_many_takes_the_bulk_path_for_national_spellings(monkeypatch):
    """National spellings with spaces in the default region come back as E.164 from the one-pass path."""
    raws = [f"098{i:03d} {i:05d}" for i in range(300)]
    normaliser = PhoneNormaliser("IN")
    _one_by_one_forbidden(normaliser, monkeypatch)
    assert normaliser.normalise_many(raws) == [f"+9198{i:03d}{i:05d}" for i in range(300)]


# --- prefix tables ------------------------------------------------------------------------------


def _leaves(table: _phone_tables.Table) -> list[str]:
    """Every key path that a table accepts outright: the prefixes it decides as valid."""
    found: list[str] = []

    def walk(node: _phone_tables.Node, path: str) -> None:
        for key, value in node.table.items():
            if value is True:
                found.append(path + key)
            elif isinstance(value, _phone_tables.Node):
                walk(value, path + key)

    walk(table.root, "")
    return found


def _read_as_it_stands(e164: str, code: int) -> bool:
    """What an E.164 table must say: phonenumbers finds it valid, and strips no national prefix."""
    main = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code][0]
    if main == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        metadata = phonenumbers.PhoneMetadata.metadata_for_nongeo_region(code)
    else:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(main)
    npfp = metadata.national_prefix_for_parsing
    nsn = e164[1 + len(str(code)) :]
    if npfp and re.match(npfp, nsn):
        return False
    return reference_normalise(e164, None) == e164


def _completions(table: _phone_tables.Table | None, head: str, size: int, rng: random.Random) -> list[str]:
    """Strings of ``size`` characters: sampled accepted prefixes completed, their neighbours, and noise."""
    found = [head + "".join(rng.choice(string.digits) for _ in range(size - len(head))) for _ in range(15)]
    if table is not None:
        leaves = _leaves(table)
        for leaf in rng.sample(leaves, min(25, len(leaves))):
            tail = "".join(rng.choice(string.digits) for _ in range(size - len(leaf)))
            found.append(leaf + tail)
            # The same prefix with its last digit changed: the edge of a range.
            found.append(leaf[:-1] + rng.choice(string.digits) + tail)
    return found


@pytest.mark.slow
def test_every_code_and_length_compiles_into_a_table():
    """The installed metadata is all within the syntax the tables compile: nothing is left to the replay."""
    for code in CODES:
        for length in range(_phone._MIN_NSN_LENGTH, _phone._MAX_NSN_LENGTH + 1):
            _phone_tables._build_e164(code, length)  # raises UntabulatableError otherwise


@pytest.mark.slow
def test_e164_tables_accept_exactly_the_numbers_phonenumbers_reads_as_they_stand():
    """Sampled prefixes of every table, their neighbours and random digits: a table accepts exactly those."""
    rng = random.Random(20240601)
    checked = 0
    for code in CODES:
        head = f"+{code}"
        for length in range(_phone._MIN_NSN_LENGTH, _phone._MAX_NSN_LENGTH + 1):
            table = _phone_tables.e164_table(code, length)
            for e164 in _completions(table, head, len(head) + length, rng):
                accepted = table is not None and table.accepts(e164)
                assert accepted == _read_as_it_stands(e164, code), (e164, accepted)
                checked += 1
    assert checked > 60_000


@pytest.mark.slow
def test_short_tables_are_exact_over_every_number():
    """Where a length holds at most 10,000 numbers, every one of them gets the table's right answer."""
    checked = 0
    for code in CODES:
        for length in range(_phone._MIN_NSN_LENGTH, 5):
            table = _phone_tables.e164_table(code, length)
            if table is None:
                continue
            for value in range(10**length):
                e164 = f"+{code}{value:0{length}d}"
                assert table.accepts(e164) == _read_as_it_stands(e164, code), e164
                checked += 1
    assert checked > 50_000


def _national_cases(region: str, rng: random.Random) -> list[tuple[str, str]]:
    """(prefix, digits) national spellings of a region, built from its tables' accepted prefixes and noise."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefixes = _phone_tables.national_prefixes(region)
    assert prefixes is not None
    plus = f"+{metadata.country_code}"
    cases = []
    chosen = ["", *rng.sample(sorted(prefixes), min(2, len(prefixes)))]
    lengths = sorted(set(metadata.general_desc.possible_length) | {4, 18})
    for prefix in chosen:
        for rest in lengths:
            table = _phone_tables.national_table(region, len(prefix) + rest, prefix)
            completions = _completions(table, plus, len(plus) + rest, rng)
            cases += [(prefix, prefix + e164[len(plus) :]) for e164 in completions]
    return cases


@pytest.mark.slow
def test_national_tables_accept_only_what_phonenumbers_reads_so():
    """A national table accepts a spelling only when phonenumbers reads it as that E.164 number."""
    rng = random.Random(7)
    accepted = 0
    for region in REGIONS:
        prefixes = _phone_tables.national_prefixes(region)
        if prefixes is None:
            continue
        plus = f"+{phonenumbers.PhoneMetadata.metadata_for_region(region).country_code}"
        for prefix, digits in _national_cases(region, rng):
            table = _phone_tables.national_table(region, len(digits), prefix)
            e164 = plus + digits[len(prefix) :]
            if table is not None and table.accepts(e164):
                assert reference_normalise(digits, region) == e164, (region, digits)
                accepted += 1
    assert accepted > 5_000


def test_regions_without_national_tables_are_the_ones_with_prefix_rules_they_cannot_hold():
    """Only transform rules and prefix rules that are not a list of distinct literals leave a region out."""
    for region in REGIONS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefixes = _phone_tables.national_prefixes(region)
        npfp = metadata.national_prefix_for_parsing
        if prefixes is None:
            assert metadata.national_prefix_transform_rule or npfp in ("0|80?", "0(1\\d)?") or "?" in npfp
        elif not npfp:
            assert prefixes == frozenset()
        else:
            assert all(re.fullmatch(npfp, p) for p in prefixes)
            assert not any(a != b and b.startswith(a) for a in prefixes for b in prefixes)
    assert _phone_tables.national_prefixes("IN") == frozenset({"0"})
    assert _phone_tables.national_prefixes("GB") == frozenset({"0", "180020"})
    assert len(_phone_tables.national_prefixes("CN") or ()) > 2000


def test_the_usual_numbers_are_decided_by_the_tables():
    """Every example number is accepted by a table as E.164, and as national digits where tables exist."""
    national_checked = replayed = 0
    for home, number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        if not _read_as_it_stands(e164, number.country_code):
            continue
        table = _phone_tables.e164_table(number.country_code, len(e164) - 1 - len(str(number.country_code)))
        assert table is not None
        assert table.accepts(e164), e164
        if home is None or _phone_tables.national_prefixes(home) is None:
            continue
        national = "".join(
            c for c in phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL) if c.isdigit()
        )
        if reference_normalise(national, home) != e164 or national.startswith(str(number.country_code)):
            continue
        fast = normaliser(home)
        prefix = fast._national_prefix(national)
        table = fast._national_table(len(national), prefix)
        national_checked += 1
        replayed += table is None or not table.accepts(e164)
    assert national_checked > 1_000
    assert replayed == 0


def test_numbers_of_untabulatable_metadata_are_replayed(monkeypatch):
    """When a table cannot be built, numbers still get the reference's verdict, one by one and in bulk."""

    def cannot(*args: object) -> None:
        raise _phone_automata.UntabulatableError(str(args))

    monkeypatch.setattr(_phone_tables, "_TABLES", {})
    monkeypatch.setattr(_phone_tables, "_SIZES", {})
    monkeypatch.setattr(_phone_tables, "_build_e164", cannot)
    monkeypatch.setattr(_phone_tables, "_build_national", cannot)
    for region in (None, "IN", "GB", "US"):
        fast = PhoneNormaliser(region)
        raws = [f"+9198{i:08d}" for i in range(50)] + ["+44 20 7946 0018", "098123 45678", "(650) 253-0000"]
        expected = [reference_normalise(raw, region) for raw in raws]
        assert fast.normalise_many(raws) == expected
        assert [fast.normalise_or_none(raw) for raw in raws] == expected
    assert all(table is None for table in _phone_tables._TABLES.values())


def test_tables_stay_within_their_entry_budget(monkeypatch):
    """Beyond the budget the oldest tables are dropped, and rebuilt with the same answers when needed."""
    monkeypatch.setattr(_phone_tables, "_TABLES", {})
    monkeypatch.setattr(_phone_tables, "_SIZES", {})
    monkeypatch.setattr(_phone_tables, "_MAX_ENTRIES", 8_000)
    first = _phone_tables.e164_table(91, 10)
    assert first is not None
    for code in (1, 44, 49, 33, 86, 7, 62, 55, 234, 880):
        _phone_tables.e164_table(code, 10)
        assert sum(_phone_tables._SIZES.values()) <= 8_000
    assert ("+", 91, 10) not in _phone_tables._TABLES
    again = _phone_tables.e164_table(91, 10)
    assert again is not None
    assert again is not first
    assert _leaves(again) == _leaves(first)
    assert PhoneNormaliser().normalise_many(["+919812345678"]) == ["+919812345678"]


_PATTERN_ATOMS = st.one_of(
    st.sampled_from([*string.digits, r"\d", ".", "x"]),
    st.builds(
        lambda negate, items, dash: "[" + ("^" if negate else "") + "".join(items) + dash + "]",
        st.booleans(),
        st.lists(
            st.one_of(
                st.sampled_from([*string.digits, r"\d"]),
                st.tuples(st.integers(0, 9), st.integers(0, 9)).map(lambda t: f"{min(t)}-{max(t)}"),
            ),
            min_size=1,
            max_size=3,
        ),
        st.sampled_from(["", "", "-"]),
    ),
)
_QUANTIFIERS = st.sampled_from(["?", "*", "+", "{2}", "{0,2}", "{1,3}", "{2,}", "??", "*?", "{1,2}?"])


def _pattern_shapes(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
        st.tuples(children, _QUANTIFIERS).map(lambda t: f"(?:{t[0]}){t[1]}"),
        children.map(lambda x: f"({x})"),
        children.map(lambda x: f"(?:{x}$|{x}1)"),
    )


_PATTERNS = st.recursive(_PATTERN_ATOMS, _pattern_shapes, max_leaves=8)


def _run(dfa: _phone_automata._Dfa, digits: str) -> bool:
    state = dfa.start
    for digit in digits:
        state = dfa.step(state, int(digit))
    return dfa.accepts_at_end[state]


@settings(PROPERTY, max_examples=1500)
@given(pattern=_PATTERNS, texts=st.lists(st.text(string.digits, max_size=7), min_size=1, max_size=12))
def test_automata_match_what_re_matches(pattern, texts):
    """A compiled pattern accepts what re.fullmatch accepts, and in prefix mode what re.match accepts."""
    full = _phone_automata._Dfa(pattern, prefix=False)
    prefix = _phone_automata._Dfa(pattern, prefix=True)
    for text in texts:
        assert _run(full, text) == (re.fullmatch(pattern, text) is not None), (pattern, text)
        assert _run(prefix, text) == (re.match(pattern, text) is not None), (pattern, text)


@settings(PROPERTY, max_examples=300)
@given(pattern=_PATTERNS, start=st.text(string.digits, max_size=3), remaining=st.integers(0, 3))
def test_automata_verdicts_cover_every_completion(pattern, start, remaining):
    """An automaton's verdict on all completions of a prefix is what trying each completion says."""
    dfa = _phone_automata._Dfa(pattern, prefix=False)
    state = dfa.start
    for digit in start:
        state = dfa.step(state, int(digit))
    outcomes = {
        re.fullmatch(pattern, start + f"{value:0{remaining}d}"[:remaining]) is not None
        for value in range(10**remaining)
    }
    expected = {frozenset({True}): 1, frozenset({False}): 0}.get(frozenset(outcomes), 2)
    assert dfa.verdict(state, remaining) == expected


@settings(PROPERTY, max_examples=300)
@given(pattern=_PATTERNS)
def test_literal_languages_are_what_the_pattern_matches(pattern):
    """A pattern's literal strings, when few, are exactly the digit strings it fully matches."""
    found = _phone_automata.literal_language(pattern, limit=200)
    if found is None:
        return
    assert all(re.fullmatch(pattern, text) for text in found)
    longest = max((len(text) for text in found), default=0)
    for size in range(min(longest + 2, 4)):
        for value in range(10**size):
            text = f"{value:0{size}d}"[:size]
            assert (text in found) == (re.fullmatch(pattern, text) is not None), (pattern, text)


@pytest.mark.parametrize(
    "pattern",
    ["(?=1)2", r"\D", "1++", "^1", "(?P<x>1)", r"(1)\1", "[]1]", "1{x}", "(?i)1", r"\Z", "1{,2}", "(1", "1)"],
)
def test_syntax_outside_the_subset_is_refused(pattern):
    """Syntax the automata do not model is refused, never guessed at."""
    with pytest.raises(_phone_automata.UntabulatableError):
        _phone_automata._Dfa(pattern, prefix=False)


def test_normalise_many_takes_the_bulk_path_for_several_lengths_and_separators(monkeypatch):
    """E.164 numbers of one country in several lengths, and punctuated national spellings, go in bulk."""
    german = ["+4915112345678", "+493012345678", "+4930123456", "+498912345678"]
    us = [f"({(650, 415, 212)[i % 3]}) 253-{i:04d}" for i in range(200)]
    chinese = [f"010 6{i:03d} {i:04d}" for i in range(100, 300)]
    expected = {
        "DE": [reference_normalise(raw, None) for raw in german],
        "US": [reference_normalise(raw, "US") for raw in us],
        "CN": [reference_normalise(raw, "CN") for raw in chinese],
    }
    assert None not in expected["DE"] + expected["US"] + expected["CN"]
    normalisers = {region: PhoneNormaliser(region) for region in expected}
    _one_by_one_forbidden(normalisers["DE"], monkeypatch)
    assert normalisers["DE"].normalise_many(german) == expected["DE"]
    assert normalisers["US"].normalise_many(us) == expected["US"]
    assert normalisers["CN"].normalise_many(chinese) == expected["CN"]


@st.composite
def _region_lists(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A region and a list of its example numbers in one spelling, some mutated."""
    region = draw(st.sampled_from(["IN", "GB", "DE", "US", "CN", "FR", "RU", "LU", "AU", "HU", "LT", "IT"]))
    numbers = [number for home, number in EXAMPLES if home == region]
    spelling = draw(st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.NATIONAL]))
    raws = [
        phonenumbers.format_number(n, spelling) for n in draw(st.lists(st.sampled_from(numbers), max_size=30))
    ]
    for _ in range(draw(st.integers(0, 3))):
        if raws:
            at = draw(st.integers(0, len(raws) - 1))
            chars = list(raws[at])
            where = draw(st.integers(0, len(chars)))
            chars.insert(where, draw(st.sampled_from([*string.digits, " ", "-", "x", "\n"])))
            raws[at] = "".join(chars)
    return region, raws


@settings(PROPERTY, max_examples=600)
@given(_region_lists())
def test_normalise_many_agrees_with_the_reference_for_many_regions(case):
    """Lists of one region's numbers, E.164 or national, mutated or not, get the reference's verdicts."""
    region, raws = case
    fast = normaliser(region)
    expected = [reference_normalise(raw, region) for raw in raws]
    assert fast.normalise_many(raws) == expected
    assert [fast.normalise_or_none(raw) for raw in raws] == expected


def test_normalise_many_decides_several_countries_by_table(monkeypatch):
    """A list of several countries' valid E.164 numbers is decided by look-ups, not one by one."""
    raws = [
        e164
        for home, number in EXAMPLES
        if home in ("IN", "GB", "US", "AE", "NG", "DE", "FR", "BR")
        and _read_as_it_stands(
            e164 := phonenumbers.format_number(number, PhoneNumberFormat.E164), number.country_code
        )
    ]
    assert len({phonenumbers.parse(raw).country_code for raw in raws}) == 8
    fast = PhoneNormaliser()
    _one_by_one_forbidden(fast, monkeypatch)
    assert fast.normalise_many(raws) == raws
    assert fast.normalise_many(raws[::-1]) == raws[::-1]


def test_several_countries_with_invalid_numbers_agree_with_the_reference():
    """Invalid numbers among several countries' E.164 numbers are replayed; the rest decided by table."""
    raws = ["+919812345678", "+442079460018", "+15555555555", "+4915112345678", "+9198123", "+0123456"]
    raws += ["+919812345678", "+6502530000", "+12015550123", "+447624456789", "+99912345678"]
    fast = PhoneNormaliser("GB")
    assert fast.normalise_many(raws) == [reference_normalise(raw, "GB") for raw in raws]


def test_remembered_look_ups_forget_dropped_tables(monkeypatch):
    """The first look-ups kept for mixed lists are bounded, and never outlive a table the budget drops."""
    monkeypatch.setattr(_phone_tables, "_TABLES", {})
    monkeypatch.setattr(_phone_tables, "_SIZES", {})
    monkeypatch.setattr(_phone_tables, "_MAX_ENTRIES", 8_000)
    monkeypatch.setattr(_phone, "_ROOTS", {})
    monkeypatch.setattr(_phone, "_MAX_ROOTS", 8)
    fast = PhoneNormaliser()
    raws = [
        "+919812345678",
        "+12015550123",
        "+442079460018",
        "+4915112345678",
        "+33612345678",
        "+15555555555",
    ]
    expected = [reference_normalise(raw, None) for raw in raws]
    for _ in range(3):
        for start in range(len(raws)):
            assert fast.normalise_many(raws[start:] + raws[:start]) == expected[start:] + expected[:start]
            assert len(_phone._ROOTS) <= 8
            live = {id(table.root.table) for table in _phone_tables._TABLES.values() if table is not None}
            for get, _start, _stop in _phone._ROOTS.values():
                assert get.__self__ is _phone._NOTHING or id(get.__self__) in live
    assert _phone_tables.dropped_tables() > 0


@pytest.mark.parametrize(
    "raws",
    [
        ["\ud800"],
        ["+\ud800"],
        ["+919812345678", "+91\udfff12345678"],
        ["098123 45678", "0\ud80098123 45678"],
        ["\u0669\u0668", "+\uff19\uff11 98123 45678"],
    ],
)
def test_normalise_many_takes_text_that_is_not_ascii(raws):
    """Lone surrogates and other non-ASCII text in a list are decided one by one, never an error."""
    for region in (None, "IN"):
        fast = PhoneNormaliser(region)
        assert fast.normalise_many(raws) == [reference_normalise(raw, region) for raw in raws]
