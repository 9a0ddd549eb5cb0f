"""Helpers shared by the command-line tests."""

from __future__ import annotations

from typing import TYPE_CHECKING

from click.testing import CliRunner, Result

from sms_async.cli import cli

if TYPE_CHECKING:
    from pathlib import Path

    from sms_async.testing import SimulatedGateway


def env_for(gw: SimulatedGateway, home: Path, **extra: str | None) -> dict[str, str | None]:
    """Credentials in the environment, and a home without any config file."""
    env: dict[str, str | None] = {
        "SMS_ASYNC_USERNAME": gw.username,
        "SMS_ASYNC_PASSWORD": gw.password,
        "SMS_ASYNC_BASE_URL": gw.iton_url,
        "SMS_ASYNC_TOKEN": None,
        "SMS_ASYNC_GATEWAY": None,
        "SMS_ASYNC_CONFIG": None,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
    }
    env.update(extra)
    return env


def invoke(args: list[str], env: dict[str, str | None], stdin: str | None = None) -> Result:
    """Run ``sms-async ARGS`` in-process."""
    return CliRunner().invoke(cli, args, env=env, input=stdin, catch_exceptions=False)
