"""What every simulated gateway has, whatever its protocol: accounts, credits, messages, statuses, DND.

:class:`GatewayState` is the shared half of the simulator: the protocols in
``_iton.py``, ``_itecpay.py`` (and any registered one) read requests and write
answers in their gateway's words, and call this for everything else, so that
credits, ids, delivery statuses and the counters behave alike on every gateway.
Everything here runs on the server's event loop thread.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
import time
from typing import TYPE_CHECKING, Final, Literal

import attrs

from sms_async._text import analyse

if TYPE_CHECKING:
    import random
    from collections.abc import Iterable, Mapping

    from sms_async._clock import Clock
    from sms_async.testing._delivery import DeliveryPlan, RequestLog
    from sms_async.testing._stats import GatewayStats

__all__ = ["Account", "DndAction", "GatewayState", "Outcome", "SentMessage", "Stage"]

DndAction = Literal["allow", "omit", "refuse"]
#: Where a message is on its way: queued (first half of the queued delay),
#: processing (second half), sent, then final (see :meth:`GatewayState.outcome`).
Stage = Literal["queued", "processing", "sent", "final"]
#: How a number of a message ends.
Outcome = Literal["delivered", "undelivered", "failed"]

# Consecutive ids share all but their last three hex digits, which come from this table.
_HEX3: Final = tuple(f"{n:03x}" for n in range(4096))


@attrs.frozen
class SentMessage:
    """A message the simulated gateway accepted, as it stores it.

    Attributes:
        message_id: The id it issued.
        gateway: The name of the protocol that accepted it (``"iton"``, ``"itecpay"``).
        numbers: The numbers it covers, as they were sent.
        text: The message text, exactly as received (each request keeps its own).
        sender: The sender id as received.
        username: The account that sent it.
        unicode: ITON's ``uniCode`` parameter as received (``None`` elsewhere).
        created: When it was accepted, on the gateway's status clock
            (``time.monotonic()`` plus any ``advance_clock()``).
        sent_at: When it was accepted (``time.time()``).
        params: The request's parameters that the gateway does not own (such
            as DLT's ``templateid``), by name, as received.
    """

    message_id: str
    gateway: str
    numbers: tuple[str, ...]
    text: str
    sender: str
    username: str
    unicode: str | None
    created: float
    sent_at: float
    params: dict[str, str] = attrs.field(factory=dict)


class Account:
    """One account: credentials and credits."""

    __slots__ = ("credits", "password", "token", "username")

    def __init__(self, username: str, password: str, token: str | None, credits: int) -> None:  # noqa: A002  (the gateway's own word for an account's balance)
        self.username = username
        self.password = password
        self.token = token
        self.credits = credits

    def __repr__(self) -> str:
        return f"<Account {self.username!r} credits={self.credits}>"


@functools.lru_cache(maxsize=128)
def _segments(text: str) -> int:
    return analyse(text).segments


class GatewayState:
    """Accounts, credits, stored messages, delivery statuses and the DND list, shared by every protocol.

    Attributes:
        stats: The counters (see :class:`GatewayStats`); :meth:`received` and
            :meth:`record_send` keep the send counters.
        rng: The gateway's seeded generator (faults, partial acceptance).
        dnd: The do-not-disturb numbers, as digits without ``+``.
        dnd_action: What a send does with one: ``"allow"``, ``"omit"`` or ``"refuse"``.
        messages: Stored messages by id (empty with ``store_messages=False``).
        clock_offset: Seconds added to ``time.monotonic()`` for message ages.
        clock: The clock message ages and request times are read on (None:
            the machine's); a test drives a :class:`~sms_async.testing.TestClock`.
        delivery: How each number's messages end and when (None: by
            ``status_delays`` and the rates).
        request_log: Where every request's time is logged, if anywhere.
    """

    def __init__(
        self,
        *,
        stats: GatewayStats,
        rng: random.Random,
        seed: int,
        dnd_numbers: Iterable[str],
        dnd_action: DndAction,
        status_delays: tuple[float, float],
        undelivered_rate: float,
        failed_rate: float,
        store_messages: bool,
        track_numbers: bool,
    ) -> None:
        self.stats = stats
        self.rng = rng
        self.seed = seed
        self.dnd: set[str] = {n.removeprefix("+") for n in dnd_numbers}
        self.dnd_action: DndAction = dnd_action
        self.status_delays = status_delays
        self.undelivered_rate = undelivered_rate
        self.failed_rate = failed_rate
        self.store_messages = store_messages
        self.track_numbers = track_numbers
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, Account] = {}
        self.messages: dict[str, SentMessage] = {}
        self._id_prefix = f"{int(time.time()) & 0xFFFFFFFF:08x}{secrets.token_hex(3)}"
        self._next_id = 1
        self.clock_offset = 0.0
        self.clock: Clock | None = None
        self.delivery: DeliveryPlan | None = None
        self.request_log: RequestLog | None = None

    # ---------------------------------------------------------------- accounts and credits

    def add_account(self, username: str, password: str, token: str | None, credits: int) -> None:  # noqa: A002  (as above)
        """Create or replace an account."""
        old = self.accounts.pop(username, None)
        if old is not None and old.token is not None:
            self.tokens.pop(old.token, None)
        account = Account(username, password, token, credits)
        self.accounts[username] = account
        if token is not None:
            self.tokens[token] = account

    def login(self, username: object, password: object) -> Account | None:
        """The account these credentials open, or None (anything but two strings opens none)."""
        if not isinstance(username, str) or not isinstance(password, str):
            return None
        account = self.accounts.get(username)
        if account is None or not secrets.compare_digest(account.password.encode(), password.encode()):
            return None
        return account

    def account_for_token(self, token: str) -> Account | None:
        """The account this API token opens, or None."""
        return self.tokens.get(token)

    def charge(self, account: Account, text: str, count: int) -> bool:
        """Take segments of ``text`` x ``count`` credits; False (and nothing taken) when too few are left."""
        if count:
            needed = _segments(text) * count
            if account.credits < needed:
                return False
            account.credits -= needed
        return True

    # ---------------------------------------------------------------- numbers

    def dnd_blocks(self, digits: str) -> bool:
        """Whether a send must not simply accept ``digits`` (on the DND list, and the action is not allow)."""
        return self.dnd_action != "allow" and digits in self.dnd

    def dnd_clear(self, numbers: Iterable[str]) -> bool:
        """Whether no number of ``numbers`` (digits) is held back by the DND list: the fast path's test."""
        return self.dnd_action == "allow" or not self.dnd or self.dnd.isdisjoint(numbers)

    def keep_share(self, positions: list[int], share: float) -> set[int]:
        """The positions a ``partial_accept`` fault keeps: ``share`` of them (rounded down), seeded."""
        return set(self.rng.sample(positions, int(len(positions) * share)))

    def received(self, count: int) -> None:
        """Count ``count`` numbers listed in an authenticated send request, accepted or not."""
        self.stats.received += count

    def record_send(
        self,
        account: Account,
        accepted: list[str],
        refused: list[str],
        params: Mapping[str, str] | None = None,
    ) -> None:
        """Count a processed send: the numbers it accepted (charged and sent) and those it refused alone.

        ``params`` are the request's parameters the gateway does not own,
        counted as ``name=value`` in :attr:`GatewayStats.params`.
        """
        stats = self.stats
        count = len(accepted)
        stats.accepted += count
        stats.accepted_by_account[account.username] += count
        if params:
            stats.params.update([f"{name}={value}" for name, value in params.items()])
        if not self.track_numbers:
            return
        stats.numbers.update(accepted)
        if refused:
            stats.numbers_refused.update(refused)
        if count:
            stats.record_accepted(account.username, time.monotonic(), count)

    # ---------------------------------------------------------------- messages

    def new_id(self) -> str:
        """A fresh 24-hex-digit message id."""
        self._next_id += 1
        return f"{self._id_prefix}{self._next_id - 1:010x}"

    def new_ids(self, count: int) -> list[str]:
        """``count`` fresh message ids (several times faster than calling :meth:`new_id` each time)."""
        ids: list[str] = []
        n = self._next_id
        end = n + count
        self._next_id = end
        while n < end:
            high, low = divmod(n, 4096)
            take = min(4096 - low, end - n)
            ids += map(f"{self._id_prefix}{high:07x}".__add__, _HEX3[low : low + take])
            n += take
        return ids

    def store(
        self,
        message_id: str,
        numbers: tuple[str, ...],
        *,
        gateway: str,
        text: str,
        sender: str,
        account: Account,
        unicode: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        """Keep an accepted message for status look-ups (a no-op with ``store_messages=False``)."""
        if not self.store_messages:
            return
        self.messages[message_id] = SentMessage(
            message_id=message_id,
            gateway=gateway,
            numbers=numbers,
            text=text,
            sender=sender,
            username=account.username,
            unicode=unicode,
            created=self.now(),
            sent_at=time.time() if self.clock is None else self.clock.now().timestamp(),
            params=dict(params) if params else {},
        )

    def message_for(self, message_id: str, gateway: str, account: Account) -> SentMessage | None:
        """The stored message with that id, if ``gateway`` accepted it for ``account``."""
        message = self.messages.get(message_id)
        if message is None or message.gateway != gateway or message.username != account.username:
            return None
        return message

    # ---------------------------------------------------------------- delivery statuses

    def now(self) -> float:
        """The clock message ages are measured on."""
        clock = self.clock
        return (time.monotonic() if clock is None else clock.monotonic()) + self.clock_offset

    def log_request(self, operation: str) -> None:
        """Log the time of a request to ``operation``, when the gateway keeps a request log."""
        if self.request_log is not None:
            self.request_log.record(operation, self.clock)

    def number_status(self, message: SentMessage, number: str, now: float) -> Stage | Outcome:
        """Where ``number`` of ``message`` is at time ``now``: still on its way, or how it ended."""
        stage = self.stage(message, now)
        if self.delivery is not None:
            return self.delivery.status(number, now - message.created, stage)
        return self.outcome(message.message_id, number) if stage == "final" else stage

    def stage(self, message: SentMessage, now: float) -> Stage:
        """Where ``message`` is at time ``now``, by ``status_delays`` (queued, then sent)."""
        queued, sent = self.status_delays
        age = now - message.created
        if age < queued / 2:
            return "queued"
        if age < queued:
            return "processing"
        if age < queued + sent:
            return "sent"
        return "final"

    def outcome(self, message_id: str, number: str) -> Outcome:
        """How ``number`` of the message ends: fixed per message and number by the seed and the rates."""
        digest = hashlib.blake2b(f"{self.seed}:{message_id}:{number}".encode(), digest_size=8).digest()
        draw = int.from_bytes(digest, "big") / 2**64
        if draw < self.undelivered_rate:
            return "undelivered"
        if draw < self.undelivered_rate + self.failed_rate:
            return "failed"
        return "delivered"
