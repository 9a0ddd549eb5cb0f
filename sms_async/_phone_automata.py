"""Digit automata: the metadata's regular expressions as automata over the ten ASCII digits.

:mod:`sms_async._phone_tables` asks, for a formula over several patterns
(this one fully matches, that one matches at the start), which strings of a
given length satisfy it. This module answers with a decision tree: each
pattern is parsed (a small part of regular-expression syntax: digits, the
digit class, character classes, groups, alternation, counted repetition and
``$``) into a Thompson automaton, determinised lazily, and the automata run
side by side over every prefix. A prefix is decided as soon as every
completion of it gives the same verdict, judged in three-valued logic from
what each automaton says of all completions; equal situations share one
subtree. Anything outside that syntax raises :class:`UntabulatableError`.
"""

from __future__ import annotations

from typing import Final, NamedTuple

import attrs

__all__ = [
    "Automata",
    "Formula",
    "Not",
    "Tree",
    "UntabulatableError",
    "all_of",
    "any_of",
    "decide",
    "literal_language",
]

_ALL_DIGITS: Final = (1 << 10) - 1

# The longest string literal_language enumerates (phonenumbers' longest
# national number).
_MAX_LITERAL: Final = 17


class UntabulatableError(Exception):
    """A pattern uses syntax this module does not compile; the caller replays instead."""


# --- patterns to automata -------------------------------------------------------------------------


class _Set(NamedTuple):
    """One digit whose bit is set in ``mask`` (bit d for digit d)."""

    mask: int


class _Cat(NamedTuple):
    parts: tuple[_Ast, ...]


class _Alt(NamedTuple):
    branches: tuple[_Ast, ...]


class _Rep(NamedTuple):
    """``part`` from ``low`` to ``high`` times; ``high`` is -1 for no bound."""

    part: _Ast
    low: int
    high: int


class _End(NamedTuple):
    """``$``: the end of the string."""


_Ast = _Set | _Cat | _Alt | _Rep | _End


class _Parser:
    """Recursive descent over the regular-expression syntax the metadata uses."""

    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0

    def parse(self) -> _Ast:
        node = self._alternation()
        if self.pos != len(self.text):
            raise UntabulatableError(f"unexpected {self.text[self.pos]!r} in {self.text!r}")
        return node

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _alternation(self) -> _Ast:
        branches = [self._sequence()]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self._sequence())
        return branches[0] if len(branches) == 1 else _Alt(tuple(branches))

    def _sequence(self) -> _Ast:
        parts: list[_Ast] = []
        while self._peek() not in ("", "|", ")"):
            parts.append(self._quantified(self._atom()))
        return _Cat(tuple(parts))

    def _atom(self) -> _Ast:
        char = self._peek()
        self.pos += 1
        if char == "(":
            if self.text.startswith("?:", self.pos):
                self.pos += 2
            elif self._peek() == "?":
                raise UntabulatableError(f"group syntax in {self.text!r}")
            node = self._alternation()
            if self._peek() != ")":
                raise UntabulatableError(f"unbalanced group in {self.text!r}")
            self.pos += 1
            return node
        if char == "[":
            return _Set(self._class())
        if char == "\\":
            return _Set(self._escape())
        if char == ".":
            return _Set(_ALL_DIGITS)
        if char == "$":
            return _End()
        if char in "^*+?{}]":
            raise UntabulatableError(f"{char!r} in {self.text!r}")
        return _Set(_digit_bit(char))

    def _escape(self) -> int:
        char = self._peek()
        self.pos += 1
        if char == "d":
            return _ALL_DIGITS
        if char in "\\.-()[]{}|+*?$^/ ":
            return 0  # a literal non-digit: no digit matches it
        raise UntabulatableError(f"escape \\{char} in {self.text!r}")

    def _class(self) -> int:
        negate = self._peek() == "^"
        self.pos += negate
        mask = 0
        first = True
        while True:
            char = self._peek()
            if char == "" or (char == "]" and first):
                raise UntabulatableError(f"character class in {self.text!r}")
            self.pos += 1
            first = False
            if char == "]":
                break
            if char == "\\":
                mask |= self._escape()
                continue
            if self._peek() == "-" and self.text[self.pos + 1 : self.pos + 2] not in ("", "]"):
                high = self.text[self.pos + 1]
                self.pos += 2
                if high == "\\":
                    raise UntabulatableError(f"range in {self.text!r}")
                mask |= sum(1 << d for d in range(10) if char <= str(d) <= high)
            else:
                mask |= _digit_bit(char)
        return _ALL_DIGITS & ~mask if negate else mask

    def _quantified(self, node: _Ast) -> _Ast:
        while True:
            char = self._peek()
            if char == "?":
                low, high = 0, 1
            elif char == "*":
                low, high = 0, -1
            elif char == "+":
                low, high = 1, -1
            elif char == "{":
                end = self.text.find("}", self.pos)
                bounds = self.text[self.pos + 1 : end].split(",") if end > 0 else []
                if not 1 <= len(bounds) <= 2 or not all(b.isdigit() for b in bounds[:1]):
                    raise UntabulatableError(f"repetition in {self.text!r}")
                low = int(bounds[0])
                if len(bounds) == 1:
                    high = low
                elif bounds[1] == "":
                    high = -1
                elif bounds[1].isdigit():
                    high = int(bounds[1])
                else:
                    raise UntabulatableError(f"repetition in {self.text!r}")
                self.pos = end
            else:
                return node
            self.pos += 1
            if self._peek() == "?":
                self.pos += 1  # a lazy repetition matches the same strings
            elif self._peek() == "+":
                raise UntabulatableError(f"possessive repetition in {self.text!r}")
            if 0 <= high < low:
                raise UntabulatableError(f"repetition in {self.text!r}")
            node = _Rep(node, low, high)


