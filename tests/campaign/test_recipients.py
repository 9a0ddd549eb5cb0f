"""What ``send --dry-run`` does, from Python alone: read recipients, check a text, estimate offline."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from sms_async import BulkSender, Iton, Outcome, Template
from sms_async.campaign import (
    PARTS_WARNING,
    Campaign,
    CampaignError,
    InputReadError,
    RecipientsInputError,
    RecipientSource,
    estimate_offline,
    template_fields,
    template_for,
)


def write_customers(path: Path) -> Path:
    """A CSV of five valid numbers, one repeated in another spelling, one invalid and one empty cell."""
    path.write_text(
        "name,phone,city\n"
        "Asha,9810000001,Pune\n"
        "Ravi,+91 98100 00002,Delhi\n"
        "Meera,098100 00003,Kochi\n"
        "\n"
        "Asha again,+919810000001,Pune\n"
        "Dev,n/a,Goa\n"
        "Kabir,,Agra\n"
        "Isha,9810000004,Pune\n"
        "Neel,9810000005,Jaipur\n",
        encoding="utf-8",
    )
    return path


def test_a_dry_run_in_python_alone(tmp_path):
    """A CSV read, a personalised text checked and the estimate counted, with no command-line module."""
    script = f"""
import sys
from sms_async.campaign import RecipientSource, estimate_offline, template_fields, template_for

text = "Hi {{name}}, your order ships to {{city}}"
path = {str(write_customers(tmp_path / "customers.csv"))!r}
source = RecipientSource(path, as_rows=bool(template_fields(text)))
try:
    estimate = estimate_offline(source, template_for(text, source), sender_id="ITONAB", region="IN")
finally:
    source.close()
print(source.column, estimate.inputs, estimate.recipients, estimate.duplicates, estimate.invalid,
      estimate.tally.empty, estimate.cost, estimate.warning)
print(sorted(name for name in sys.modules if name.startswith("sms_async.cli")))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)  # noqa: S603
    counts, imported = done.stdout.splitlines()
    assert counts == "phone 8 5 1 2 1 5 None"
    assert imported == "[]"


async def test_the_estimate_counts_what_a_send_sends(tmp_path, sms_gateway):
    """The offline estimate's recipients and outcomes are those of the send after it, input for input."""
    gw = sms_gateway
    customers = write_customers(tmp_path / "customers.csv")
    with RecipientSource(str(customers)) as source:
        estimate = estimate_offline(source, "Hello", sender_id="ITONAB")
    driver = Iton(username=gw.username, password=gw.password, base_url=gw.iton_url)
    with RecipientSource(str(customers)) as source:
        fingerprint, approx = source.fingerprint()
        campaign = Campaign(tmp_path / "out.jsonl", input_fingerprint=fingerprint, rows=source)
        async with BulkSender(driver, default_region="IN") as bulk:
            report = await campaign.run(bulk, source, "Hello", sender_id="ITONAB")
    assert approx == 9  # lines after the header, the blank one too
    assert estimate.recipients == len(gw.stats.numbers) == len(set(gw.stats.numbers)) == 5
    assert report.totals[Outcome.ACCEPTED] == estimate.recipients
    assert report.totals[Outcome.DUPLICATE] == estimate.duplicates == 1
    assert report.totals[Outcome.INVALID] == estimate.invalid == 2
    assert (
        report.totals.total == estimate.inputs == estimate.recipients + estimate.duplicates + estimate.invalid
    )
    assert estimate.cost == report.totals.credits == 5


def test_rows_keep_their_csv_row_numbers_and_columns(tmp_path):
    """Each input is told with its CSV row (the header is row 1, a blank line counts) and its other cells."""
    with RecipientSource(str(write_customers(tmp_path / "c.csv")), keep_columns=True) as source:
        numbers = list(source)
        assert source.columns == ["name", "city"]
        assert numbers[3] == "+919810000001"
        assert source.take(4) == (6, ("Asha again", "Pune"))
        assert source.take(1) == (2, ("Asha", "Pune"))


