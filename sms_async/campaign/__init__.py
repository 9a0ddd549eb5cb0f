"""Crash-safe campaigns: one text (or one per recipient) to a whole input, with a results file and a journal.

::

    from sms_async.campaign import run_campaign

    async with BulkSender(driver, default_region="IN") as bulk:
        report = await run_campaign(bulk, recipients, "Hello", sender_id="ITONAB", results="out.jsonl")
    report.totals          # inputs by outcome, as the results file holds them
    # killed (even kill -9)? the same call with resume=True sends what was not sent, never a batch twice

Layout: :mod:`._runner` (:class:`Campaign`, :func:`run_campaign`, the
report), :mod:`._store` (the SQLite :class:`~sms_async.Journal`, with group
commit), :mod:`._schema` (its tables and what identifies a campaign),
:mod:`._opening` (checks and resume preparation), :mod:`._lock` (one process
per campaign), :mod:`._results` (the results file, written and read back),
:mod:`._tally` (the one tally every figure comes from), :mod:`._errors`,
:mod:`._recipients` (reading an input file, checking a personalised text
against its columns) and :mod:`._estimate` (the offline dry run).
"""

from sms_async._journal import Admission, BatchState, Journal, numbers_digest, state_of
from sms_async.campaign._defaults import DEFAULT_GATEWAY, DEFAULT_REGION, PARTS_WARNING, parts_warning
from sms_async.campaign._errors import (
    PYTHON_NAMES,
    CampaignError,
    OptionNames,
    StorageError,
    StoreUnavailableError,
    no_input_message,
)
from sms_async.campaign._results import (
    COLUMNS,
    DELIVERY_COLUMNS,
    NOT_SETTLED,
    InputRows,
    ResultsEncoder,
    ResultsScan,
    Unsettled,
    encode_row,
    results_format,
    results_header,
    scan_results,
)
from sms_async.campaign._runner import Campaign, CampaignReport, default_journal, run_campaign
from sms_async.campaign._schema import Identity
from sms_async.campaign._settings import (
    ENV_CONFIG,
    ENV_DATABASE_URL,
    ENV_GATEWAY,
    ENV_PREFIX,
    FLAG_SETTINGS,
    SEND_DEFAULT_KEYS,
    ConfigFile,
    FoundSettings,
    GatewayChoice,
    choose_gateway,
    default_config_path,
    environment_settings,
    gateway_settings,
    is_secret_setting,
    load_config,
    setting_variable,
)
from sms_async.campaign._sqlite_store import DEFAULT_STORE_FILE, SqliteStore, sqlite_path
from sms_async.campaign._store import CampaignJournal
from sms_async.campaign._stored import (
    BATCH_STATES,
    STOPPED,
    CampaignStatus,
    Loading,
    Store,
    StoredCampaign,
    given_up_counts,
    settled_counts,
    status_from_totals,
)
from sms_async.campaign._tally import OUTCOMES, Tally

# isort: split
# Reading recipients, checking a personalised text and the offline estimate: what a dry run does.
from sms_async.campaign._estimate import OfflineEstimate, estimate_offline
from sms_async.campaign._recipients import (
    PHONE_COLUMNS,
    PYTHON_INPUT_NAMES,
    InputFormat,
    InputOptionNames,
    InputReadError,
    RecipientsInputError,
    RecipientSource,
    template_fields,
    template_for,
)

# isort: split
# Delivery tracking and sending windows: the pieces every store builds on.
from sms_async.campaign._delivery import (
    DeliveryBook,
    DeliveryState,
    DeliveryTally,
    DeliveryTracker,
    DueMessage,
    MemoryDeliveryBook,
    NumberDelivery,
    PollOutcome,
    PollRound,
    PollSchedule,
    settle,
)
from sms_async.campaign._windows import Schedule, ScheduleError, SendingWindows, wait_to_claim

# isort: split
from sms_async.campaign._bookkeeping import STATE_RANK_SQL, apply_outcomes

__all__ = [
    "BATCH_STATES",
    "COLUMNS",
    "DEFAULT_GATEWAY",
    "DEFAULT_REGION",
    "DEFAULT_STORE_FILE",
    "DELIVERY_COLUMNS",
    "ENV_PREFIX",
    "NOT_SETTLED",
    "OUTCOMES",
    "PARTS_WARNING",
    "PYTHON_NAMES",
    "STOPPED",
    "Admission",
    "BatchState",
    "Campaign",
    "CampaignError",
    "CampaignJournal",
    "CampaignReport",
    "CampaignStatus",
    "Identity",
    "InputRows",
    "Journal",
    "Loading",
    "OptionNames",
    "ResultsEncoder",
    "ResultsScan",
    "SqliteStore",
    "StorageError",
    "Store",
    "StoreUnavailableError",
    "StoredCampaign",
    "Tally",
    "Unsettled",
    "default_journal",
    "encode_row",
    "environment_settings",
    "given_up_counts",
    "no_input_message",
    "numbers_digest",
    "parts_warning",
    "results_format",
    "results_header",
    "run_campaign",
    "scan_results",
    "setting_variable",
    "settled_counts",
    "sqlite_path",
    "state_of",
    "status_from_totals",
]
__all__ += [
    "ENV_CONFIG",
    "ENV_DATABASE_URL",
    "ENV_GATEWAY",
    "FLAG_SETTINGS",
    "SEND_DEFAULT_KEYS",
    "ConfigFile",
    "FoundSettings",
    "GatewayChoice",
    "choose_gateway",
    "default_config_path",
    "gateway_settings",
    "is_secret_setting",
    "load_config",
]
__all__ += [
    "PHONE_COLUMNS",
    "PYTHON_INPUT_NAMES",
    "InputFormat",
    "InputOptionNames",
    "InputReadError",
    "OfflineEstimate",
    "RecipientSource",
    "RecipientsInputError",
    "estimate_offline",
    "template_fields",
    "template_for",
]
__all__ += [
    "DeliveryBook",
    "DeliveryState",
    "DeliveryTally",
    "DeliveryTracker",
    "DueMessage",
    "MemoryDeliveryBook",
    "NumberDelivery",
    "PollOutcome",
    "PollRound",
    "PollSchedule",
    "Schedule",
    "ScheduleError",
    "SendingWindows",
    "settle",
    "wait_to_claim",
]
__all__ += ["STATE_RANK_SQL", "apply_outcomes"]
