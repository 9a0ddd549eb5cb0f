"""The benchmark's results: rows over the rounds, the targets of issue 14, the Markdown report.

Every figure is a median over alternating rounds; every ratio is the median
of per-round ratios to the raw aiohttp loop measured in the same round and
configuration. Client CPU per request comes first wherever a client is shown:
it counts only the time the client process ran, so it is the steadier figure
on a shared machine.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.clients import Sample

#: Every client, in the order the report shows them; each round rotates the order they run in.
CLIENTS = ("bare", "aiohttp", "httpx", "send", "stream")
#: The national-spelling and personalised cases: the limit, the reference and ``send``.
REFERENCE_CLIENTS = ("bare", "aiohttp", "send")
SHOWN = {"bare": "bare (limit)"}


@dataclass(frozen=True)
class Config:
    """One cell of the matrix: every client in ``clients`` sends to the same recipients."""

    gateway: str
    concurrency: int
    latency_ms: int
    loop: str
    spelling: str = "e164"
    recipients: int = 100_000
    clients: tuple[str, ...] = CLIENTS
    texts: str = "one"  # or "personal": a text per recipient, one number per request

    @property
    def label(self) -> str:
        texts = " personal" if self.texts == "personal" else ""
        return f"{self.gateway} {self.spelling}{texts} c={self.concurrency} {self.latency_ms}ms {self.loop}"


@dataclass
class Row:
    """One client in one configuration, over the rounds."""

    config: Config
    client: str
    samples: list[Sample] = field(default_factory=list)
    #: Per round: this client's recipients/s over the raw aiohttp loop's.
    ratios: list[float] = field(default_factory=list)
    #: Per round: this client's CPU per request over the raw aiohttp loop's.
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def recipients_per_round(self) -> float:
        return statistics.median(s.recipients for s in self.samples)

    @property
    def recipients_per_s(self) -> float:
        return statistics.median(s.recipients / s.seconds for s in self.samples)

    @property
    def requests_per_s(self) -> float:
        return statistics.median(s.requests / s.seconds for s in self.samples)

    @property
    def cpu_us_per_request(self) -> float:
        return statistics.median(s.cpu / s.requests * 1e6 for s in self.samples)

    @property
    def rss_mb(self) -> float:
        return max(s.rss_peak_kb for s in self.samples) / 1024

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(self.cpu_ratios)


def add_ratios(rows: list[Row]) -> None:
    """Each row's per-round ratios to the raw aiohttp loop of its configuration."""
    base = {row.config: row.samples for row in rows if row.client == "aiohttp"}
    for row in rows:
        for mine, theirs in zip(row.samples, base[row.config], strict=True):
            row.ratios.append((mine.recipients / mine.seconds) / (theirs.recipients / theirs.seconds))
            row.cpu_ratios.append((mine.cpu / mine.requests) / (theirs.cpu / theirs.requests))


@dataclass
class ScaleRow:
    """``stream`` over a generator of ``size`` recipients, over the rounds."""

    size: int
    samples: list[Sample] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def us_per_recipient(self) -> float:
        return statistics.median(s.seconds / s.recipients * 1e6 for s in self.samples)

    @property
    def cpu_us_per_recipient(self) -> float:
        return statistics.median(s.cpu / s.recipients * 1e6 for s in self.samples)

    @property
    def rss_start_mb(self) -> float:
        return max(s.rss_start_kb for s in self.samples) / 1024

    @property
    def rss_peak_mb(self) -> float:
        return max(s.rss_peak_kb for s in self.samples) / 1024


@dataclass(frozen=True)
class NormRow:
    """Phone normalisation alone, for one spelling."""

    spelling: str
    fast_per_s: float
    reference_per_s: float

    @property
    def speedup(self) -> float:
        return self.fast_per_s / self.reference_per_s


@dataclass(frozen=True)
class Target:
    """A goal to report against (never a test)."""

    name: str
    measured: float | None  # None: not measured in this run
    threshold: float
    op: str = ">="  # how measured must compare with threshold: ">=", "<=" or "<"
    unit: str = "x"
    aim: float | None = None  # where we would like to be, beyond the threshold
    detail: str = ""  # the figures behind a ratio
    rounds: tuple[float, ...] = ()  # the per-round values the measured median comes from
    needs: str = ""  # the preset that measures it, when not every run does

    @property
    def verdict(self) -> str:
        if self.measured is None:
            return f"not run{f' (needs {self.needs})' if self.needs else ''}"
        met = {
            ">=": self.measured >= self.threshold,
            "<=": self.measured <= self.threshold,
            "<": self.measured < self.threshold,
        }[self.op]
        return "met" if met else "missed"

    @property
    def margin(self) -> str:
        if self.measured is None:
            return "-"
        if self.op == ">=":
            return f"{self.measured / self.threshold - 1:+.0%}"
        return f"{self.threshold / self.measured - 1:+.0%}"

    def line(self) -> str:
        digits = 2 if self.unit == "x" else 1
        if self.measured is not None and round(self.measured, digits) == round(self.threshold, digits):
            digits += 1  # so that a miss by a hair does not print as the threshold itself
        shown = "-" if self.measured is None else f"{self.measured:.{digits}f}{self.unit}"
        if self.detail and self.measured is not None:
            shown += f" ({self.detail})"
        wanted = f"{self.op} {self.threshold:g}{self.unit}"
        if self.aim is not None:
            wanted += f" (aim {self.aim:g}{self.unit})"
        rounds = " / ".join(f"{r:.2f}" for r in self.rounds) or "-"
        return f"| {self.name} | {shown} | {wanted} | {self.verdict} | {self.margin} | {rounds} |"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    scale: list[ScaleRow] = field(default_factory=list)
    norm: list[NormRow] = field(default_factory=list)


