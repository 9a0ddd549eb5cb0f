"""Reading recipients on the command line: the library's reader, its messages naming the command's options.

The reading itself (CSV or one number per line, the phone column, row
numbers, the fingerprint a resume checks) is
:class:`sms_async.campaign.RecipientSource`; here it only learns to say
``--column`` where a Python caller reads ``column=``.
"""

from __future__ import annotations

from typing import Any

from sms_async import campaign
from sms_async.campaign import InputFormat, InputOptionNames, InputReadError

__all__ = ["CLI_INPUT_NAMES", "InputFormat", "InputReadError", "RecipientSource"]

#: How the reader's messages name the command line's options.
CLI_INPUT_NAMES = InputOptionNames(
    column="--column", csv="--input-format csv", keep_columns="--keep-columns", text="--text"
)


class RecipientSource(campaign.RecipientSource):
    """:class:`sms_async.campaign.RecipientSource`, advising the command line's options."""

    def __init__(self, path: str, **options: Any) -> None:
        options.setdefault("names", CLI_INPUT_NAMES)
        super().__init__(path, **options)
