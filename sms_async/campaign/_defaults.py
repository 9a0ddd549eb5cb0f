"""Defaults every face of a campaign shares: named once, for the library, the workers and the command line."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_GATEWAY", "DEFAULT_REGION", "PARTS_WARNING", "parts_warning"]

#: The gateway used when nothing names one.
DEFAULT_GATEWAY: Final = "iton"
#: The region of national spellings (``098123 45678``) when nothing names one.
DEFAULT_REGION: Final = "IN"

#: Above this many parts a text is sent only with a warning, unless ``max_segments`` says how many are fine.
PARTS_WARNING: Final = 10


def parts_warning(parts: int, max_segments: int | None, option: str = "max_segments") -> str | None:
    """The warning a text of ``parts`` parts deserves before it is sent (or stored), if any.

    ``option`` is how the caller spells ``max_segments`` (``--max-segments`` on the command line).
    """
    if parts <= PARTS_WARNING or max_segments is not None:
        return None
    return (
        f"the text needs {parts} SMS parts per recipient, and each part is charged; "
        f"pass {option} {parts} to confirm, or shorten it"
    )
