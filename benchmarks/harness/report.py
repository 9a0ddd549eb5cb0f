"""The benchmark's results: rows over the rounds, the targets, the Markdown report.

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
from harness.services import CreateSample

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
        return (
            f"{self.gateway} {self.spelling}{texts} {self.recipients // 1000}k "
            f"c={self.concurrency} {self.latency_ms}ms {self.loop}"
        )


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

    @property
    def bytes_per_number(self) -> float:
        """Peak RSS above the RSS before the run, per recipient (the whole growth, not only the keys)."""
        return max((s.rss_peak_kb - s.rss_start_kb) * 1024 / s.recipients for s in self.samples)


@dataclass(frozen=True)
class KeysRow:
    """The key store a stream uses, fed ``size`` distinct numbers: bytes a number held."""

    size: int
    bytes_per_number: float
    #: The most it held a number at any point from 10,000 numbers to ``size``.
    worst_bytes_per_number: float


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
            if self.needs.startswith("not measured"):
                return self.needs
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
    keys: list[KeysRow] = field(default_factory=list)
    norm: list[NormRow] = field(default_factory=list)
    campaign: CreateSample | None = None
    campaign_missing: str | None = None
    cluster: dict[str, Any] | None = None
    cluster_missing: str | None = None


# ---------------------------------------------------------------------------- targets

#: The goals at E.164, c=64, uvloop (throughput as a ratio to raw aiohttp).
CPU_LIMIT = 1.1
THROUGHPUT_MIN, THROUGHPUT_AIM = 0.9, 1.0
NATIONAL_MIN = 0.8
LATENCY_MIN = 0.98
STREAM_SIZE, STREAM_RSS_MB = 1_000_000, 70
KEY_BYTES = 16
CAMPAIGN_SECONDS, CAMPAIGN_RSS_MB = 40, 250
WORKER_MIN, STORE_MS = 0.85, 0.3


def find_row(rows: list[Row], client: str, **where: Any) -> Row | None:
    for row in rows:
        if row.client == client and all(getattr(row.config, k) == v for k, v in where.items()):
            return row
    return None


def targets(report: Report) -> list[Target]:
    """The targets, CPU first, at each size measured; a row not measured in this run shows as "not run"."""
    names = (("iton", "ITON"), ("itecpay", "ItecPay"))
    at = {"concurrency": 64, "loop": "uvloop", "texts": "one"}
    sizes = sorted({r.config.recipients for r in report.rows if r.config.texts == "one"}) or [100_000]

    def pair(gateway: str, spelling: str, latency: int, size: int) -> tuple[Row | None, Row | None]:
        where = {**at, "gateway": gateway, "spelling": spelling, "latency_ms": latency, "recipients": size}
        return find_row(report.rows, "send", **where), find_row(report.rows, "aiohttp", **where)

    out = []
    for size in sizes:
        for gateway, name in names:
            send, base = pair(gateway, "e164", 0, size)
            detail = (
                f"{send.cpu_us_per_request:.0f} vs {base.cpu_us_per_request:.0f} µs" if send and base else ""
            )
            out.append(
                Target(
                    f"`send` client CPU per request / raw aiohttp's, {name}, {size:,}, E.164, 0 ms",
                    send.cpu_ratio if send else None,
                    CPU_LIMIT,
                    "<=",
                    detail=detail,
                    rounds=tuple(send.cpu_ratios) if send else (),
                )
            )
    cases = (
        ("E.164, 0 ms", "e164", 0, THROUGHPUT_MIN, THROUGHPUT_AIM, ""),
        ("national `098123 45678`, 0 ms", "national", 0, NATIONAL_MIN, None, "--rows national"),
        ("E.164, 20 ms", "e164", 20, LATENCY_MIN, None, "--rows latency"),
    )
    for what, spelling, latency, threshold, aim, needs in cases:
        for size in sizes:
            for gateway, name in names:
                send, _ = pair(gateway, spelling, latency, size)
                out.append(
                    Target(
                        f"`send` recipients/s / raw aiohttp's, {name}, {size:,}, {what}",
                        send.ratio if send else None,
                        threshold,
                        aim=aim,
                        rounds=tuple(send.ratios) if send else (),
                        needs=needs,
                    )
                )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for gateway, name in names:
            first, _ = pair(gateway, "e164", 0, small)
            last, _ = pair(gateway, "e164", 0, large)
            both = first is not None and last is not None
            out.append(
                Target(
                    f"`send` / raw aiohttp at {large:,} over the same at {small:,}, {name}, 0 ms",
                    last.ratio / first.ratio if first and last else None,
                    1.0,
                    detail=f"{last.ratio:.2f} vs {first.ratio:.2f}" if first and last else "",
                    rounds=tuple(a / b for a, b in zip(last.ratios, first.ratios, strict=True))
                    if both
                    else (),
                )
            )
    stream = next((r for r in report.scale if r.size == STREAM_SIZE), None)
    out.append(
        Target(
            f"`stream` of {STREAM_SIZE:,} distinct numbers from a generator, peak RSS",
            stream.rss_peak_mb if stream else None,
            STREAM_RSS_MB,
            "<=",
            " MB",
            detail=f"{stream.rss_start_mb:.0f} MB before the run" if stream else "",
            needs="--rows stream",
        )
    )
    worst = max(report.keys, key=lambda r: r.worst_bytes_per_number, default=None)
    out.append(
        Target(
            "`stream`'s key store, bytes a number, at most from 10,000 up"
            + (f" to {worst.size:,}" if worst else ""),
            worst.worst_bytes_per_number if worst else None,
            KEY_BYTES,
            "<=",
            " B",
            needs="--rows keys",
        )
    )
    cluster = report.cluster
    if cluster is not None:
        ratio = cluster["throughput"]["cluster, 1 worker"]["ratio_to_send"]
        store = cluster["store"]["claim_settle_16_at_a_time_ms"]
    out.append(
        Target(
            "one cluster worker / one `BulkSender.send` process, 20 ms, "
            f"{cluster['recipients'] if cluster else 200_000:,}",
            ratio if cluster else None,
            WORKER_MIN,
            needs=report.cluster_missing or "--rows cluster",
        )
    )
    out.append(
        Target(
            "the cluster store's claim + settle of a batch (16 at a time)",
            store if cluster else None,
            STORE_MS,
            "<=",
            " ms",
            needs=report.cluster_missing or "--rows cluster",
        )
    )
    created = report.campaign
    size = f"{created.inputs:,}" if created else "10,000,000"
    missing = report.campaign_missing or "--rows campaign"
    out.append(
        Target(f"`campaign create` of {size}, time", created.seconds if created else None, CAMPAIGN_SECONDS,
               "<=", " s", needs=missing)
    )  # fmt: skip
    out.append(
        Target(f"`campaign create` of {size}, peak RSS", created.rss_peak_kb / 1024 if created else None,
               CAMPAIGN_RSS_MB, "<=", " MB", needs=missing)
    )  # fmt: skip
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
    if report.keys:
        lines += ["", "## `stream`'s de-duplication key store: bytes a number", "", *keys_table(report.keys)]
    if report.campaign or report.campaign_missing:
        lines += ["", "## `campaign create`", "", *campaign_lines(report)]
    if report.cluster or report.cluster_missing:
        lines += [
            "",
            "## One cluster worker beside one `BulkSender.send` process",
            "",
            *cluster_lines(report),
        ]
    if report.norm:
        lines += ["", "## Phone normalisation alone", "", *norm_table(report.norm)]
    return "\n".join(lines) + "\n\n" + NOTES


def keys_table(rows: list[KeysRow]) -> list[str]:
    lines = ["| numbers | bytes a number held | most on the way from 10,000 |", "|---:|---:|---:|"]
    lines.extend(f"| {r.size:,} | {r.bytes_per_number:.1f} | {r.worst_bytes_per_number:.1f} |" for r in rows)
    return lines


def campaign_lines(report: Report) -> list[str]:
    created = report.campaign
    if created is None:
        return [f"{report.campaign_missing}."]
    row = (
        f"| {created.inputs:,} | {created.seconds:.1f} | {created.inputs / created.seconds:,.0f} "
        f"| {created.rss_peak_kb / 1024:.0f} |"
    )
    how = (
        "`python -m sms_async campaign create FILE` in a process of its own, into a schema of its own "
        "(1 % of the lines repeat the line before, 1 % are not numbers); peak RSS from `wait4`."
    )
    return ["| lines | s | lines/s | peak RSS MB |", "|---:|---:|---:|---:|", row, "", how]


def cluster_lines(report: Report) -> list[str]:
    cluster = report.cluster
    if cluster is None:
        return [f"{report.cluster_missing}."]
    lines = ["| runner | recipients/s | x `BulkSender.send` |", "|---|---:|---:|"]
    lines += [
        f"| {kind} | {found['recipients_per_s']:,.0f} | {found['ratio_to_send']:.2f} |"
        for kind, found in cluster["throughput"].items()
    ]
    store = cluster["store"]
    how = (
        f"{cluster['recipients']:,} recipients, 20 ms gateway latency, {cluster['rounds']} alternating "
        "rounds (`benchmarks/bench_cluster.py`). The store a batch: claim + settle "
        f"{store['claim_settle_one_at_a_time_ms']:.2f} ms one at a time, "
        f"{store['claim_settle_16_at_a_time_ms']:.2f} ms 16 at a time; "
        f"rate reservation {store['reserve_ms']:.2f} ms."
    )
    return [*lines, "", how]


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
            "| RSS before the run MB | peak RSS MB | growth B a recipient |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {r.size:,} | {r.seconds:.1f} "
        f"| {r.us_per_recipient:.2f} | {r.cpu_us_per_recipient:.2f} "
        f"| {1e6 / r.us_per_recipient:,.0f} | {r.rss_start_mb:.1f} | {r.rss_peak_mb:.1f} "
        f"| {r.bytes_per_number:.1f} |"
        for r in rows
    )
    return lines


def flatness(rows: list[ScaleRow], how: str = "") -> str:
    if not rows:
        return ""
    smallest, largest = rows[0], rows[-1]
    wall = largest.us_per_recipient / smallest.us_per_recipient
    cpu = largest.cpu_us_per_recipient / smallest.cpu_us_per_recipient
    text = (
        f"{how}time per recipient at {largest.size:,} is {wall:.2f}x that at {smallest.size:,} "
        f"(client CPU per recipient: {cpu:.2f}x)."
    )
    return text[0].upper() + text[1:]


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
  its memory beyond the start is mostly the de-duplication key store
  ("growth B a recipient": peak RSS above the RSS before the run, per
  recipient; the key store's own bytes a number have a table of their own).
"""


def write_json(path: Path, report: Report) -> None:
    """Every sample, for whoever wants more than medians."""
    data = {
        "rows": [
            {"config": asdict(r.config), "client": r.client, "samples": [asdict(s) for s in r.samples]}
            for r in report.rows
        ],
        "scale": [{"size": r.size, "samples": [asdict(s) for s in r.samples]} for r in report.scale],
        "keys": [asdict(k) for k in report.keys],
        "normalisation": [asdict(n) for n in report.norm],
        "campaign": asdict(report.campaign) if report.campaign else report.campaign_missing,
        "cluster": report.cluster or report.cluster_missing,
    }
    path.write_text(json.dumps(data, indent=1) + "\n")
