"""Tests of the bulk normaliser's shortcuts for lists of one length: the same answers as one by one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sms_async._phone import PhoneNormaliser

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
