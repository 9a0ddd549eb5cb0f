"""Tests of the text layer: GSM 03.38 tables, part counting and text checks."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_async import _text
from sms_async._exceptions import InvalidMessageError, UsageError
from sms_async._text import Encoding, TextInfo, analyse, check_text, is_gsm7

# The reference tables are written here independently of the module: the
# ASCII members by rule, the others by their Unicode names, as GSM 03.38 and
# the Unicode mapping GSM0338.TXT give them.
NOT_IN_BASIC_ASCII = "`\\^{}[]~|"
BASIC_ASCII = {"\n", "\r"} | {chr(c) for c in range(0x20, 0x7F)} - set(NOT_IN_BASIC_ASCII)
BASIC_NON_ASCII = set(
    "\N{POUND SIGN}\N{YEN SIGN}\N{LATIN SMALL LETTER E WITH GRAVE}\N{LATIN SMALL LETTER E WITH ACUTE}"
    "\N{LATIN SMALL LETTER U WITH GRAVE}\N{LATIN SMALL LETTER I WITH GRAVE}"
    "\N{LATIN SMALL LETTER O WITH GRAVE}\N{LATIN CAPITAL LETTER C WITH CEDILLA}"
    "\N{LATIN CAPITAL LETTER O WITH STROKE}\N{LATIN SMALL LETTER O WITH STROKE}"
    "\N{LATIN CAPITAL LETTER A WITH RING ABOVE}\N{LATIN SMALL LETTER A WITH RING ABOVE}"
    "\N{GREEK CAPITAL LETTER DELTA}\N{GREEK CAPITAL LETTER PHI}\N{GREEK CAPITAL LETTER GAMMA}"
    "\N{GREEK CAPITAL LETTER LAMDA}\N{GREEK CAPITAL LETTER OMEGA}\N{GREEK CAPITAL LETTER PI}"
    "\N{GREEK CAPITAL LETTER PSI}\N{GREEK CAPITAL LETTER SIGMA}\N{GREEK CAPITAL LETTER THETA}"
    "\N{GREEK CAPITAL LETTER XI}\N{LATIN CAPITAL LETTER AE}\N{LATIN SMALL LETTER AE}"
    "\N{LATIN SMALL LETTER SHARP S}\N{LATIN CAPITAL LETTER E WITH ACUTE}\N{CURRENCY SIGN}"
    "\N{INVERTED EXCLAMATION MARK}\N{LATIN CAPITAL LETTER A WITH DIAERESIS}"
    "\N{LATIN CAPITAL LETTER O WITH DIAERESIS}\N{LATIN CAPITAL LETTER N WITH TILDE}"
    "\N{LATIN CAPITAL LETTER U WITH DIAERESIS}\N{SECTION SIGN}\N{INVERTED QUESTION MARK}"
    "\N{LATIN SMALL LETTER A WITH DIAERESIS}\N{LATIN SMALL LETTER O WITH DIAERESIS}"
    "\N{LATIN SMALL LETTER N WITH TILDE}\N{LATIN SMALL LETTER U WITH DIAERESIS}"
    "\N{LATIN SMALL LETTER A WITH GRAVE}"
)
BASIC = sorted(BASIC_ASCII | BASIC_NON_ASCII)
EXTENSION = sorted("\f^{}\\[~]|\N{EURO SIGN}")
GSM = set(BASIC) | set(EXTENSION)

EMOJI = "\N{GRINNING FACE}"
# Named, because they are hard to tell from their ASCII look-alikes on screen.
RSQUO = "\N{RIGHT SINGLE QUOTATION MARK}"
LDQUO = "\N{LEFT DOUBLE QUOTATION MARK}"
RDQUO = "\N{RIGHT DOUBLE QUOTATION MARK}"
EM_DASH = "\N{EM DASH}"


def reference_units(text: str) -> int:
    """Count septets or UTF-16 units one character at a time, as the standard describes."""
    if all(ch in GSM for ch in text):
        return sum(2 if ch in EXTENSION else 1 for ch in text)
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def reference_parts(text: str) -> list[str]:
    """Cut ``text`` into the parts a sender would send, never splitting a two-unit character."""
    gsm = all(ch in GSM for ch in text)
    single, multi = (160, 153) if gsm else (70, 67)
    if reference_units(text) <= single:
        return [text]
    parts: list[str] = [""]
    used = 0
    for ch in text:
        cost = reference_units(ch) if gsm else (2 if ord(ch) > 0xFFFF else 1)
        if used + cost > multi:
            parts.append("")
            used = 0
        parts[-1] += ch
        used += cost
    return parts


# Texts built from runs of repeated characters, so that examples are long
# enough to cross several part boundaries and often put a two-unit character
# right at one.
odd_chars = st.sampled_from(["ç", RSQUO, EM_DASH, "`", EMOJI, "\N{PILE OF POO}", "中"]) | st.characters()
gsm_runs = st.lists(st.tuples(st.sampled_from(BASIC + EXTENSION), st.integers(1, 160)), max_size=6)
mixed_runs = st.lists(
    st.tuples(st.sampled_from(BASIC + EXTENSION) | odd_chars, st.integers(1, 80)), max_size=6
)
gsm_text = gsm_runs.map(lambda runs: "".join(ch * n for ch, n in runs)) | st.text(
    st.sampled_from(BASIC + EXTENSION)
)
mixed_text = (
    gsm_text
    | mixed_runs.map(lambda runs: "".join(ch * n for ch, n in runs))
    | st.text(st.sampled_from(BASIC + EXTENSION) | odd_chars)
)


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        pytest.param("a" * 160, Encoding.GSM7, 160, 1, id="a*160"),
        pytest.param("a" * 161, Encoding.GSM7, 161, 2, id="a*161"),
        pytest.param("€" * 80, Encoding.GSM7, 160, 1, id="euro*80"),
        pytest.param("a" * 152 + "€" + "a" * 152, Encoding.GSM7, 306, 3, id="euro-pair-moves"),
        pytest.param(EMOJI * 35, Encoding.UCS2, 70, 1, id="emoji*35"),
        pytest.param(EMOJI * 36, Encoding.UCS2, 72, 2, id="emoji*36"),
    ],
)
def test_required_examples(text, encoding, units, segments):
    """The worked examples of the specification come out exactly."""
    info = analyse(text)
    assert info == TextInfo(encoding=encoding, segments=segments, units=units, non_gsm=info.non_gsm)


@pytest.mark.parametrize("char", ["`", "ç", RSQUO, LDQUO, RDQUO, EM_DASH])
def test_ucs2_forced_by(char):
    """A backtick, small c cedilla, curly quote or em dash makes the whole text UCS-2."""
    text = f"Hello {char} world"
    assert not is_gsm7(text)
    info = analyse(text)
    assert info.encoding is Encoding.UCS2
    assert info.non_gsm == (char,)
    assert info.units == len(text)


def test_basic_table_matches_standard():
    """The basic table holds exactly the 127 characters of GSM 03.38 (128 codes less the escape)."""
    assert len(BASIC) == 127
    assert set(BASIC) == _text._GSM7_BASIC
    assert len(_text._GSM7_BASIC_TABLE) == 128


def test_extension_table_matches_standard():
    """The extension table holds exactly the ten characters of GSM 03.38."""
    assert len(EXTENSION) == 10
    assert set(EXTENSION) == _text._GSM7_EXTENSION
    assert not _text._GSM7_BASIC & _text._GSM7_EXTENSION


@pytest.mark.parametrize(
    ("code", "char"),
    [
        (0x00, "@"),
        (0x01, "£"),
        (0x02, "$"),
        (0x09, "Ç"),
        (0x0A, "\n"),
        (0x0D, "\r"),
        (0x10, "\N{GREEK CAPITAL LETTER DELTA}"),
        (0x11, "_"),
        (0x1B, "\x1b"),
        (0x1F, "É"),
        (0x24, "¤"),
        (0x40, "¡"),
        (0x5F, "§"),
        (0x60, "¿"),
        (0x7F, "à"),
    ],
)
def test_basic_table_code_positions(code, char):
    """The basic table is laid out in GSM 03.38 code order."""
    assert _text._GSM7_BASIC_TABLE[code] == char


def test_cedilla_capital_only():
    """The basic table has capital C cedilla but not small c cedilla."""
    assert analyse("Ç").encoding is Encoding.GSM7
    assert analyse("ç").encoding is Encoding.UCS2


def test_ascii_outside_gsm():
    """Of ASCII, only the backtick, DEL and the C0 controls other than LF, CR and FF are not GSM-7."""
    outside = {chr(c) for c in range(128) if not is_gsm7(chr(c))}
    controls = {chr(c) for c in range(0x20)} - {"\n", "\r", "\f"}
    assert outside == controls | {"`", "\x7f"}
    assert outside == _text._NON_GSM7_ASCII


@pytest.mark.parametrize("char", BASIC, ids=lambda ch: f"U+{ord(ch):04X}")
def test_basic_character_costs_one_septet(char):
    """Every basic-table character is GSM-7 and costs one septet."""
    assert is_gsm7(char)
    assert analyse(char) == TextInfo(encoding=Encoding.GSM7, segments=1, units=1, non_gsm=())
    assert analyse(char * 160).segments == 1
    assert analyse(char * 161).segments == 2


@pytest.mark.parametrize("char", EXTENSION, ids=lambda ch: f"U+{ord(ch):04X}")
def test_extension_character_costs_two_septets(char):
    """Every extension-table character is GSM-7 and costs two septets."""
    assert is_gsm7(char)
    assert analyse(char) == TextInfo(encoding=Encoding.GSM7, segments=1, units=2, non_gsm=())
    assert analyse(char * 80) == TextInfo(encoding=Encoding.GSM7, segments=1, units=160, non_gsm=())
    assert analyse(char * 81).segments == 2
    assert analyse("x" + char * 80).segments == 2


@pytest.mark.parametrize(
    ("text", "units", "segments", "per_segment"),
    [
        pytest.param("ç" * 70, 70, 1, 70, id="ucs2-70"),
        pytest.param("ç" * 71, 71, 2, 67, id="ucs2-71"),
        pytest.param("ç" * 134, 134, 2, 67, id="ucs2-134"),
        pytest.param("ç" * 135, 135, 3, 67, id="ucs2-135"),
        pytest.param("ç" * 68 + EMOJI, 70, 1, 70, id="ucs2-70-with-emoji"),
        pytest.param("ç" * 69 + EMOJI, 71, 2, 67, id="ucs2-71-with-emoji"),
        pytest.param("a" * 160, 160, 1, 160, id="gsm-160"),
        pytest.param("a" * 161, 161, 2, 153, id="gsm-161"),
        pytest.param("a" * 306, 306, 2, 153, id="gsm-306"),
        pytest.param("a" * 307, 307, 3, 153, id="gsm-307"),
        pytest.param("a" * 158 + "€", 160, 1, 160, id="gsm-160-with-euro"),
        pytest.param("a" * 159 + "€", 161, 2, 153, id="gsm-161-with-euro"),
    ],
)
def test_part_boundaries(text, units, segments, per_segment):
    """Texts just at and just over a part boundary take the expected number of parts."""
    info = analyse(text)
    assert (info.units, info.segments, info.per_segment) == (units, segments, per_segment)


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        pytest.param("a" * 152 + "€" + "a" * 152, 306, 3, id="pair-would-straddle"),
        pytest.param("a" * 151 + "€" + "a" * 153, 306, 2, id="pair-ends-part-exactly"),
        pytest.param("€" * 153, 306, 3, id="76-pairs-per-part"),
        pytest.param("€" * 152, 304, 2, id="152-pairs-fill-two-parts"),
        pytest.param("a" * 304 + "€", 306, 2, id="pair-ends-last-part"),
        pytest.param("a" * 305 + "€", 307, 3, id="pair-after-305"),
    ],
)
def test_escape_pair_never_split(text, units, segments):
    """An extension character's escape pair moves whole to the next part rather than straddle two."""
    info = analyse(text)
    assert info.encoding is Encoding.GSM7
    assert (info.units, info.segments) == (units, segments)
    assert len(reference_parts(text)) == segments


