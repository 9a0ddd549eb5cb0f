r"""The campaign store's tables, and the statements that move a batch between states.

Tables (in one schema, ``sms_async`` unless configured)::

    campaigns  one row per campaign: the text (or the template of texts per
               recipient), sender id, gateway name and parameters (such as
               DLT ids), region, rate and queue, the names of the input's
               kept columns; its state; counts of what was loaded. Never a
               credential or a user name.
    inputs     one row per input, in input order (position is 1-based): where
               it came from (its line or CSV row), the raw input, its E.164
               form, its kept columns, and, for an input settled without
               sending (invalid, repeated), its outcome and reason.
    batches    one row per batch the batcher cut: its shard, its place among
               the inputs, its text (for texts per recipient) and its parts,
               the digest of its numbers (and text), its state, who holds
               it, and a count per outcome.
    results    one row per number sent (or given up): outcome, message id, reason, and for a
               number with a message id its delivery state, the gateway's word and when it became final.
    deliveries one row per message id to poll: when it was accepted, polls made, the next
               poll's time (none once no number of it is pending), and the lease of the poller on it.
    runners    one row per shard run in progress, with its heartbeat.
    meters     one row per gateway account: its rate schedule and 429 pause.
    poll_chains one row per campaign started on workers: the generation of its delivery polling
               chain (each ``campaign start`` makes a new one; a poll task of an older one ends).

A batch's states::

    pending --claim--> sending --settle--> sent | rejected | unknown
       ^                 |  \\--settle, every number unsent--> pending (settled: sent again by a later start)
       \\---release------/   \\--owner's heartbeat lost--> unknown (never sent again)

``claim`` is one UPDATE that only a ``pending`` batch of a running campaign
passes, so only one runner ever sends a batch, whatever the queue does.
"""

# The statements are built from this module's constants and the Outcome
# enum's values, never from input; the schema name is checked by check_schema.
# ruff: noqa: S608

from __future__ import annotations

from typing import Final

from sms_async._models import Outcome
from sms_async.campaign import STATE_RANK_SQL, given_up_counts, settled_counts

__all__ = ["OUTCOMES", "ddl", "poll_chains_ddl", "sql"]

#: Outcome count columns of ``batches``, in this order.
OUTCOMES: Final = tuple(Outcome)
_COUNTS: Final = ", ".join(f"{o.value} integer NOT NULL DEFAULT 0" for o in OUTCOMES)

SCHEMA_VERSION: Final = 3

