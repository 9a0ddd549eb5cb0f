"""The leak checks fail the test that leaves an SQLite or PostgreSQL connection open, on every Python."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def run_pytest(
    directory: Path, check: str = "every_sqlite_connection_closed"
) -> subprocess.CompletedProcess[str]:
    (directory / "conftest.py").write_text(f"from leak_checks import {check}\n")
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return subprocess.run(  # noqa: S603 - this interpreter running pytest
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:asyncio", str(directory)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        cwd=directory,
        check=False,
        timeout=120,
    )


def test_a_connection_left_open_fails_its_test(tmp_path):
    """A test that leaves a connection open errors at teardown, naming where it was opened; closing passes."""
    (tmp_path / "test_sample.py").write_text(
        "import contextlib, sqlite3\n"
        "\n"
        "KEPT = []\n"
        "\n"
        "def test_leaves_one_open():\n"
        "    KEPT.append(sqlite3.connect(':memory:'))\n"
        "\n"
        "def test_closes_its_own():\n"
        "    with contextlib.closing(sqlite3.connect(':memory:')) as conn:\n"
        "        conn.execute('SELECT 1')\n"
    )
    done = run_pytest(tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR at teardown of test_leaves_one_open" in done.stdout
    assert "1 SQLite connection(s) left open" in done.stdout
    assert 'test_sample.py", line 6, in test_leaves_one_open' in done.stdout
    assert "2 passed, 1 error" in done.stdout  # the leaking test ran, then its teardown failed