@pytest.mark.parametrize(
    ("text", "units", "segments"),
    [
        pytest.param("ç" * 66 + EMOJI + "ç" * 66, 134, 3, id="pair-would-straddle"),
        pytest.param("ç" * 65 + EMOJI + "ç" * 67, 134, 2, id="pair-ends-part-exactly"),
        pytest.param(EMOJI * 67, 134, 3, id="33-emoji-per-part"),
        pytest.param(EMOJI * 66, 132, 2, id="66-emoji-fill-two-parts"),
    ],
)
def test_surrogate_pair_never_split(text, units, segments):
    """A character outside the BMP moves whole to the next part rather than straddle two."""
    info = analyse(text)
    assert info.encoding is Encoding.UCS2
    assert (info.units, info.segments) == (units, segments)
    assert len(reference_parts(text)) == segments


@pytest.mark.parametrize(
    ("text", "non_gsm"),
    [
        ("Plain GSM text with € and [brackets] {braces} ~|^\\", ()),
        (
            f"Façade{RSQUO}s {LDQUO}quote{RDQUO} {EM_DASH} ça{RSQUO}",
            ("ç", RSQUO, LDQUO, RDQUO, EM_DASH),
        ),
        (f"{EMOJI}a{EMOJI}b`", (EMOJI, "`")),
        ("Tab\there", ("\t",)),
        # Capital lambda is in the basic table; capital epsilon and the small letters are not.
        ("中文 and ΕΛληνικά", ("中", "文", "Ε", "λ", "η", "ν", "ι", "κ", "ά")),  # noqa: RUF001
    ],
)
def test_non_gsm(text, non_gsm):
    """``non_gsm`` lists each character that forced UCS-2 once, in order of first appearance."""
    assert analyse(text).non_gsm == non_gsm


