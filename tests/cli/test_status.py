"""``status``: the truth about unknown rows, and polling whose cost per report does not grow."""

from __future__ import annotations

from pathlib import Path

from cli_support import env_for, invoke

from sms_async.cli._status import ReportBook
from sms_async.testing import Fault


def send_args(source: Path, output: Path, *extra: str) -> list[str]:
    return ["send", str(source), "--text", "Hi", "--sender-id", "ITONAB", "-o", str(output), *extra]


def test_status_counts_unknown_rows_and_says_what_to_do(tmp_path, sms_gateway_factory):
    """Unknown rows have no id to look up: status counts them, says why and what to do, and exits 1."""
    gw = sms_gateway_factory(
        status_delays=(0.0, 0.0),
        faults=[Fault("status_500", on_requests={2}, operations={"iton.sendSMS"})],
    )
    source = tmp_path / "numbers.txt"
    source.write_text("".join(f"98{i:08d}\n" for i in range(300)))
    output = tmp_path / "results.jsonl"
    env = env_for(gw, tmp_path)
    assert invoke(send_args(source, output, "--concurrency", "1"), env).exit_code == 1
    result = invoke(["status", str(output)], env)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "100 rows are unknown" in text
    assert "no gateway supported here can look a message up by number" in text
    assert "portal" in text
    assert "--resume --resend-unknown" in text
    assert "delivered" in text  # the 200 accepted ones were looked up
    # Sending them again, knowingly, leaves nothing unknown.
    assert (
        invoke(send_args(source, output, "--concurrency", "1", "--resume", "--resend-unknown"), env).exit_code
        == 0
    )
    result = invoke(["status", str(output)], env)
    assert result.exit_code == 0, result.output
    assert "unknown" not in result.stdout


class _Counted:
    """A report whose finality is counted each time it is asked."""

    asked = 0

    def __init__(self, message_id: str, number: str | None, final: bool) -> None:
        self.message_id, self.number, self._final = message_id, number, final

    @property
    def is_final(self) -> bool:
        type(self).asked += 1
        return self._final


def test_report_book_work_per_report_does_not_grow():
    """Each report costs the book a fixed number of look-ups, however many it holds (linear polling)."""
    book = ReportBook()
    count = 5000
    for i in range(count):
        book.add(_Counted(f"id{i}", None, final=False))  # type: ignore[arg-type]
    for i in range(count):
        book.add(_Counted(f"id{i}", f"+9198{i:08d}", final=i % 2 == 0))  # type: ignore[arg-type]
    assert len(book) == count
    assert book.final == count // 2
    assert _Counted.asked <= 3 * 2 * count


def test_status_of_a_file_without_its_journal_never_advises_a_resume(tmp_path, sms_gateway_factory):
    """Unknown rows of a campaign's export: the advice names campaign commands, never --resend-unknown."""
    from sms_async import Outcome  # noqa: PLC0415
    from sms_async._models import Entry  # noqa: PLC0415
    from sms_async.campaign import Unsettled, encode_row  # noqa: PLC0415

    gw = sms_gateway_factory()
    exported = tmp_path / "export.jsonl"
    exported.write_text(
        encode_row(Entry(1, "9800000001", "+919800000001", Outcome.UNKNOWN, "", "lost"), "jsonl")
        + encode_row(Unsettled(2, "9800000002", "+919800000002"), "jsonl")
    )
    result = invoke(["status", str(exported)], env_for(gw, tmp_path))
    assert result.exit_code == 1, result.output
    text = " ".join(result.stdout.split())
    assert "1 rows are unknown" in text
    assert "no journal beside it" in text
    assert "sms-async campaign start sends only unsent ones" in text
    assert "1 rows are pending" in text
    assert "sms-async campaign export ID" in text
    assert "--resend-unknown" not in text