def _digit_bit(char: str) -> int:
    return 1 << (ord(char) - 48) if "0" <= char <= "9" else 0


class _Nfa:
    """Thompson automaton: per state, epsilon moves, end-of-input moves and digit moves."""

    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.at_end: list[list[int]] = []
        self.moves: list[list[tuple[int, int]]] = []

    def state(self) -> int:
        self.eps.append([])
        self.at_end.append([])
        self.moves.append([])
        return len(self.eps) - 1

    def build(self, node: _Ast, start: int) -> int:
        """Add ``node`` from ``start``; return the state where it ends."""
        if isinstance(node, _Set):
            end = self.state()
            if node.mask:
                self.moves[start].append((node.mask, end))
            return end
        if isinstance(node, _Cat):
            for part in node.parts:
                start = self.build(part, start)
            return start
        end = self.state()
        if isinstance(node, _Alt):
            for branch in node.branches:
                entry = self.state()
                self.eps[start].append(entry)
                self.eps[self.build(branch, entry)].append(end)
        elif isinstance(node, _End):
            self.at_end[start].append(end)
        else:
            for _ in range(node.low):
                start = self.build(node.part, start)
            if node.high < 0:
                loop = self.state()
                self.eps[start] += (loop, end)
                self.eps[self.build(node.part, loop)] += (loop, end)
            else:
                for _ in range(node.high - node.low):
                    self.eps[start].append(end)
                    start = self.build(node.part, start)
                self.eps[start].append(end)
        return end


# Two states every automaton has: nothing can match any more, and (for a
# prefix match) something already has.
_DEAD: Final = 0
_DONE: Final = 1

# What an automaton says of every completion of a given length.
_NONE: Final = 0
_ALL: Final = 1
_SOME: Final = 2