def test_greek_capitals_not_lookalikes():
    """The GSM Greek capitals are the Greek letters; look-alike symbols are not GSM-7."""
    assert is_gsm7("\N{GREEK CAPITAL LETTER OMEGA}\N{GREEK CAPITAL LETTER DELTA}")
    assert not is_gsm7("\N{OHM SIGN}")
    assert not is_gsm7("\N{INCREMENT}")


def test_encoding_values():
    """The encodings compare equal to the names gateways use."""
    assert Encoding.GSM7 == "GSM-7"
    assert Encoding.UCS2 == "UCS-2"
    assert Encoding("UCS-2") is Encoding.UCS2


def test_empty_text_is_measured_as_one_part():
    """``analyse`` measures the empty text as one empty GSM-7 part instead of raising."""
    assert analyse("") == TextInfo(encoding=Encoding.GSM7, segments=1, units=0, non_gsm=())
    assert is_gsm7("")


def test_check_text_empty():
    """The empty text is refused with a message that says so."""
    with pytest.raises(InvalidMessageError, match="empty"):
        check_text("")


@pytest.mark.parametrize("text", [" ", "   ", "\n", " \t\r\n\f ", "\u3000", "\xa0\xa0"])
def test_check_text_only_whitespace(text):
    """A text of nothing but whitespace is refused."""
    with pytest.raises(InvalidMessageError, match="only whitespace"):
        check_text(text)