# ---------------------------------------------------------------------------- targets

#: Issue 14's goals at E.164, c=64, uvloop (throughput as a ratio to raw aiohttp).
CPU_LIMIT = 1.25
THROUGHPUT_MIN, THROUGHPUT_AIM = 0.8, 0.9
NATIONAL_MIN = 0.7
LATENCY_MIN = 0.95
STREAM_SIZE, STREAM_RSS_MB = 10_000_000, 400


def find_row(rows: list[Row], client: str, **where: Any) -> Row | None:
    for row in rows:
        if row.client == client and all(getattr(row.config, k) == v for k, v in where.items()):
            return row
    return None


def targets(report: Report) -> list[Target]:
    """The targets, CPU first; a row not measured in this run shows as "not run"."""
    names = (("iton", "ITON"), ("itecpay", "ItecPay"))
    at = {"concurrency": 64, "loop": "uvloop", "texts": "one"}

    def pair(gateway: str, spelling: str, latency: int) -> tuple[Row | None, Row | None]:
        where = {**at, "gateway": gateway, "spelling": spelling, "latency_ms": latency}
        return find_row(report.rows, "send", **where), find_row(report.rows, "aiohttp", **where)

    out = []
    for gateway, name in names:
        send, base = pair(gateway, "e164", 0)
        detail = f"{send.cpu_us_per_request:.0f} vs {base.cpu_us_per_request:.0f} µs" if send and base else ""
        out.append(
            Target(
                f"`send` client CPU per request / raw aiohttp's, {name}, E.164, 0 ms, c=64, uvloop",
                send.cpu_ratio if send else None,
                CPU_LIMIT,
                "<=",
                detail=detail,
                rounds=tuple(send.cpu_ratios) if send else (),
            )
        )
    cases = (
        ("E.164, 0 ms", "e164", 0, THROUGHPUT_MIN, THROUGHPUT_AIM, ""),
        ("national `098123 45678`, 0 ms", "national", 0, NATIONAL_MIN, None, ""),
        ("E.164, 20 ms", "e164", 20, LATENCY_MIN, None, "--full or --latency 0 20"),
    )
    for what, spelling, latency, threshold, aim, needs in cases:
        for gateway, name in names:
            send, _ = pair(gateway, spelling, latency)
            out.append(
                Target(
                    f"`send` recipients/s / raw aiohttp's, {name}, {what}, c=64, uvloop",
                    send.ratio if send else None,
                    threshold,
                    aim=aim,
                    rounds=tuple(send.ratios) if send else (),
                    needs=needs,
                )
            )
    largest = next((r for r in report.scale if r.size == STREAM_SIZE), None)
    out.append(
        Target(
            f"`stream` of {STREAM_SIZE:,} distinct numbers from a generator, peak RSS",
            largest.rss_peak_mb if largest else None,
            STREAM_RSS_MB,
            "<",
            " MB",
            detail=f"{largest.seconds:.0f} s" if largest else "",
        )
    )
    return out


# ---------------------------------------------------------------------------- the Markdown


def render(header: list[str], report: Report) -> str:
    lines = [
        "# sms_async benchmark results",
        "",
        *header,
        "",
        "## Targets",
        "",
        "| target | measured | wanted | result | margin | each round |",
        "|---|---:|---:|---|---:|---|",
        *(t.line() for t in targets(report)),
    ]
    one = [r for r in report.rows if r.config.texts == "one"]
    personal = [r for r in report.rows if r.config.texts == "personal"]
    if one:
        lines += ["", "## CPU, throughput and memory per configuration (one text)", "", *matrix_table(one)]
    if personal:
        lines += [
            "",
            "## Personalised texts (a text per recipient, so one number per request)",
            "",
            *matrix_table(personal),
        ]
    if report.scale:
        lines += ["", "## `stream` from a generator: memory and time per recipient", ""]
        lines += scale_table(report.scale)
        lines += ["", flatness(report.scale)]
    if report.norm:
        lines += ["", "## Phone normalisation alone", "", *norm_table(report.norm)]
    return "\n".join(lines) + "\n\n" + NOTES


