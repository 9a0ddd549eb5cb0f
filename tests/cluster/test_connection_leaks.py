"""The PostgreSQL leak check fails the test that leaves a connection open (see tests/leak_checks.py)."""

from __future__ import annotations

from cluster_support import DATABASE_URL, require_postgres
from test_leak_checks import run_pytest


def test_a_postgresql_connection_left_open_fails_its_test(tmp_path):
    """A PostgreSQL connection left open errors at teardown, naming where it was opened; closing passes."""
    require_postgres()
    (tmp_path / "test_sample.py").write_text(
        "import psycopg\n"
        "\n"
        "KEPT = []\n"
        f"URL = {DATABASE_URL!r}\n"
        "\n"
        "def test_leaves_one_open():\n"
        "    KEPT.append(psycopg.connect(URL))\n"
        "\n"
        "def test_closes_its_own():\n"
        "    with psycopg.connect(URL) as conn:\n"
        "        conn.execute('SELECT 1')\n"
    )
    done = run_pytest(tmp_path, "every_postgresql_connection_closed")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "ERROR at teardown of test_leaves_one_open" in done.stdout
    assert "1 PostgreSQL connection(s) left open" in done.stdout
    assert 'test_sample.py", line 7, in test_leaves_one_open' in done.stdout
    assert "2 passed, 1 error" in done.stdout