@pytest.mark.parametrize(
    ("text", "code", "name", "position"),
    [
        ("\x00", "U+0000", "NUL", 0),
        ("abc\x00def", "U+0000", "NUL", 3),
        ("ab\x1bc", "U+001B", "ESC", 2),
        ("line\x0bbreak", "U+000B", "VT", 4),
        ("bell\x07", "U+0007", "BEL", 4),
        ("\x1f", "U+001F", "US", 0),
        ("  \x01", "U+0001", "SOH", 2),
    ],
)
def test_check_text_control_character(text, code, name, position):
    """A C0 control character other than TAB, LF, CR and FF is refused, named, and located."""
    with pytest.raises(InvalidMessageError) as caught:
        check_text(text)
    message = str(caught.value)
    assert code in message
    assert f"({name})" in message
    assert f"position {position} " in message
    assert "remove it" in message


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("\ud800", "U+D800", 0),
        ("ab\ud83d", "U+D83D", 2),
        ("ab\ude00cd", "U+DE00", 2),
        (f"{EMOJI}x\udfff", "U+DFFF", 2),
        ("\ude00\ud83d", "U+DE00", 0),
    ],
)
def test_check_text_lone_surrogate(text, code, position):
    """A lone surrogate is refused with its code point and position."""
    with pytest.raises(InvalidMessageError) as caught:
        check_text(text)
    message = str(caught.value)
    assert "lone surrogate" in message
    assert code in message
    assert f"position {position} " in message
    assert "cannot be encoded" in message