# Every statement names its tables as {s}.table; {s} is a schema name checked
# by check_schema (letters, digits and underscores only), quoted.
_DDL: Final = f"""
CREATE SCHEMA IF NOT EXISTS {{s}};
CREATE TABLE IF NOT EXISTS {{s}}.store_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS {{s}}.campaigns (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    state          text NOT NULL
                   CHECK (state IN ('loading', 'ready', 'running', 'done', 'cancelled', 'aborted')),
    gateway        text NOT NULL,
    region         text NOT NULL,
    sender_id      text NOT NULL,
    text           text NOT NULL,
    personal       boolean NOT NULL DEFAULT false,
    params         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    columns        text[] NOT NULL DEFAULT '{{}}',
    max_segments   integer,
    skip_dnd       boolean NOT NULL,
    rate           double precision,
    queue          text NOT NULL,
    input_name     text NOT NULL,
    max_batch      integer NOT NULL,
    shard_size     integer NOT NULL,
    inputs         bigint NOT NULL DEFAULT 0,
    recipients     bigint NOT NULL DEFAULT 0,
    batches        integer NOT NULL DEFAULT 0,
    started_at     timestamptz,
    finished_at    timestamptz,
    stop_reason    text,
    windows        text,
    timezone       text,
    start_at       text,
    report_share   double precision NOT NULL DEFAULT 0.1,
    paused         boolean NOT NULL DEFAULT false
);
CREATE TABLE IF NOT EXISTS {{s}}.inputs (
    campaign   bigint NOT NULL,
    position   bigint NOT NULL,
    row        bigint NOT NULL,
    raw        text NOT NULL,
    e164       text NOT NULL,
    kept       text[],
    outcome    text,
    reason     text,
    PRIMARY KEY (campaign, position)
);
CREATE TABLE IF NOT EXISTS {{s}}.batches (
    campaign         bigint NOT NULL,
    idx              integer NOT NULL,
    shard            integer NOT NULL,
    first_position   bigint NOT NULL,
    size             integer NOT NULL,
    numbers          integer NOT NULL,
    text             text,
    parts            integer NOT NULL DEFAULT 0,
    digest           text NOT NULL,
    state            text NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'rejected', 'unknown')),
    settled          boolean NOT NULL DEFAULT false,
    lost             boolean NOT NULL DEFAULT false,
    owner            text,
    claimed_at       timestamptz,
    settled_at       timestamptz,
    requests         integer NOT NULL DEFAULT 0,
    retries          integer NOT NULL DEFAULT 0,
    local_invalid    integer NOT NULL DEFAULT 0,
    local_duplicate  integer NOT NULL DEFAULT 0,
    {_COUNTS},
    PRIMARY KEY (campaign, idx)
);
CREATE INDEX IF NOT EXISTS batches_unfinished ON {{s}}.batches (campaign, idx)
    WHERE state = 'sending' OR (state = 'pending' AND NOT settled);
CREATE TABLE IF NOT EXISTS {{s}}.results (
    campaign    bigint NOT NULL,
    position    bigint NOT NULL,
    outcome     text NOT NULL,
    message_id  text,
    reason      text,
    delivery    text,
    delivery_raw text,
    delivered_at timestamptz,
    PRIMARY KEY (campaign, position)
);
CREATE INDEX IF NOT EXISTS results_message ON {{s}}.results (campaign, message_id)
    WHERE delivery IS NOT NULL;
CREATE TABLE IF NOT EXISTS {{s}}.deliveries (
    campaign      bigint NOT NULL,
    message_id    text NOT NULL,
    accepted_at   timestamptz NOT NULL,
    polls         integer NOT NULL DEFAULT 0,
    next_poll_at  timestamptz,
    lease_until   timestamptz,
    lease_owner   text,
    PRIMARY KEY (campaign, message_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON {{s}}.deliveries (campaign, next_poll_at)
    WHERE next_poll_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {{s}}.runners (
    id          text PRIMARY KEY,
    campaign    bigint NOT NULL,
    shard       integer NOT NULL,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {{s}}.meters (
    key           text PRIMARY KEY,
    tat           double precision NOT NULL DEFAULT 0,
    paused_until  double precision NOT NULL DEFAULT 0
);
"""
# Added after store version 3 was made, in a table of its own, so that a store made by an
# earlier release of version 3 gains it without a new version: ``install`` and ``campaign
# start`` create it where it is missing (CREATE ... IF NOT EXISTS takes no lock on the other tables).
_POLL_CHAINS_DDL: Final = """
CREATE TABLE IF NOT EXISTS {s}.poll_chains (
    campaign    bigint PRIMARY KEY,
    generation  bigint NOT NULL
);
"""

# Seconds since the epoch on the database's clock: the one clock every worker shares.
_NOW: Final = "extract(epoch FROM clock_timestamp())"
_UNFINISHED: Final = "(b.state = 'sending' OR (b.state = 'pending' AND NOT b.settled))"
_LIVE_OWNER: Final = (
    "EXISTS (SELECT 1 FROM {s}.runners r WHERE r.id = b.owner "
    "AND r.seen_at > now() - make_interval(secs => %(lease)s))"
)
_RUNNING: Final = "EXISTS (SELECT 1 FROM {s}.campaigns c WHERE c.id = %(campaign)s AND c.state = 'running')"
# A settled batch's counts, from its object in a settle's JSON array.
_SET_COUNTS: Final = settled_counts("(s.counts->>'{}')::integer", "b.")
# Every number of the selected batches, given up with one outcome and reason.
_GIVE_UP_ROWS: Final = (
    "INSERT INTO {s}.results (campaign, position, outcome, message_id, reason) "
    "SELECT %(campaign)s, i.position, %(outcome)s, NULL, %(reason)s "
    "FROM given_up g JOIN {s}.inputs i ON i.campaign = %(campaign)s "
    "AND i.position BETWEEN g.first_position AND g.first_position + g.size - 1 "
    "WHERE i.outcome IS NULL "
    "ON CONFLICT (campaign, position) DO UPDATE SET outcome = excluded.outcome, message_id = NULL, "
    "reason = excluded.reason WHERE {s}.results.outcome <> 'skipped'"
)
_ZERO_NUMBERS: Final = given_up_counts("b.")