class _Dfa:
    """A lazily determinised automaton over ASCII digits.

    ``prefix=False``: accepts what ``fullmatch`` accepts. ``prefix=True``:
    accepts a string when ``match`` finds the pattern at its start, that is
    when some prefix of it is accepted; once one is, the state is ``_DONE``.
    """

    def __init__(self, pattern: str, *, prefix: bool) -> None:
        self.nfa = _Nfa()
        entry = self.nfa.state()
        self.accept = self.nfa.build(_Parser(pattern).parse(), entry)
        self.prefix = prefix
        self.ids: dict[frozenset[int], int] = {}
        self.subsets: list[frozenset[int]] = [frozenset(), frozenset()]
        self.rows: list[list[int] | None] = [[_DEAD] * 10, [_DONE] * 10]
        self.accepts_at_end = [False, True]
        self.memo: dict[tuple[int, int], int] = {}
        self.start = self._intern(self._closure([entry], at_end=False))

    def _closure(self, states: list[int], *, at_end: bool) -> frozenset[int]:
        seen = set(states)
        stack = list(states)
        nfa = self.nfa
        while stack:
            state = stack.pop()
            for target in nfa.eps[state] + (nfa.at_end[state] if at_end else []):
                if target not in seen:
                    seen.add(target)
                    stack.append(target)
        return frozenset(seen)

    def _intern(self, subset: frozenset[int]) -> int:
        if not subset:
            return _DEAD
        if self.prefix and self.accept in subset:
            return _DONE
        found = self.ids.get(subset)
        if found is None:
            found = len(self.subsets)
            self.ids[subset] = found
            self.subsets.append(subset)
            self.rows.append(None)
            self.accepts_at_end.append(self.accept in self._closure(list(subset), at_end=True))
        return found

    def step(self, state: int, digit: int) -> int:
        row = self.rows[state]
        if row is None:
            row = []
            moves = self.nfa.moves
            subset = self.subsets[state]
            for d in range(10):
                bit = 1 << d
                targets = [t for s in subset for mask, t in moves[s] if mask & bit]
                row.append(self._intern(self._closure(targets, at_end=False)))
            self.rows[state] = row
        return row[digit]

    def verdict(self, state: int, remaining: int) -> int:
        """Say whether all, none or some strings of ``remaining`` digits from ``state`` are accepted."""
        key = (state, remaining)
        found = self.memo.get(key)
        if found is None:
            if remaining == 0:
                found = _ALL if self.accepts_at_end[state] else _NONE
            elif state in (_DEAD, _DONE):
                found = _NONE if state == _DEAD else _ALL
            else:
                kinds = {self.verdict(self.step(state, d), remaining - 1) for d in range(10)}
                found = kinds.pop() if len(kinds) == 1 else _SOME
            self.memo[key] = found
        return found


# --- verdict formulas ----------------------------------------------------------------------------

# A boolean formula over the automata of one table. Equal formulas are equal
# (and hash once), so that they can key the memo of equal situations.


@attrs.frozen(cache_hash=True)
class _Var:
    """What automaton ``index`` says."""

    index: int


@attrs.frozen(cache_hash=True)
class Not:
    inner: Formula


@attrs.frozen(cache_hash=True)
class _Join:
    """Any of ``parts`` when ``any_``, else all of them."""

    any_: bool
    parts: tuple[Formula, ...]


Formula = _Var | Not | _Join | bool


def _simplify(formula: Formula, verdicts: dict[int, int]) -> Formula:
    """Put in what the automata already know of all completions; True/False when that decides it.

    A formula that nothing changes comes back as the same object.
    """
    if isinstance(formula, bool):
        return formula
    if isinstance(formula, _Var):
        verdict = verdicts[formula.index]
        return formula if verdict == _SOME else verdict == _ALL
    if isinstance(formula, Not):
        inner = _simplify(formula.inner, verdicts)
        if isinstance(inner, bool):
            return not inner
        return formula if inner is formula.inner else Not(inner)
    absorbing = formula.any_  # True decides an "any", False an "all"
    kept: list[Formula] = []
    changed = False
    for part in formula.parts:
        value = _simplify(part, verdicts)
        if value is absorbing:
            return absorbing
        if value is not part:
            changed = True
        if value is not (not absorbing):
            kept.append(value)
    if not kept:
        return not absorbing
    if not changed:
        return formula
    return kept[0] if len(kept) == 1 else _Join(absorbing, tuple(kept))


