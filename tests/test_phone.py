"""Tests of phone-number normalisation: the fast path must say what phonenumbers says."""

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sms_async import _phone
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


def assert_same(raw: str, region: str | None) -> None:
    """The fast path gives the reference's verdict, and normalise() agrees with both."""
    expected = reference_normalise(raw, region)
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
def test_every_example_number_in_every_spelling():
    """Every example number of every region, in every spelling, under several regions, agrees."""
    checked = 0
    for index, (home, number) in enumerate(EXAMPLES):
        others = {None, home, "US", "GB", "IN", "DE", REGIONS[index % len(REGIONS)]}
        for raw in spellings(number):
            for region in others:
                assert_same(raw, region)
                checked += 1
    assert checked > 50_000


mutation = st.sampled_from(["change", "drop", "add", "separator", "country", "length", "space", "junk"])


@st.composite
def mutated_spellings(draw: st.DrawFn) -> tuple[str, str | None]:
    """A spelling of an example number, perhaps mutated, and a default region to read it in."""
    home, number = draw(st.sampled_from(EXAMPLES))
    raw = draw(st.sampled_from(spellings(number)))
    if draw(st.booleans()):
        # Re-spell the digits with separators of one's own.
        plus = "+" if raw.startswith("+") else ""
        digits = [c for c in raw if c.isdigit()]
        raw = plus + "".join(c + draw(st.sampled_from(["", "", "", *SEPARATORS])) for c in digits)
    for op in draw(st.lists(mutation, max_size=3)):
        chars = list(raw)
        at = draw(st.integers(0, len(chars)))
        digit = draw(st.sampled_from(string.digits))
        if op == "change" and at < len(chars):
            chars[at] = digit
        elif op == "drop" and at < len(chars):
            del chars[at]
        elif op == "add":
            chars.insert(at, digit)
        elif op == "separator":
            chars.insert(at, draw(st.sampled_from(SEPARATORS)))
        elif op == "country":
            code = draw(st.sampled_from(CODES))
            chars = list(draw(st.sampled_from(["+", "", "00", "011"])) + str(code) + raw.lstrip("+"))
        elif op == "length":
            size = draw(st.integers(0, 18))
            digits = "".join(c for c in raw if c.isdigit())
            digits = (digits + draw(st.text(string.digits, min_size=18, max_size=18)))[:size]
            chars = list(draw(st.sampled_from(["+", ""])) + digits)
        elif op == "space":
            chars.insert(at, draw(st.sampled_from([" ", "  ", "\t", "\u00a0", "\n"])))
        elif op == "junk":
            chars.insert(at, draw(st.sampled_from(["+", "#", "*", ";", ",", "x", "0", "\uff10", "_"])))
        raw = "".join(chars)
    region = draw(st.one_of(st.none(), st.just(home), st.sampled_from(REGIONS)))
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