_SQL: Final = {
    # -- loading -------------------------------------------------------------------------
    "insert_campaign": (
        "INSERT INTO {s}.campaigns (state, gateway, region, sender_id, text, personal, params, columns, "
        "max_segments, skip_dnd, rate, queue, input_name, max_batch, shard_size, windows, timezone, "
        "start_at, report_share) VALUES ('loading', "
        "%(gateway)s, %(region)s, %(sender_id)s, %(text)s, %(personal)s, %(params)s, %(columns)s, "
        "%(max_segments)s, %(skip_dnd)s, %(rate)s, %(queue)s, %(input_name)s, %(max_batch)s, "
        "%(shard_size)s, %(windows)s, %(timezone)s, %(start_at)s, %(report_share)s) RETURNING id"
    ),
    "copy_inputs": "COPY {s}.inputs (campaign, position, row, kept, raw, e164, outcome, reason) FROM STDIN",
    "copy_batches": (
        "COPY {s}.batches (campaign, idx, shard, first_position, size, numbers, text, parts, digest, state, "
        "settled, "
        f"local_invalid, local_duplicate, {Outcome.INVALID.value}, {Outcome.DUPLICATE.value}) FROM STDIN"
    ),
    "loaded": (
        "UPDATE {s}.campaigns SET state = 'ready', inputs = %(inputs)s, recipients = %(recipients)s, "
        "batches = %(batches)s WHERE id = %(campaign)s"
    ),
    # -- the life of a campaign -------------------------------------------------------------
    "campaign": (
        "SELECT id, state, gateway, region, sender_id, text, personal, params, columns, max_segments, "
        "skip_dnd, rate, queue, input_name, max_batch, shard_size, inputs, recipients, batches, created_at, "
        "started_at, finished_at, stop_reason, windows, timezone, start_at, report_share, paused "
        "FROM {s}.campaigns WHERE id = %(campaign)s"
    ),
    "start": (
        "UPDATE {s}.campaigns SET state = 'running', started_at = coalesce(started_at, now()), "
        "finished_at = NULL, stop_reason = NULL "
        "WHERE id = %(campaign)s AND state IN ('ready', 'running', 'done', 'aborted') RETURNING id"
    ),
    # Unsent batches of an earlier run are sent again by a new start.
    "retry_unsent": (
        "UPDATE {s}.batches SET settled = false "
        "WHERE campaign = %(campaign)s AND state = 'pending' AND settled"
    ),
    "shards_to_run": (
        "SELECT DISTINCT b.shard FROM {s}.batches b WHERE b.campaign = %(campaign)s AND "
        f"{_UNFINISHED} ORDER BY b.shard"
    ),
    "stop": (
        "UPDATE {s}.campaigns SET state = %(state)s, stop_reason = %(reason)s, finished_at = now() "
        "WHERE id = %(campaign)s AND state = ANY(%(from_states)s) RETURNING id"
    ),
    # Batches nobody holds become unsent (a skipped number stays skipped).
    "give_up_pending": (
        "WITH given_up AS (UPDATE {s}.batches b SET settled = true, settled_at = now(), owner = NULL, "
        f"{_ZERO_NUMBERS}, unknown = 0, unsent = b.numbers - b.skipped "
        "WHERE b.campaign = %(campaign)s AND b.state = 'pending' RETURNING b.first_position, b.size) "
        + _GIVE_UP_ROWS
    ),
    # Batches whose sender stopped heartbeating while sending them: unknown, never sent again.
    "reap": (
        "WITH given_up AS (UPDATE {s}.batches b SET state = 'unknown', settled = true, lost = true, "
        f"settled_at = now(), {_ZERO_NUMBERS}, unknown = b.numbers - b.skipped, unsent = 0 "
        "WHERE b.campaign = %(campaign)s AND b.idx BETWEEN %(first)s AND %(last)s AND b.state = 'sending' "
        f"AND NOT {_LIVE_OWNER} RETURNING b.first_position, b.size), "
        f"written AS ({_GIVE_UP_ROWS}) SELECT count(*) FROM given_up"
    ),
    "finish": (
        "UPDATE {s}.campaigns SET state = 'done', finished_at = now() "
        "WHERE id = %(campaign)s AND state = 'running' AND NOT EXISTS "
        f"(SELECT 1 FROM {{s}}.batches b WHERE b.campaign = %(campaign)s AND {_UNFINISHED}) RETURNING id"
    ),
    "totals": (
        f"SELECT {', '.join(f'coalesce(sum({o.value}), 0)' for o in OUTCOMES)}, "
        "count(*) FILTER (WHERE state = 'pending' AND NOT settled), "
        "count(*) FILTER (WHERE state = 'pending' AND settled), "
        "count(*) FILTER (WHERE state = 'sending'), "
        "count(*) FILTER (WHERE state = 'sent'), "
        "count(*) FILTER (WHERE state = 'rejected'), "
        "count(*) FILTER (WHERE state = 'unknown'), "
        f"coalesce(sum({Outcome.ACCEPTED.value} * parts), 0), "
        "coalesce(min(parts) FILTER (WHERE parts > 0), 0), "
        "coalesce(max(parts), 0), coalesce(sum(requests), 0), coalesce(sum(retries), 0) "
        "FROM {s}.batches WHERE campaign = %(campaign)s"
    ),
    "export": (
        "SELECT i.row, i.raw, i.e164, coalesce(r.outcome, i.outcome), coalesce(r.message_id, ''), "
        "coalesce(r.reason, i.reason, ''), i.kept, coalesce(r.delivery, ''), r.delivered_at "
        "FROM {s}.inputs i LEFT JOIN {s}.results r "
        "ON r.campaign = i.campaign AND r.position = i.position "
        "WHERE i.campaign = %(campaign)s ORDER BY i.position"
    ),
    # Seconds since anyone last worked on the campaign: a run's heartbeat, a claim, a
    # settle, or its start (on the database's clock, the one every process shares).
    "idle_for": (
        "SELECT extract(epoch FROM now() - greatest(c.started_at, "
        "(SELECT max(r.seen_at) FROM {s}.runners r WHERE r.campaign = c.id), "
        "(SELECT max(greatest(b.claimed_at, b.settled_at)) FROM {s}.batches b WHERE b.campaign = c.id))) "
        "FROM {s}.campaigns c WHERE c.id = %(campaign)s"
    ),
    # -- a shard run --------------------------------------------------------------------
    "register_runner": (
        "INSERT INTO {s}.runners (id, campaign, shard, host, pid) VALUES "
        "(%(runner)s, %(campaign)s, %(shard)s, %(host)s, %(pid)s) "
        "ON CONFLICT (id) DO UPDATE SET seen_at = now()"
    ),
    "heartbeat": (
        "WITH seen AS (UPDATE {s}.runners SET seen_at = now() WHERE id = %(runner)s) "
        "SELECT CASE WHEN paused AND state = 'running' THEN 'paused' ELSE state END "
        "FROM {s}.campaigns WHERE id = %(campaign)s"
    ),
    "unregister_runner": "DELETE FROM {s}.runners WHERE id = %(runner)s",
    "unfinished": (
        "SELECT b.idx, b.first_position, b.size, b.numbers, b.digest, b.state, b.owner, b.text "
        "FROM {s}.batches b WHERE b.campaign = %(campaign)s AND b.idx BETWEEN %(first)s AND %(last)s "
        f"AND {_UNFINISHED} ORDER BY b.idx"
    ),
    "numbers": (
        "SELECT position, e164 FROM {s}.inputs WHERE campaign = %(campaign)s "
        "AND position BETWEEN %(first)s AND %(last)s AND outcome IS NULL ORDER BY position"
    ),
    # The one statement a batch is won with: pending and not given up (or already
    # ours, when the commit's answer was lost) in a running campaign. "Not given
    # up" is checked on the batch's own row: a claim that queued behind a
    # cancel's give-up reads the row again once the cancel commits, but not the
    # campaign's state, so without it the batch would be sent while counted unsent.
    "claim": (
        "UPDATE {s}.batches b SET state = 'sending', owner = %(runner)s, claimed_at = now() "
        "WHERE b.campaign = %(campaign)s AND b.idx = %(idx)s "
        "AND ((b.state = 'pending' AND NOT b.settled) OR (b.state = 'sending' AND b.owner = %(runner)s)) "
        f"AND {_RUNNING} AND NOT EXISTS (SELECT 1 FROM {{s}}.campaigns c WHERE c.id = %(campaign)s "
        "AND c.paused) RETURNING b.idx"
    ),
    "release": (
        "UPDATE {s}.batches SET state = 'pending', owner = NULL "
        "WHERE campaign = %(campaign)s AND idx = %(idx)s AND state = 'sending' AND owner = %(runner)s"
    ),
    # Batches of a campaign settled at about the same time, in one statement
    # (one round trip, one commit): ``idxs`` and ``batches``, a JSON array of
    # objects, one a batch, with its idx, runner, state, requests, retries, a
    # count per outcome, accepted_at, first_poll, and its rows. Each is settled
    # if it is its runner's while sending it (or reaped while the runner still
    # had it: its answer is the truth); or nobody's, given up unsent because the
    # campaign stopped. The rows travel as arrays [position, outcome,
    # message_id, reason] inside the one JSON document (jsonb: read once, not at
    # every field): encoding it costs a fraction of dumping arrays of a hundred
    # values each. The batches are picked by key (campaign, idx = ANY): a join
    # alone may be planned as a scan of every batch when the table's statistics
    # are stale. Answers those settled.
    "settle": (
        "WITH s AS (SELECT (x->>'idx')::integer AS idx, "
        "x->>'runner' AS runner, x->>'state' AS state, (x->>'requests')::integer AS requests, "
        "(x->>'retries')::integer AS retries, (x->>'accepted_at')::timestamptz AS accepted_at, "
        "(x->>'first_poll')::timestamptz AS first_poll, x->'rows' AS rows, x->'counts' AS counts "
        "FROM jsonb_array_elements(%(batches)s::jsonb) AS x), "
        "won AS (UPDATE {s}.batches b SET state = s.state, settled = true, settled_at = now(), "
        "owner = CASE WHEN s.state = 'pending' THEN NULL ELSE b.owner END, lost = false, "
        f"requests = b.requests + s.requests, retries = b.retries + s.retries, {_SET_COUNTS} "
        "FROM s WHERE b.campaign = %(campaign)s AND b.idx = ANY(%(idxs)s::integer[]) AND b.idx = s.idx AND ("
        "(b.owner = s.runner AND (b.state = 'sending' OR (b.state = 'unknown' AND b.lost))) "
        f"OR (b.state = 'pending' AND b.owner IS NULL AND s.state = 'pending' AND NOT {_RUNNING})"
        ") RETURNING b.idx), "
        "mine AS (SELECT s.* FROM s JOIN won ON won.idx = s.idx), "
        "written AS (INSERT INTO {s}.results (campaign, position, outcome, message_id, reason, delivery) "
        "SELECT %(campaign)s, (r->>0)::bigint, r->>1, nullif(r->>2, ''), nullif(r->>3, ''), "
        "CASE WHEN r->>2 <> '' AND r->>1 IN ('accepted', 'unknown') THEN 'pending' END "
        "FROM mine m, jsonb_array_elements(m.rows) AS r "
        "ON CONFLICT (campaign, position) DO UPDATE SET outcome = excluded.outcome, "
        "message_id = excluded.message_id, reason = excluded.reason, "
        "delivery = coalesce({s}.results.delivery, excluded.delivery)), "
        # Each message id with a number to track, due for its first poll.
        "tracked AS (INSERT INTO {s}.deliveries (campaign, message_id, accepted_at, next_poll_at) "
        "SELECT DISTINCT ON (r->>2) %(campaign)s, r->>2, m.accepted_at, m.first_poll "
        "FROM mine m, jsonb_array_elements(m.rows) AS r "
        "WHERE r->>2 <> '' AND r->>1 IN ('accepted', 'unknown') "
        "ON CONFLICT (campaign, message_id) DO NOTHING) "
        "SELECT idx FROM won"
    ),
    # Which batches of a settle tried again (``batches``: [idx, state]) are settled as it
    # said (its first try may have committed).
    "settled_as": (
        "SELECT b.idx FROM {s}.batches b JOIN json_array_elements(%(batches)s::json) AS x "
        "ON b.idx = (x->>0)::integer WHERE b.campaign = %(campaign)s AND b.idx = ANY(%(idxs)s::integer[]) "
        "AND b.settled AND b.state = x->>1"
    ),
    # -- delivery, pause ------------------------------------------------------------------------
    "delivery_tally": (
        "SELECT delivery, count(*) FROM {s}.results WHERE campaign = %(campaign)s AND delivery IS NOT NULL "
        "GROUP BY delivery"
    ),
    # Ids due, leased to one poller: another poller's lease is skipped until it runs out.
    "due": (
        "UPDATE {s}.deliveries d SET lease_until = %(until)s, lease_owner = %(owner)s FROM ("
        "SELECT message_id FROM {s}.deliveries WHERE campaign = %(campaign)s AND next_poll_at <= %(now)s "
        "AND (lease_until IS NULL OR lease_until <= %(now)s OR lease_owner = %(owner)s) "
        "ORDER BY next_poll_at, message_id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) due "
        "WHERE d.campaign = %(campaign)s AND d.message_id = due.message_id "
        "RETURNING d.message_id, d.accepted_at, d.polls, d.next_poll_at"
    ),
    # The numbers of polled ids whose state may still move (a final one never does).
    "tracked_numbers": (
        "SELECT r.position, r.message_id, i.e164, r.delivery, coalesce(r.delivery_raw, ''), r.delivered_at "
        "FROM {s}.results r JOIN {s}.inputs i ON i.campaign = r.campaign AND i.position = r.position "
        "WHERE r.campaign = %(campaign)s AND r.delivery IN ('pending', 'expired') "
        "AND r.message_id = ANY(%(ids)s) "
        "ORDER BY r.position FOR UPDATE OF r"
    ),
    # A state only moves to a higher rank (or, while pending, to the gateway's latest word).
    "record_numbers": (
        "UPDATE {s}.results r SET delivery = c->>1, delivery_raw = c->>2, "
        "delivered_at = (c->>3)::timestamptz FROM json_array_elements(%(changes)s::json) AS c "
        "WHERE r.campaign = %(campaign)s AND r.position = (c->>0)::bigint AND ("
        f"{STATE_RANK_SQL.format('r.delivery')} < {STATE_RANK_SQL.format('c->>1')} "
        "OR (r.delivery = 'pending' AND c->>1 = 'pending'))"
    ),
    "record_polls": (
        "UPDATE {s}.deliveries d SET polls = d.polls + 1, next_poll_at = (p->>1)::timestamptz, "
        "lease_until = NULL, lease_owner = NULL FROM json_array_elements(%(polls)s::json) AS p "
        "WHERE d.campaign = %(campaign)s AND d.message_id = p->>0"
    ),
    # An id another poller holds is due when its lease ends.
    "next_due": (
        "SELECT min(CASE WHEN lease_owner <> %(owner)s AND lease_until > next_poll_at THEN lease_until "
        "ELSE next_poll_at END) FROM {s}.deliveries WHERE campaign = %(campaign)s "
        "AND next_poll_at IS NOT NULL"
    ),
    "set_paused": (
        "UPDATE {s}.campaigns SET paused = %(paused)s WHERE id = %(campaign)s AND paused <> %(paused)s "
        "AND state NOT IN ('done', 'cancelled', 'aborted') RETURNING id"
    ),
    # -- the shared rate and pause of an account ------------------------------------------------
    # GCRA: reserve the next slot of the account's schedule, never earlier than
    # now or the end of a pause; answer how long to wait for it.
    "reserve": (
        "INSERT INTO {s}.meters AS m (key, tat) "
        f"VALUES (%(key)s, {_NOW} + %(seconds)s) "
        "ON CONFLICT (key) DO UPDATE SET tat = "
        f"greatest(m.tat, {_NOW}, m.paused_until) + %(seconds)s "
        f"RETURNING m.tat - %(seconds)s - {_NOW}"
    ),
    "pause": (
        "INSERT INTO {s}.meters AS m (key, paused_until) "
        f"VALUES (%(key)s, {_NOW} + %(seconds)s) "
        "ON CONFLICT (key) DO UPDATE SET paused_until = greatest(m.paused_until, excluded.paused_until)"
    ),
    "paused_for": f"SELECT greatest(paused_until - {_NOW}, 0) FROM {{s}}.meters WHERE key = %(key)s",
    # -- the delivery polling chain of a campaign on workers -----------------------------------
    # A new generation: poll tasks of older ones end without polling.
    "new_poll_chain": (
        "INSERT INTO {s}.poll_chains AS p (campaign, generation) VALUES (%(campaign)s, 1) "
        "ON CONFLICT (campaign) DO UPDATE SET generation = p.generation + 1 RETURNING p.generation"
    ),
    "poll_chain": "SELECT generation FROM {s}.poll_chains WHERE campaign = %(campaign)s",
}


def ddl(schema: str) -> str:
    """The statements that create the store in ``schema`` (idempotent)."""
    return (_DDL + _POLL_CHAINS_DDL).replace("{s}", f'"{schema}"')


def poll_chains_ddl(schema: str) -> str:
    """The statement that adds the poll chains' table to a store of ``schema`` that lacks it (idempotent)."""
    return _POLL_CHAINS_DDL.replace("{s}", f'"{schema}"')


def sql(schema: str) -> dict[str, str]:
    """Every statement, with its tables in ``schema``."""
    quoted = f'"{schema}"'
    return {name: text.replace("{s}", quoted) for name, text in _SQL.items()}
