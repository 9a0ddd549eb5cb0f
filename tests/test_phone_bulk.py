"""Tests of the bulk normaliser's shortcuts for lists of one length: the same answers as one by one."""

from __future__ import annotations

import string

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from sms_async import _phone, _phone_tables
from sms_async._phone import PhoneNormaliser, reference_normalise

IN = PhoneNormaliser("IN")
ANY = PhoneNormaliser(None)


def test_an_over_long_national_input_among_many_short_ones_is_refused():
    """A 251-character spelling hidden among 300 well-spelled numbers is refused, as one by one."""
    raws = [f"098{i:03d} {i:05d}" for i in range(300)]
    raws[150] = "0" + " " * 240 + "9812345678"  # digits of a valid number, but too long an input
    assert len(raws[150]) > 250
    assert IN.normalise_many(raws) == [IN.normalise_or_none(raw) for raw in raws]
    assert IN.normalise_many(raws)[150] is None


def test_inputs_of_one_length_with_many_separators_stay_valid():
    """300 inputs of one length, with enough separators to be measured, are all read."""
    raws = [f"098{i:03d}-{i:05d}" for i in range(300)]
    assert IN.normalise_many(raws) == [f"+9198{i:03d}{i:05d}" for i in range(300)]


@given(
    st.lists(
        st.one_of(
            st.from_regex(r"\+91[6-9][0-9]{9}", fullmatch=True),
            st.from_regex(r"\+91[6-9][0-9]{8,10}", fullmatch=True),
            st.from_regex(r"\+44[0-9]{10}", fullmatch=True),
        ),
        min_size=1,
        max_size=300,
    )
)
@settings(max_examples=300, deadline=None)
def test_e164_lists_of_one_length_or_several_equal_one_by_one(raws):
    """E.164 lists, of one length or several, get exactly the one-by-one answers."""
    for normaliser in (IN, ANY):
        assert normaliser.normalise_many(raws) == [normaliser.normalise_or_none(raw) for raw in raws]


@given(st.lists(st.from_regex(r"0?[6-9][0-9]{4}[ -]{0,3}[0-9]{5}", fullmatch=True), min_size=1, max_size=300))
@settings(max_examples=300, deadline=None)
def test_national_lists_of_mixed_lengths_equal_one_by_one(raws):
    """National lists whose spellings differ in length and separators get the one-by-one answers."""
    assert IN.normalise_many(raws) == [IN.normalise_or_none(raw) for raw in raws]


# --- lists of one length: the first look-ups read from the joined digits ------------------------------

REGIONS_ONE_LENGTH = ("IN", "GB", "DE", "US", "CN", "FR", "RU", "BR", "IT", "AU", "NG", "ID")


def _examples(region: str) -> list[phonenumbers.PhoneNumber]:
    return [
        number
        for kind in sorted(PhoneNumberType.values())
        if (number := phonenumbers.example_number_for_type(region, kind)) is not None
    ]


def _digits_of(number: phonenumbers.PhoneNumber, spelling: int) -> str:
    return "".join(c for c in phonenumbers.format_number(number, spelling) if c.isdigit())


def test_a_tables_columns_say_what_its_first_look_up_says():
    """For every code point of a table's first look-up, the column test and the look-up agree."""
    checked = 0
    for region in REGIONS_ONE_LENGTH:
        fast = PhoneNormaliser(region)
        code = str(phonenumbers.country_code_for_region(region))
        head = 1 + len(code)
        tables: list[_phone_tables.Table] = []
        for number in _examples(region):
            national = _digits_of(number, PhoneNumberFormat.NATIONAL)
            table = fast._national_table(len(national), fast._national_prefix(national))
            tables += [table] if table is not None else []
            nsn = phonenumbers.national_significant_number(number)
            e164 = _phone_tables.e164_table(int(code), len(nsn))
            tables += [e164] if e164 is not None else []
        for table in tables:
            columns = table.columns(head)
            root = table.root
            if columns is None:
                assert root.start != 0 or root.stop - head > 4 or root.table.get(f"+{code}") is not True
                continue
            width, undecided = columns
            keys = [f"+{code}" + (f"{value:0{width}d}" if width else "") for value in range(10**width)]
            # The code points as a list's lines give them: each key after filler digits.
            blob = "\n".join("0" * head + key[head:] for key in keys).encode()
            codes = _phone._column_codes(blob, head + width + 1, head, width, len(keys)) if width else ""
            for index, key in enumerate(keys):
                decided = root.table.get(key) is True
                unknown = undecided is not None and undecided.search(codes[index]) is not None
                assert unknown != decided, (region, key)
            checked += 1
    assert checked >= 30


