"""The manual builds strictly and documents the public SDKs; the repository cites nothing outside itself."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sms_async.providers
import sms_async.testing

ROOT = Path(__file__).parents[1]
DOCS = ROOT / "docs"
# Files that are read as text; generated and installed trees are left out.
SCANNED = ("sms_async", "tests", "docs", "benchmarks")
TOP = ("README.md", "pyproject.toml", "noxfile.py", "mkdocs.yml")
# Spelled in pieces so that this file does not cite them itself.
OUTSIDE = ("DESIGN" + ".md", "provider" + "-docs", "../" + "shared")


def text_files() -> list[Path]:
    files = [ROOT / name for name in TOP if (ROOT / name).exists()]
    for folder in SCANNED:
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file()
            and path.suffix in {".py", ".md", ".toml", ".yml", ".txt", ".cfg"}
            and "__pycache__" not in path.parts
        ]
    return files


def test_no_file_cites_a_file_outside_the_repository():
    """No source, test, benchmark or page names a document the repository does not hold."""
    offenders = [
        f"{path.relative_to(ROOT)}: {word}"
        for path in text_files()
        for word in OUTSIDE
        if word in path.read_text(encoding="utf-8", errors="replace")
    ]
    assert not offenders


def nav_pages() -> set[str]:
    """The pages ``mkdocs.yml``'s nav names (entries ending in ``.md``)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:") :]
    return set(re.findall(r"^\s*-\s*(?:[^\n]*?:\s*)?([\w./-]+\.md)\s*$", nav, re.MULTILINE))


def test_every_page_is_in_the_nav_and_every_nav_entry_exists():
    """A page left out of the nav cannot be found; a nav entry without a page breaks the build."""
    pages = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    listed = nav_pages()
    assert "index.md" in listed
    assert pages - listed == set()
    assert listed - pages == set()


@pytest.mark.parametrize(
    ("module", "page"),
    [(sms_async.providers, "providers.md"), (sms_async.testing, "testing.md")],
)
def test_every_sdk_name_has_its_reference(module, page):
    """The API reference renders every name the gateway SDK and the simulator export."""
    text = (DOCS / "reference" / "api" / page).read_text()
    documented = set(re.findall(rf"^::: {re.escape(module.__name__)}\.(\w+)", text, re.MULTILINE))
    assert set(module.__all__) - {"Iton", "ItecPay"} <= documented


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="pip install -e '.[docs]'")
def test_the_manual_builds_strictly(tmp_path):
    """``mkdocs build --strict`` passes: no broken link or anchor, no reference to a missing name."""
    built = subprocess.run(  # noqa: S603  (our own interpreter)
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "reference" / "api" / "providers" / "index.html").exists()
