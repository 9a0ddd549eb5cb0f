"""Gateway settings from the environment: one rule for the command line and the workers.

Each driver declares the settings it reads (``settings_keys``); each text
setting may come from ``SMS_ASYNC_<KEY>`` (``username`` from
``SMS_ASYNC_USERNAME``, ``send_path`` from ``SMS_ASYNC_SEND_PATH``), whatever
the gateway, so a new gateway's settings need no list kept here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

__all__ = ["ENV_PREFIX", "environment_settings", "setting_variable"]

#: What every variable the library reads starts with.
ENV_PREFIX: Final = "SMS_ASYNC_"
# Settings never read from the environment: a table of extra parameters, and the
# opt-in to plain http to another host, which must be asked for where it shows.
_NOT_FROM_ENVIRONMENT: Final = frozenset({"params", "allow_insecure_http"})


def setting_variable(key: str) -> str:
    """The environment variable of a driver's settings key (``base_url`` -> ``SMS_ASYNC_BASE_URL``)."""
    return ENV_PREFIX + key.upper()


def environment_settings(keys: Iterable[str], env: Mapping[str, str]) -> dict[str, str]:
    """The settings among ``keys`` that ``env`` gives (empty values count as not given)."""
    found: dict[str, str] = {}
    for key in sorted(keys):
        if key in _NOT_FROM_ENVIRONMENT:
            continue
        value = env.get(setting_variable(key))
        if value:
            found[key] = value
    return found
