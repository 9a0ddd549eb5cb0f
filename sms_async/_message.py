"""The message value: one text from one sender, checked before anything is sent."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import attrs

from sms_async._exceptions import InvalidMessageError, InvalidSenderIdError
from sms_async._models import Failure, Outcome
from sms_async._text import Encoding, TextInfo, analyse, check_text

__all__ = ["MAX_PARTS", "Message", "Template", "check_sender_id"]

_ALNUM_MAX = 11
_NUMERIC_MAX = 15

#: Concatenated SMS address at most this many parts (a one-byte part count).
MAX_PARTS = 255


def check_sender_id(sender_id: str) -> str:
    """Return ``sender_id`` if it is valid, else raise :class:`InvalidSenderIdError`.

    An alphanumeric sender id has at most 11 characters (ASCII letters, digits,
    spaces) with at least one letter; a numeric one has at most 15 digits
    (an optional leading ``+`` is not counted).
    """
    if not isinstance(sender_id, str):
        raise InvalidSenderIdError(f"sender_id must be a string, got {type(sender_id).__name__}")
    if not sender_id or not sender_id.strip():
        raise InvalidSenderIdError(
            "sender_id is empty: pass the sender name or number the gateway registered"
        )
    digits = sender_id.removeprefix("+")
    if digits.isascii() and digits.isdigit():
        if len(digits) > _NUMERIC_MAX:
            raise InvalidSenderIdError(
                f"numeric sender_id {sender_id!r} has {len(digits)} digits; "
                f"at most {_NUMERIC_MAX} are allowed"
            )
        return sender_id
    bad = sorted({c for c in sender_id if not (c.isascii() and (c.isalnum() or c == " "))})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise InvalidSenderIdError(
            f"sender_id {sender_id!r} contains {shown}: an alphanumeric sender id may hold only "
            "ASCII letters, digits and spaces"
        )
    if len(sender_id) > _ALNUM_MAX:
        raise InvalidSenderIdError(
            f"alphanumeric sender_id {sender_id!r} has {len(sender_id)} characters; at most {_ALNUM_MAX} "
            "are allowed (a numeric sender id may have up to 15 digits)"
        )
    return sender_id


@attrs.frozen
class Message:
    """One text from one sender, validated.

    Build it with :meth:`create` (or let ``BulkSender.send`` do it) to check a
    campaign before anything is sent: ``encoding``, ``segments`` and
    ``non_gsm`` (the characters that forced UCS-2) tell what it will cost.
    """

    text: str
    sender_id: str
    info: TextInfo = attrs.field(repr=False)

    @classmethod
    def create(cls, text: str, sender_id: str, *, max_segments: int | None = None) -> Message:
        """Validate ``text`` and ``sender_id`` and measure the text.

        Raises:
            InvalidMessageError: empty text, an unencodable character, or more
                parts than ``max_segments``.
            InvalidSenderIdError: a sender id that breaks the rules.
        """
        if not isinstance(text, str):
            raise InvalidMessageError(f"the message text must be a string, got {type(text).__name__}")
        check_text(text)
        check_sender_id(sender_id)
        info = analyse(text)
        if info.segments > MAX_PARTS:
            raise InvalidMessageError(
                f"the message needs {info.segments} SMS parts ({info.encoding.value}, {info.units} units); "
                f"a concatenated SMS has at most {MAX_PARTS}: shorten it"
            )
        if max_segments is not None and info.segments > max_segments:
            raise InvalidMessageError(
                f"the message needs {info.segments} SMS parts ({info.encoding.value}, {info.units} units), "
                f"more than max_segments={max_segments}: shorten it"
                + (
                    f" or replace {', '.join(repr(c) for c in info.non_gsm[:5])} to use GSM-7"
                    if info.non_gsm
                    else ""
                )
            )
        return cls(text, sender_id, info)

    @property
    def encoding(self) -> Encoding:
        """GSM-7 or UCS-2."""
        return self.info.encoding

    @property
    def segments(self) -> int:
        """SMS parts each recipient will receive (and be billed for)."""
        return self.info.segments

    @property
    def non_gsm(self) -> tuple[str, ...]:
        """The characters that forced UCS-2, in order of first appearance."""
        return self.info.non_gsm

    @property
    def is_unicode(self) -> bool:
        """Whether the text travels as UCS-2."""
        return self.info.encoding is Encoding.UCS2

    def cost(self, recipients: int) -> int:
        """Credits the campaign takes: parts x recipients."""
        return self.info.segments * recipients


@attrs.frozen
class Template:
    """A text whose fields are filled per recipient, from a mapping such as a CSV row.

    ::

        Template("Hi {name}, order {order} has shipped", number="phone")

    Each row must hold the number under ``number`` and a value for every
    field. A row without one is ``invalid``, with a reason naming the field;
    it never stops the run. Fields are names (``{name}``, ``{first name}``),
    optionally with a format spec (``{amount:>8}``); positional fields and
    attribute or index look-ups are refused when the template is made.
    """

    text: str
    number: str = "phone"
    #: The field names the text uses, in order of first use.
    fields: tuple[str, ...] = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text:
            raise InvalidMessageError("a Template needs a non-empty text, such as 'Hi {name}'")
        names: dict[str, None] = {}
        try:
            parsed = list(string.Formatter().parse(self.text))
        except ValueError as error:
            raise InvalidMessageError(
                f"the template {self.text[:60]!r} is malformed ({error}): "
                "write a literal brace as {{ or }}"
            ) from None
        for _, field, _, _ in parsed:
            if field is None:
                continue
            if not field or field.isdigit() or any(c in field for c in ".[]"):
                raise InvalidMessageError(
                    f"the template field {{{field}}} is not a plain name: use named fields such as {{name}}"
                )
            names[field] = None
        object.__setattr__(self, "fields", tuple(names))

    def split(self, row: Any) -> tuple[str, str | Failure]:
        """The row's number as given, and its text (or why the row cannot be sent)."""
        if not isinstance(row, Mapping):
            shown = repr(row)[:60]
            return shown, Failure(
                Outcome.INVALID, f"a Template reads mappings (such as CSV rows), got {shown}"
            )
        number = row.get(self.number)
        raw = "" if number is None else str(number)
        if number is None:
            return raw, Failure(Outcome.INVALID, f"its row has no {self.number!r} field for the number")
        try:
            return raw, self.text.format_map(row)
        except KeyError as missing:
            return raw, Failure(
                Outcome.INVALID, f"its row has no value for the template field {missing.args[0]!r}"
            )
        except (ValueError, TypeError) as error:
            return raw, Failure(Outcome.INVALID, f"its row does not fit the template: {error}")
