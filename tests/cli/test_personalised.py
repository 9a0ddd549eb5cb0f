"""Personalised texts from the command line: ``--text "Hi {name}"`` filled from each CSV row."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from cli_support import env_for, invoke


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def people(count: int) -> str:
    return "name,phone,order\n" + "".join(f"P{i},98{i:08d},#{1000 + i}\n" for i in range(count))


def test_each_row_gets_its_own_text(tmp_path, sms_gateway):
    """Fields come from the row's columns; a row without a field's cell is invalid, naming the field."""
    gw = sms_gateway
    source = tmp_path / "people.csv"
    source.write_text(people(40) + "Short,9899999999\n")
    output = tmp_path / "results.jsonl"
    args = [
        "send",
        str(source),
        "--text",
        "Hi {name}, order {order} ships",
        "-s",
        "ITONAB",
        "-o",
        str(output),
    ]
    result = invoke(args, env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output
    texts = {n: m.text for m in gw.messages.values() for n in m.numbers}
    assert texts["919800000007"] == "Hi P7, order #1007 ships"
    assert len(texts) == 40
    rows = read_rows(output)
    assert Counter(r["outcome"] for r in rows) == {"accepted": 40, "invalid": 1}
    short = next(r for r in rows if r["outcome"] == "invalid")
    assert short["input"] == "9899999999"
    assert "'order'" in short["reason"]
    assert short["row"] == 42


def test_a_field_no_column_fills_is_refused(tmp_path, sms_gateway):
    """A field that is not a column, or fields with a one-number-per-line input, are usage errors (exit 2)."""
    gw = sms_gateway
    source = tmp_path / "people.csv"
    source.write_text(people(3))
    result = invoke(
        ["send", str(source), "--text", "Hi {nmae}", "-s", "ITONAB", "-o", str(tmp_path / "r.jsonl")],
        env_for(gw, tmp_path),
    )
    assert result.exit_code == 2
    assert "{nmae}" in result.stderr
    assert "'name', 'phone', 'order'" in result.stderr
    lines = tmp_path / "numbers.txt"
    lines.write_text("9812345678\n")
    result = invoke(
        ["send", str(lines), "--text", "Hi {name}", "-s", "ITONAB", "-o", str(tmp_path / "r.jsonl")],
        env_for(gw, tmp_path),
    )
    assert result.exit_code == 2
    assert "needs a CSV input" in result.stderr
    assert sum(gw.stats.requests.values()) == 0


def test_dry_run_shows_parts_and_cost_per_text_shape(tmp_path, sms_gateway):
    """A personalised dry run shows the fewest and most parts per text and the total cost."""
    source = tmp_path / "people.csv"
    source.write_text("name,phone\nAnu,9800000001\n" + "Z" * 200 + ",9800000002\nBo,9800000003\n")
    result = invoke(
        ["send", str(source), "--text", "Hello {name}", "-s", "ITONAB", "--dry-run"],
        env_for(sms_gateway, tmp_path),
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "3 distinct valid numbers" in out
    assert "1 to 2 per text (fewest to most)" in out
    assert "4 credits in all" in out
    assert sum(sms_gateway.stats.requests.values()) == 0


def test_resume_refuses_rows_whose_texts_changed(tmp_path, sms_gateway):
    """The journal holds each batch's text digest: a resumed input rendering other texts is refused."""
    gw = sms_gateway
    output = tmp_path / "results.jsonl"
    args = ["send", "-", "--text", "Hi {name}", "-s", "ITONAB", "-o", str(output), "--column", "phone"]
    env = env_for(gw, tmp_path)
    assert invoke(args, env, stdin=people(20)).exit_code == 0
    changed = people(20).replace("P3,", "Somebody,")
    result = invoke([*args, "--resume"], env, stdin=changed)
    assert result.exit_code == 2, result.output
    assert "differs" in result.stderr
    assert len(gw.messages) == 20