def test_a_number_of_another_country_of_the_same_length_is_not_read_as_the_first_ones():
    """'+44' and digits that Indian tables would accept, amid Indian numbers of its length: invalid."""
    raws = [f"+9198{i:08d}" for i in range(300)]
    raws[150] = "+449912345678"  # 99... is no British number; as +91 it would be
    assert reference_normalise(raws[150], None) is None
    assert reference_normalise("+919912345678", None) is not None
    for fast in (IN, ANY):
        assert fast.normalise_many(raws) == [fast.normalise_or_none(raw) for raw in raws]
        assert fast.normalise_many(raws)[150] is None


@pytest.mark.parametrize(
    ("odd", "expected"),
    [
        ("098123\n45678", None),  # a newline of its own, as long as the rest
        ("098123\t45678", None),
        ("0981+3 45678", None),
        ("198123 45678", None),  # another first digit where the national prefix stands
        ("+98123 45678", "keep"),
        ("09812  45678", None),  # one digit short, spaced to the same length
        ("0981234 5678", "+919812345678"),  # the separator elsewhere
        ("0 9812345678", "+919812345678"),
        ("91 9812345678", "+919812345678"),  # the country code instead of the national prefix
    ],
)
def test_one_odd_input_among_national_spellings_of_one_length(odd, expected):
    """An input as long as the others but spelled otherwise gets exactly its one-by-one answer."""
    raws = [f"098{i:03d} {i:05d}" for i in range(300)]
    raws[137] = odd
    got = IN.normalise_many(raws)
    assert got == [IN.normalise_or_none(raw) for raw in raws]
    assert got[137] == (IN.normalise_or_none(odd) if expected == "keep" else expected)
    assert got[136] == "+9198136" + "00136"


def test_national_inputs_all_over_long_and_of_one_length_are_refused():
    """Inputs of 251 characters (digits of valid numbers, padded with spaces) are each refused."""
    raws = ["0" + " " * 240 + f"98{i:03d}{i:05d}" for i in range(300)]
    assert {len(raw) for raw in raws} == {251}
    assert IN.normalise_many(raws) == [None] * 300
    fit = [raw[1:] for raw in raws]  # 250 characters: read
    assert IN.normalise_many(fit) == [f"+9198{i:03d}{i:05d}" for i in range(300)]


# The strategies drawn from hundreds of times a list, made once: hypothesis then validates each once.
_DIGIT = st.sampled_from(string.digits)
_ONE_IN_TEN = st.integers(0, 9)
_SIZE = st.integers(1, 300)
_SPELLING = st.sampled_from([PhoneNumberFormat.E164, PhoneNumberFormat.NATIONAL])


@st.composite
def _one_length_lists(draw: st.DrawFn) -> tuple[str, list[str]]:
    """A region and a list of its numbers of one length, in one spelling, some digits changed."""
    region = draw(st.sampled_from(REGIONS_ONE_LENGTH))
    seed = draw(st.sampled_from(_examples(region)))
    spelling = draw(_SPELLING)
    text = phonenumbers.format_number(seed, spelling)
    places = [i for i, c in enumerate(text) if c.isdigit()]
    first_places = st.sampled_from(places[:6])
    raws: list[str] = []
    for _ in range(draw(_SIZE)):
        chars = list(text)
        # Change the last digits (a new number, most often valid) and, now
        # and then, one of the first (open or invalid at the first look-up).
        for place in places[-4:]:
            chars[place] = draw(_DIGIT)
        if draw(_ONE_IN_TEN) == 0:
            chars[draw(first_places)] = draw(_DIGIT)
        raws.append("".join(chars))
    return region, raws


@given(_one_length_lists())
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_lists_of_one_length_get_the_references_verdicts(case):
    """One-length lists of many regions, E.164 or national, get exactly phonenumbers' verdicts."""
    region, raws = case
    fast = PhoneNormaliser(region)
    expected = [reference_normalise(raw, region) for raw in raws]
    assert fast.normalise_many(raws) == expected
    assert PhoneNormaliser(None).normalise_many(raws) == [reference_normalise(raw, None) for raw in raws]


def test_a_chunk_of_1024_national_spellings_takes_no_one_by_one_path(monkeypatch):
    """The engine's chunk of 1,024 valid national spellings is decided without a per-number call."""
    raws = [f"0{7 + i % 3}{i:04d} {i:05d}" for i in range(1024)]
    expected = [reference_normalise(raw, "IN") for raw in raws]
    assert None not in expected

    def fail(self: PhoneNormaliser, raw: str) -> str | None:
        raise AssertionError(f"{raw!r} went down the one-by-one path")

    monkeypatch.setattr(PhoneNormaliser, "normalise_or_none", fail)
    assert PhoneNormaliser("IN").normalise_many(raws) == expected