def test_check_text_split_surrogate_pair():
    """A surrogate pair stored as two code points is refused with a way to rejoin it."""
    halves = "hi \ud83d\ude00"
    with pytest.raises(InvalidMessageError) as caught:
        check_text(halves)
    message = str(caught.value)
    assert "U+D83D U+DE00" in message
    assert "position 3 " in message
    assert "surrogatepass" in message
    assert halves.encode("utf-16", "surrogatepass").decode("utf-16") == "hi " + EMOJI


def test_check_text_error_is_a_usage_error():
    """Refusals are usage errors, and so also ValueErrors."""
    with pytest.raises(InvalidMessageError) as caught:
        check_text("")
    assert isinstance(caught.value, UsageError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    "text",
    [
        "Hello",
        "a",
        "tab\tline\nreturn\rfeed\f",
        " padded ",
        EMOJI,
        "\N{FAMILY}\N{ZERO WIDTH JOINER}\N{GIRL}",
        "\N{WOMAN}\N{ZERO WIDTH JOINER}\N{PERSONAL COMPUTER}\N{EMOJI MODIFIER FITZPATRICK TYPE-4}",
        "\N{REGIONAL INDICATOR SYMBOL LETTER G}\N{REGIONAL INDICATOR SYMBOL LETTER B}",
        "مرحبا بالعالم",
        "שלום",
        "你好，世界",  # noqa: RUF001
        "こんにちは",
        "Привет",
        "नमस्ते",
        "e\N{COMBINING ACUTE ACCENT}",
        "\N{ZERO WIDTH SPACE}",
        "\x7f\x85",
        string.digits + string.ascii_letters + string.punctuation + " \t\n\r\f",
    ],
)
def test_check_text_accepts(text):
    """Any language, emoji, and TAB, LF, CR and FF are accepted."""
    check_text(text)
    analyse(text)


@given(st.text(st.characters(exclude_categories=[])))
def test_analyse_never_raises(text):
    """``analyse`` measures any string at all, surrogates included, and its figures hang together."""
    info = analyse(text)
    assert info.segments >= 1
    assert info.units <= info.segments * info.per_segment
    assert info.encoding is (Encoding.GSM7 if is_gsm7(text) else Encoding.UCS2)


@given(st.text(st.characters(exclude_categories=["Cs", "Cc"]) | st.sampled_from("\t\n\r\f\x7f")))
def test_check_text_accepts_any_printable_text(text):
    """``check_text`` accepts every text without surrogates or forbidden controls that is not blank."""
    if text.isspace() or not text:
        with pytest.raises(InvalidMessageError):
            check_text(text)
    else:
        check_text(text)


@given(mixed_text, mixed_text)
def test_segments_never_decrease_when_appending(head, tail):
    """Appending text never reduces the number of parts."""
    assert analyse(head + tail).segments >= analyse(head).segments


@given(gsm_text)
def test_gsm_only_text_is_gsm7(text):
    """A text made only of GSM characters is never reported as UCS-2."""
    info = analyse(text)
    assert is_gsm7(text)
    assert info.encoding is Encoding.GSM7
    assert info.non_gsm == ()


@given(mixed_text)
def test_units_match_hand_count(text):
    """``units`` equals the character-by-character count of septets or UTF-16 units."""
    assert analyse(text).units == reference_units(text)


@given(mixed_text)
def test_segments_match_reference_split(text):
    """``segments`` equals the number of parts a sender cuts the text into."""
    assert analyse(text).segments == len(reference_parts(text))


@given(mixed_text)
def test_ucs2_single_part_iff_fits_70(text):
    """For UCS-2, the text takes one part exactly when it is at most 70 units."""
    info = analyse(text)
    if info.encoding is Encoding.UCS2:
        assert (info.segments == 1) == (info.units <= 70)
        assert set(info.non_gsm) == {ch for ch in text if ch not in GSM}
