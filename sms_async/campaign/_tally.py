"""The one tally of a campaign: what its results rows say, counted once, in one place.

Every figure a campaign shows (a report, a summary, a progress line, a
machine-readable summary, the demo) comes from a :class:`Tally`, and a tally
counts results rows (:class:`~sms_async._models.Entry`), so the figures
always agree with the results file:

* a repeated invalid input (an empty cell included) is ``invalid`` each
  time, as its row says, never "the same number again, sent once";
  ``duplicate`` counts only repeats of a valid number;
* ``empty`` says how many of the invalid inputs were empty or blank;
* ``credits`` is what the accepted numbers cost: the parts of their text,
  summed over every accepted number;
* ``fewest_parts``/``most_parts`` are the parts per text over the texts sent.

The library's :class:`~sms_async.BulkResult` keeps counting a repeated
invalid text in ``duplicates`` (its invariant needs one key per input), so
campaign figures never come from there.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

import attrs

from sms_async._models import Entry, Outcome

__all__ = ["OUTCOMES", "Tally"]

#: Every outcome, in the order rows, tables and stores list them.
OUTCOMES: Final = tuple(Outcome)

# Distinct reasons kept per tally: a run's failures share a handful of
# reasons; a gateway that words each refusal differently must not grow this.
_MAX_REASONS: Final = 32
_OTHER_REASONS: Final = "(other reasons)"


@attrs.define
class Tally:
    """Inputs by outcome as their results rows show them, and what the accepted ones cost."""

    #: Inputs per outcome (every outcome present, zero or not).
    counts: dict[Outcome, int] = attrs.Factory(lambda: dict.fromkeys(OUTCOMES, 0))
    #: Invalid inputs that were empty or blank.
    empty: int = 0
    #: Parts paid for: each accepted number's parts, summed.
    credits: int = 0
    #: The fewest and most parts of any text sent (0 when nothing was sent).
    fewest_parts: int = 0
    most_parts: int = 0
    #: ``(outcome, reason) -> inputs`` for inputs that were not accepted (nor duplicates).
    reasons: dict[tuple[Outcome, str], int] = attrs.Factory(dict)

    @property
    def total(self) -> int:
        """Inputs counted."""
        return sum(self.counts.values())

    def __getitem__(self, outcome: Outcome) -> int:
        return self.counts[outcome]

    def count(self, entries: Iterable[Entry], parts: int = 0) -> None:
        """Count one batch's rows; ``parts`` is the parts of the text its numbers were sent."""
        counts, reasons = self.counts, self.reasons
        accepted = 0
        for entry in entries:
            outcome = entry.outcome
            counts[outcome] += 1
            if outcome is Outcome.ACCEPTED:
                accepted += 1
                continue
            if outcome is Outcome.DUPLICATE:
                continue
            if outcome is Outcome.INVALID and not entry.input.strip():
                self.empty += 1
            key = (outcome, entry.reason)
            if key not in reasons and len(reasons) >= _MAX_REASONS:
                key = (outcome, _OTHER_REASONS)
            reasons[key] = reasons.get(key, 0) + 1
        if accepted and parts:
            self.credits += accepted * parts
        if parts:
            self.note_parts(parts, parts)

    def note_parts(self, fewest: int, most: int) -> None:
        """Widen the parts range to include ``fewest..most`` (0 means none)."""
        if fewest and (not self.fewest_parts or fewest < self.fewest_parts):
            self.fewest_parts = fewest
        self.most_parts = max(self.most_parts, most)

    def add(self, other: Tally) -> None:
        """Add ``other`` into this tally."""
        for outcome, number in other.counts.items():
            self.counts[outcome] += number
        self.empty += other.empty
        self.credits += other.credits
        self.note_parts(other.fewest_parts, other.most_parts)
        for key, number in other.reasons.items():
            if key not in self.reasons and len(self.reasons) >= _MAX_REASONS:
                key = (key[0], _OTHER_REASONS)  # noqa: PLW2901 - folded into the overflow bucket
            self.reasons[key] = self.reasons.get(key, 0) + number

    def copy(self) -> Tally:
        """An independent copy."""
        return Tally(
            dict(self.counts),
            self.empty,
            self.credits,
            self.fewest_parts,
            self.most_parts,
            dict(self.reasons),
        )

    def top_reasons(self, outcome: Outcome, limit: int = 3) -> list[tuple[str, int]]:
        """The commonest reasons for ``outcome``, most frequent first."""
        found = [(reason, number) for (kind, reason), number in self.reasons.items() if kind is outcome]
        found.sort(key=lambda item: -item[1])
        return found[:limit]

    @property
    def not_accepted(self) -> int:
        """Inputs that did not end as asked: not accepted, not a duplicate, not skipped on purpose."""
        return sum(
            number
            for outcome, number in self.counts.items()
            if outcome not in {Outcome.ACCEPTED, Outcome.DUPLICATE, Outcome.SKIPPED}
        )

    def as_dict(self) -> dict[str, object]:
        """The tally as JSON-ready values (for ``--json`` and other machine readers)."""
        return {
            "total": self.total,
            "outcomes": {outcome.value: number for outcome, number in self.counts.items()},
            "empty_invalid": self.empty,
            "credits": self.credits,
            "parts": {"fewest": self.fewest_parts, "most": self.most_parts},
        }

    @classmethod
    def from_columns(cls, values: Mapping[str, int]) -> Tally:
        """A tally from a store's columns (outcome names, ``empty``, ``credits``, ``fewest``, ``most``)."""
        return cls(
            {outcome: int(values.get(outcome.value, 0)) for outcome in OUTCOMES},
            int(values.get("empty", 0)),
            int(values.get("credits", 0)),
            int(values.get("fewest", 0)),
            int(values.get("most", 0)),
        )

    def columns(self) -> Iterator[int]:
        """Outcome counts in :data:`OUTCOMES` order, then ``empty`` and ``credits``: a store's columns."""
        yield from (self.counts[outcome] for outcome in OUTCOMES)
        yield self.empty
        yield self.credits