def test_the_phone_column_is_found_by_its_name_or_asked_for(tmp_path):
    """A CSV's phone column is found by a usual name; without one, the error names the columns and column=."""
    found = tmp_path / "found.csv"
    found.write_text("Name,Mobile,City\nA,9810000001,X\n")
    with RecipientSource(str(found)) as source:
        assert list(source) == ["9810000001"]
        assert source.column == "Mobile"
    unclear = tmp_path / "unclear.csv"
    unclear.write_text("name,home,work\nA,9810000001,9810000002\n")
    with pytest.raises(
        RecipientsInputError, match=r"choose the one with the numbers with column=: 'name', 'home'"
    ):
        RecipientSource(str(unclear))
    with pytest.raises(RecipientsInputError, match="has no column 'phone'"):
        RecipientSource(str(unclear), column="phone")
    with pytest.raises(RecipientsInputError, match="no such file"):
        RecipientSource(str(tmp_path / "missing.csv"))


def test_a_text_file_reads_one_number_a_line(tmp_path):
    """A file of lines hands out each non-blank line as read, numbered by its line; keep_columns needs CSV."""
    lines = tmp_path / "numbers.txt"
    lines.write_text("9810000001\n\n 98100 00002 \n")
    with RecipientSource(str(lines)) as source:
        assert list(source) == ["9810000001", " 98100 00002 "]
        assert source.take(2) == (3, ())
    with pytest.raises(
        RecipientsInputError, match=r'keep_columns=True needs a CSV input.*input_format="csv"'
    ):
        RecipientSource(str(lines), keep_columns=True)


def test_the_fingerprint_changes_with_the_input_and_how_it_is_read(tmp_path):
    """A resume's fingerprint differs for another file content or another column, and is stable otherwise."""
    path = tmp_path / "c.csv"
    path.write_text("phone,alt\n9810000001,9810000002\n")

    def fingerprint(column: str | None = None) -> str:
        with RecipientSource(str(path), column=column) as source:
            return source.fingerprint()[0]

    first = fingerprint("phone")
    assert fingerprint("phone") == first
    assert fingerprint("alt") != first
    path.write_text("phone,alt\n9810000009,9810000002\n")
    assert fingerprint("phone") != first


def test_an_unreadable_row_is_an_error_naming_it(tmp_path):
    """A CSV that stops being readable part-way raises InputReadError, naming the row."""
    path = tmp_path / "broken.csv"
    path.write_text('phone,note\n9810000001,ok\n9810000002,"' + "x" * 200_000 + '"\n')
    with RecipientSource(str(path)) as source, pytest.raises(InputReadError, match="row 3: cannot read on"):
        list(source)


def test_template_fields_and_a_field_no_column_fills(tmp_path):
    """Fields are found in order, a lone brace is plain text, and a field no column fills is refused."""
    assert template_fields("Hi {name}, {city} and {name}") == ("name", "city")
    assert template_fields("a { brace") == ()
    assert template_fields("Hello") == ()
    with RecipientSource(str(write_customers(tmp_path / "c.csv")), as_rows=True) as source:
        template = template_for("Hi {name}", source)
        assert isinstance(template, Template)
        assert template.number == "phone"
        with pytest.raises(RecipientsInputError, match=r"text uses \{order\}, which .* has no column for"):
            template_for("Hi {name}, order {order}", source)


def test_the_estimate_warns_of_a_long_text(tmp_path):
    """A text of more parts than the threshold is counted with the parts warning; max_segments silences it."""
    text = "x" * (153 * (PARTS_WARNING + 1))
    estimate = estimate_offline(["9810000001", "9810000002"], text, sender_id="ITONAB")
    assert estimate.message is not None
    assert estimate.message.segments == PARTS_WARNING + 1
    assert estimate.cost == 2 * (PARTS_WARNING + 1)
    assert estimate.warning is not None
    assert f"pass max_segments {PARTS_WARNING + 1} to confirm" in estimate.warning
    quiet = estimate_offline(["9810000001"], text, sender_id="ITONAB", max_segments=PARTS_WARNING + 1)
    assert quiet.warning is None
    assert Counter(quiet.encodings) == {"GSM-7": 1}


@pytest.mark.parametrize("option", ["resend_unknown", "resend_rejected"])
def test_resending_without_resume_is_refused(tmp_path, option):
    """resend_unknown or resend_rejected on a new campaign is an error naming resume=True, not ignored."""
    with pytest.raises(CampaignError, match=rf"{option}=True goes with resume=True"):
        Campaign(tmp_path / "out.jsonl", **{option: True})
    Campaign(tmp_path / "out.jsonl", resume=True, **{option: True})
