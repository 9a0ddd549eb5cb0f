"""Loading the service recipe (docs/how-to/service_app.py) and reading the records it logs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sms_async.testing import SimulatedGateway

RECIPE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "service_app.py"


def load_recipe() -> ModuleType:
    """A fresh copy of the recipe's module."""
    spec = importlib.util.spec_from_file_location("service_app", RECIPE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["service_app"] = module
    spec.loader.exec_module(module)
    return module


def recipe_environment(gw: SimulatedGateway, **settings: str) -> dict[str, str]:
    """The environment the recipe reads, aimed at the simulated gateway."""
    return {
        "ITON_USERNAME": gw.username,
        "ITON_PASSWORD": gw.password,
        "ITON_URL": gw.iton_url,
        **settings,
    }


def set_environment(monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]) -> None:
    """Put ``environment`` in ``os.environ`` for one test."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)


def records(lines: list[str]) -> list[dict[str, Any]]:
    """The JSON records the recipe logged, one per call, from its log lines."""
    found = []
    for line in lines:
        start = line.find("{")
        if start >= 0 and '"unread"' in line:
            found.append(json.loads(line[start:]))
    return found


def check_record(record: dict[str, Any], given: list[str], received: set[str]) -> None:
    """One call's record accounts for each number it was given; none it calls unsent was received."""
    accepted, failed = record["accepted"], record["failed"]
    assert not set(accepted) & set(failed)
    assert len(accepted) + len(failed) + record["unread"] == len(given)
    assert set(accepted) | set(failed) <= set(given)
    assert sum(record["counts"].values()) == len(accepted) + len(failed)
    assert set(record["unsent"]) == {n for n, o in failed.items() if o == "unsent"}
    assert not set(record["unsent"]) & received
    settled = set(accepted) | set(failed)
    # A number never read was never sent.
    assert not (set(given) - settled) & received
    # What the gateway carried out was accepted, or reported unknown.
    assert {n for n in given if n in received} <= set(accepted) | set(record["unknown"])
