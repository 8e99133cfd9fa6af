"""Scoring: checks judged on ``Facts`` → per-item exposure → the overall 0.0-10.0 and its label.

The arithmetic is systemd 252's, in integers so the numbers agree to the last digit: each item
adds ``ceil(badness * weight / range)``; the overall exposure in tenths is
``ceil(sum * 100 / sum of weights)`` over the items that apply; an item's own share is
``ceil(ceil(badness * weight * 100 / range) / sum of weights)`` tenths. The label is the first
row of ``LABELS`` the exposure reaches. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from systemg.security.checks import CHECKS, Check
from systemg.security.facts import Facts

# (lowest exposure in tenths, label), systemd's badness_table.
LABELS: tuple[tuple[int, str], ...] = (
    (100, "DANGEROUS"),
    (90, "UNSAFE"),
    (75, "EXPOSED"),
    (50, "MEDIUM"),
    (10, "OK"),
    (1, "SAFE"),
    (0, "PERFECT"),
)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True, slots=True)
class Item:
    """One check judged: ``badness`` None when it does not apply."""

    check: Check
    badness: int | None
    description: str

    @property
    def good(self) -> bool | None:
        """systemd's ``set``: True (✓) at badness 0, None when not applicable, else False."""
        return None if self.badness is None else self.badness == 0


@dataclass(frozen=True, slots=True)
class Score:
    """The overall exposure of one service."""

    tenths: int  # 0..100
    weight_sum: int

    @property
    def value(self) -> float:
        return self.tenths / 10

    @property
    def label(self) -> str:
        return label(self.tenths)

    def item_tenths(self, item: Item) -> int | None:
        """The item's share of the overall exposure, in tenths (None when 0 or n/a)."""
        if not item.badness:
            return None
        share = _ceil_div(item.badness * item.check.weight * 100, item.check.range)
        return _ceil_div(share, self.weight_sum)


def label(tenths: int) -> str:
    for lowest, name in LABELS:
        if tenths >= lowest:
            return name
    raise ValueError(f"negative exposure {tenths}")


def judge(facts: Facts, checks: Iterable[Check] = CHECKS) -> tuple[Item, ...]:
    items = []
    for check in checks:
        badness, text = check.judge(facts)
        if badness is not None and not 0 <= badness <= check.range:
            raise ValueError(f"{check.name}: badness {badness} outside 0..{check.range}")
        if text is None:
            if badness is None:
                text = check.na
            elif badness == 0:
                text = check.good
            else:
                text = check.bad
        items.append(Item(check, badness, text))
    return tuple(items)


def score(items: Iterable[Item]) -> Score:
    badness_sum = weight_sum = 0
    for item in items:
        if item.badness is None:
            continue
        badness_sum += _ceil_div(item.badness * item.check.weight, item.check.range)
        weight_sum += item.check.weight
    if weight_sum == 0:
        raise ValueError("no applicable check")
    return Score(_ceil_div(badness_sum * 100, weight_sum), weight_sum)


def above(score_: Score, threshold: float) -> bool:
    """``--threshold N``: is the exposure (0.0-10.0) above N? Compared in tenths."""
    return score_.tenths > round(threshold * 10)
