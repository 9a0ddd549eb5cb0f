r"""How a message text travels: its encoding, its size and how many SMS parts it takes.

A text made only of characters of the GSM 03.38 default alphabet (the basic
table plus its extension table) is sent as GSM-7; any other character makes the
whole text UCS-2. The two differ in what one part holds:

========  ==========================  ==================================
encoding  one-part message            each part of a concatenated one
========  ==========================  ==================================
GSM-7     160 septets                 153 septets
UCS-2     70 UTF-16 code units        67 UTF-16 code units
========  ==========================  ==================================

A character of the extension table (``\f ^ { } \ [ ] ~ | €``) costs two
septets, an escape and the character, and the pair is never split between two
parts. A character outside the Basic Multilingual Plane (most emoji) costs two
UTF-16 code units, a surrogate pair, which is never split either. So a part of
a long message may hold one unit fewer than its capacity.

:func:`check_text` refuses texts that cannot or should not be sent;
:func:`analyse` says what a text will cost; :func:`is_gsm7` is the quick test.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

import attrs

from sms_async._exceptions import InvalidMessageError

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["Encoding", "TextInfo", "analyse", "check_text", "is_gsm7"]


class Encoding(enum.StrEnum):
    """The alphabet a text is sent in; members are their names (``str(Encoding.GSM7) == "GSM-7"``)."""

    GSM7 = "GSM-7"
    UCS2 = "UCS-2"


# The basic table in code order, 0x00 to 0x7F, so that it can be checked line
# by line against GSM 03.38. Position 0x1B is the escape to the extension
# table, not a character, and is dropped below. The Greek capitals are the
# Greek letters (U+0394 and so on), not look-alikes such as U+2126 OHM SIGN.
_GSM7_BASIC_TABLE = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\x1bÆæßÉ"  # 0x10
    " !\"#¤%&'()*+,-./"  # 0x20
    "0123456789:;<=>?"  # 0x30
    "¡ABCDEFGHIJKLMNO"  # 0x40
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50
    "¿abcdefghijklmno"  # 0x60
    "pqrstuvwxyzäöñüà"  # 0x70
)
_GSM7_BASIC = frozenset(_GSM7_BASIC_TABLE) - {"\x1b"}
# Sent as escape + character: two septets each.
_GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
_GSM7 = _GSM7_BASIC | _GSM7_EXTENSION
# Most texts are ASCII; for them only these few characters decide the encoding,
# and a small set is quicker to test against than the whole alphabet.
_NON_GSM7_ASCII = frozenset(map(chr, range(128))) - _GSM7

_GSM7_SINGLE = 160
_GSM7_MULTI = 153
_UCS2_SINGLE = 70
_UCS2_MULTI = 67
_BMP_LAST = 0xFFFF

# Control characters an SMS cannot carry (everything in C0 except TAB, LF, FF
# and CR), and surrogate code points, which no encoding can write out.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0e-\x1f\ud800-\udfff]")
# fmt: off
_C0_NAMES = (
    "NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL", "BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI",
    "DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB", "CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US",
)
# fmt: on


@attrs.frozen
class TextInfo:
    """What a message text costs to send; made by :func:`analyse`.

    Attributes:
        encoding: GSM-7 if every character is in the GSM 03.38 default
            alphabet, else UCS-2.
        segments: How many SMS parts the text takes; each recipient is billed
            for every part. At least 1.
        units: The size of the text: septets for GSM-7 (an extension-table
            character counts 2), UTF-16 code units for UCS-2 (a character
            outside the Basic Multilingual Plane counts 2).
        non_gsm: The distinct characters that forced UCS-2, in order of first
            appearance, so that a caller can say what to replace to get the
            cheaper GSM-7; empty for GSM-7.
    """

    encoding: Encoding
    segments: int
    units: int
    non_gsm: tuple[str, ...]

    @property
    def per_segment(self) -> int:
        """The capacity of one part in ``units``: 160 or 153 for GSM-7, 70 or 67 for UCS-2.

        The smaller figure applies when the text takes more than one part,
        because each part then carries a header that joins the parts up again.
        """
        if self.encoding is Encoding.GSM7:
            return _GSM7_SINGLE if self.segments <= 1 else _GSM7_MULTI
        return _UCS2_SINGLE if self.segments <= 1 else _UCS2_MULTI


def is_gsm7(text: str) -> bool:
    """Say whether ``text`` can be sent as GSM-7.

    True when every character is in the GSM 03.38 basic or extension table;
    the empty text is GSM-7. Cheap enough to call per message.
    """
    if text.isascii():
        return _NON_GSM7_ASCII.isdisjoint(text)
    return _GSM7.issuperset(text)


def analyse(text: str) -> TextInfo:
    """Work out the encoding, size and number of parts of ``text``.

    Never raises, whatever the string: it measures, it does not judge. Call
    :func:`check_text` first to refuse texts that cannot be sent; the empty
    text, for one, is measured as a single empty part.

    Args:
        text: The message text exactly as it will be sent.

    Returns:
        The :class:`TextInfo` of the text.
    """
    if is_gsm7(text):
        extension = sum(map(text.count, _GSM7_EXTENSION))
        units = len(text) + extension
        costs = (2 if ch in _GSM7_EXTENSION else 1 for ch in text) if extension else None
        segments = _segments(units, costs, single=_GSM7_SINGLE, multi=_GSM7_MULTI)
        return TextInfo(encoding=Encoding.GSM7, segments=segments, units=units, non_gsm=())

    # "surrogatepass" lets a lone surrogate be measured (as one unit) instead
    # of raising; check_text is what refuses it.
    units = len(text.encode("utf-16-le", "surrogatepass")) // 2
    costs = (2 if ord(ch) > _BMP_LAST else 1 for ch in text) if units != len(text) else None
    segments = _segments(units, costs, single=_UCS2_SINGLE, multi=_UCS2_MULTI)
    non_gsm = tuple(dict.fromkeys(ch for ch in text if ch not in _GSM7))
    return TextInfo(encoding=Encoding.UCS2, segments=segments, units=units, non_gsm=non_gsm)


def _segments(units: int, costs: Iterable[int] | None, *, single: int, multi: int) -> int:
    """Count the parts of a text of ``units`` units whose characters cost ``costs``.

    ``costs`` is None when every character costs one unit, so that parts can
    be counted by division.
    """
    if units <= single:
        return 1
    if costs is None:
        return -(-units // multi)
    # A two-unit character that does not fit in what is left of a part moves
    # whole to the next one; filling each part as far as it goes is what a
    # sender does, and it also gives the fewest parts.
    parts, used = 1, 0
    for cost in costs:
        if used + cost > multi:
            parts += 1
            used = 0
        used += cost
    return parts


def check_text(text: str) -> None:
    """Refuse a text that cannot, or surely should not, be sent.

    Any language and any emoji are accepted. Tab, line feed, carriage return
    and form feed are accepted too (a tab makes the text UCS-2; a form feed
    costs two septets in GSM-7).

    Args:
        text: The message text.

    Raises:
        InvalidMessageError: If the text is empty or only whitespace, holds a
            surrogate code point (half of a UTF-16 pair, which cannot be
            encoded), or holds a C0 control character other than tab, line
            feed, carriage return and form feed. The message names the first
            offending character and its position, counted from 0.
    """
    if not text:
        raise InvalidMessageError("The message text is empty: give the text to send.")
    found = _FORBIDDEN.search(text)
    if found is not None:
        raise InvalidMessageError(_describe_forbidden(text, found.start()))
    if text.isspace():
        raise InvalidMessageError(
            f"The message text is only whitespace ({len(text)} characters): give the text to send."
        )


def _describe_forbidden(text: str, index: int) -> str:
    """Say what is wrong with the forbidden character at ``index`` and what to do about it."""
    char = text[index]
    code = ord(char)
    where = f"at position {index} (counting from 0)"
    if code < len(_C0_NAMES):
        return (
            f"The message text has the control character U+{code:04X} ({_C0_NAMES[code]}) {where}, "
            "which an SMS cannot carry: remove it. Of the control characters only tab, line feed, "
            "carriage return and form feed are allowed."
        )
    following = text[index + 1 : index + 2]
    if 0xD800 <= code <= 0xDBFF and following and 0xDC00 <= ord(following) <= 0xDFFF:
        # Text decoded with "surrogatepass" or built from UTF-16 units keeps
        # both halves of a pair as separate code points; they can be rejoined.
        return (
            f"The message text has a UTF-16 surrogate pair U+{code:04X} U+{ord(following):04X} "
            f"stored as two separate code points {where}, which cannot be encoded: join them with "
            "text.encode('utf-16', 'surrogatepass').decode('utf-16'), or decode the source properly."
        )
    return (
        f"The message text has a lone surrogate U+{code:04X} {where}, which cannot be encoded: "
        "it is half of a UTF-16 pair, usually left by cutting or decoding text wrongly. "
        "Remove it, or fix how the text was read."
    )