def matrix_table(rows: list[Row]) -> list[str]:
    lines = [
        (
            "| gateway | numbers | c | latency | loop | client | client CPU µs/request | x aiohttp (CPU) "
            "| recipients/s | requests/s | x aiohttp (throughput) | recipients a round | peak RSS MB |"
        ),
        "|---|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        c = row.config
        lines.append(
            f"| {c.gateway} | {c.spelling} | {c.concurrency} | {c.latency_ms} ms | {c.loop} "
            f"| {SHOWN.get(row.client, row.client)} | {row.cpu_us_per_request:.0f} | {row.cpu_ratio:.2f} "
            f"| {row.recipients_per_s:,.0f} | {row.requests_per_s:,.0f} | {row.ratio:.2f} "
            f"| {row.recipients_per_round:,.0f} | {row.rss_mb:.1f} |"
        )
    return lines


def scale_table(rows: list[ScaleRow]) -> list[str]:
    lines = [
        (
            "| recipients | run s | µs per recipient | client CPU µs per recipient | recipients/s "
            "| RSS before the run MB | peak RSS MB |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r.size:,} | {r.seconds:.1f} | {r.us_per_recipient:.2f} | {r.cpu_us_per_recipient:.2f} "
        f"| {1e6 / r.us_per_recipient:,.0f} | {r.rss_start_mb:.1f} | {r.rss_peak_mb:.1f} |"
        for r in rows
    )
    return lines


def flatness(rows: list[ScaleRow]) -> str:
    smallest, largest = rows[0], rows[-1]
    wall = largest.us_per_recipient / smallest.us_per_recipient
    cpu = largest.cpu_us_per_recipient / smallest.cpu_us_per_recipient
    return (
        f"Time per recipient at {largest.size:,} is {wall:.2f}x that at {smallest.size:,} "
        f"(client CPU per recipient: {cpu:.2f}x)."
    )


def norm_table(rows: list[NormRow]) -> list[str]:
    lines = [
        "| spelling | fast path numbers/s | phonenumbers numbers/s | speed-up |",
        "|---|---:|---:|---:|",
    ]
    lines.extend(
        f"| {n.spelling} | {n.fast_per_s:,.0f} | {n.reference_per_s:,.0f} | {n.speedup:.1f}x |" for n in rows
    )
    return lines


NOTES = """\
Notes:

- client CPU is `time.process_time()` of the client process over the timed run,
  per request; recipients/s, requests/s and CPU are medians over the rounds.
  With one text, every request carries 100 recipients (the last of a round may
  carry fewer), so the requests/s ratio is the recipients/s ratio; with
  personalised texts every request carries one.
- "x aiohttp" columns are medians of per-round ratios to the raw aiohttp loop
  of the same configuration (CPU: lower is better; throughput: higher is better).
- bare (limit): `c` keep-alive connections on an `asyncio.Protocol`, writing
  the drivers' pre-built request bytes and reading just enough of each answer
  (head, Content-Length body) to count it: no validation, no accounting. The
  floor any client can reach against this gateway on this event loop.
- raw loops: `c` tasks over one `aiohttp.ClientSession` / `httpx.AsyncClient`
  limited to `c` connections, sending requests built before the clock starts
  by the drivers themselves (`prepare_send(...).build(batch)`), URL objects
  included. `send` / `stream` get the recipients as a list of strings (or of
  `(number, text)` pairs) and do everything else on the clock: normalising,
  de-duplicating, batching, building, parsing, and for `send` reading
  `result.message_ids` (its length and a look-up) and `result.failed`, which
  merge the settled batches when first read.
- every timed run is checked outside the clock against the simulated
  gateway's counter of accepted numbers, besides the client's own count.
- raw httpx starts no request after 2 s of a round (it goes through a prefix
  of the same requests): its pool makes it far slower here.
- national: `098123 45678`-style inputs with `default_region="IN"`; the raw
  and bare clients send the requests for the same numbers, built from E.164.
- peak RSS is the client process's `ru_maxrss`, one fresh process per
  measurement; with list inputs it includes the list (and, for the raw and
  bare clients, the pre-built requests).
- `stream` from a generator reads numbers made one at a time, never a list;
  its memory beyond the start is mostly the de-duplication key store.
"""


def write_json(path: Path, report: Report) -> None:
    """Every sample, for whoever wants more than medians."""
    data = {
        "rows": [
            {"config": asdict(r.config), "client": r.client, "samples": [asdict(s) for s in r.samples]}
            for r in report.rows
        ],
        "scale": [{"size": r.size, "samples": [asdict(s) for s in r.samples]} for r in report.scale],
        "normalisation": [asdict(n) for n in report.norm],
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