def _variables(formula: Formula, into: set[int]) -> set[int]:
    """Add the automata ``formula`` depends on to ``into``."""
    if isinstance(formula, _Var):
        into.add(formula.index)
    elif isinstance(formula, Not):
        _variables(formula.inner, into)
    elif isinstance(formula, _Join):
        for part in formula.parts:
            _variables(part, into)
    return into


def all_of(*parts: Formula) -> Formula:
    return _Join(any_=False, parts=parts)


def any_of(*parts: Formula) -> Formula:
    return _Join(any_=True, parts=parts)


class Automata:
    """The automata one table runs side by side, each pattern compiled once."""

    def __init__(self) -> None:
        self.dfas: list[_Dfa] = []
        self._index: dict[tuple[str, bool], int] = {}

    def full(self, pattern: str) -> Formula:
        """A variable: the whole string matches ``pattern``."""
        return self._var(pattern, prefix=False)

    def starts(self, pattern: str) -> Formula:
        """A variable: ``pattern`` matches at the start of the string."""
        return self._var(pattern, prefix=True)

    def _var(self, pattern: str, *, prefix: bool) -> Formula:
        key = (pattern, prefix)
        index = self._index.get(key)
        if index is None:
            index = self._index[key] = len(self.dfas)
            self.dfas.append(_Dfa(pattern, prefix=prefix))
        return _Var(index)


# --- tries and tables ------------------------------------------------------------------------------

# A decision tree: True (every completion accepted), False (none), or the ten
# subtrees of the next digit.
Tree = bool | tuple["Tree", ...]


def decide(automata: Automata, formula: Formula, length: int) -> Tree:
    """Return the decision tree of ``formula`` over strings of ``length`` digits.

    At each prefix the formula is simplified with what the automata already
    know of every completion, so only the automata it still depends on run
    further, and equal situations (same formula left, same states) share one
    subtree.
    """
    dfas = automata.dfas
    memo: dict[tuple[Formula, tuple[int, ...], int], Tree] = {}
    variables: dict[Formula, tuple[int, ...]] = {}

    def tree(formula: Formula, active: tuple[int, ...], states: tuple[int, ...], remaining: int) -> Tree:
        verdicts = {i: dfas[i].verdict(s, remaining) for i, s in zip(active, states, strict=True)}
        left = _simplify(formula, verdicts)
        if left is True or left is False:
            return left
        needed = variables.get(left)
        if needed is None:
            needed = variables[left] = tuple(sorted(_variables(left, set())))
        by_var = dict(zip(active, states, strict=True))
        now = tuple(by_var[i] for i in needed)
        key = (left, now, remaining)
        found = memo.get(key)
        if found is None:
            children = tuple(
                tree(
                    left,
                    needed,
                    tuple(dfas[i].step(s, d) for i, s in zip(needed, now, strict=True)),
                    remaining - 1,
                )
                for d in range(10)
            )
            if all(child is True for child in children):
                found = True
            elif all(child is False for child in children):
                found = False
            else:
                found = children
            memo[key] = found
        return found

    everything = tuple(sorted(_variables(formula, set())))
    return tree(formula, everything, tuple(dfas[i].start for i in everything), length)


def literal_language(pattern: str, limit: int) -> list[str] | None:
    """Return every string ``pattern`` fully matches, if they are at most ``limit`` digit strings."""
    dfa = _Dfa(pattern, prefix=False)
    found: list[str] = []
    frontier = [(dfa.start, "")]
    while frontier:
        following = []
        for state, text in frontier:
            if dfa.accepts_at_end[state]:
                found.append(text)
            for digit in range(10):
                step = dfa.step(state, digit)
                if step != _DEAD:
                    following.append((step, text + str(digit)))
        frontier = following
        if len(found) + len(frontier) > limit or (frontier and len(frontier[0][1]) > _MAX_LITERAL):
            return None
    return found
