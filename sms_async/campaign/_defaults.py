"""Defaults every face of a campaign shares: named once, for the library, the workers and the command line."""

from __future__ import annotations

from typing import Final

__all__ = ["DEFAULT_GATEWAY", "DEFAULT_REGION"]

#: The gateway used when nothing names one.
DEFAULT_GATEWAY: Final = "iton"
#: The region of national spellings (``098123 45678``) when nothing names one.
DEFAULT_REGION: Final = "IN"
