"""A small, explainable anomaly detector: which time windows of a metric leave its baseline.

Pure -- no I/O, nothing from `services/` -- so that the dashboard and the tests can share it.

The input is one metric as a series of `Point`s, one per window (5 min, 1 h, ...):

- a *count* (events per hour from one source): `Point(start_ms, count)`;
- a *rate* (sessions with a purchase per session that began checkout, per 15 min):
  `Point(start_ms, count, total)`, value `count / total`.

The rule, stated once (`Rule`):

1. Baseline of a window: the median value of the previous `lookback` windows that were not
   flagged (`baseline="running"`; flagged windows stay out, so that a long incident does not
   become the norm), or of the same window on the previous `days` days
   (`baseline="days"`, which follows the daily curve). Fewer than `min_history` such values:
   the window is not judged.
2. Evidence: a rate is judged only when its `total` is at least `min_count`; a count only
   when it or its baseline is at least `min_count` (so a source that falls from 60 to 0
   events is judged, a source that never had more than 3 is not).
3. Flag: value < `low` x baseline (a drop) or value > `high` x baseline (a spike, including
   anything from a baseline of 0).

Windows with no data must still be there for counts (a source that disappears has no
rows): `dense` fills the gaps with zeros.

    flags = detect(dense(points, 15 * 60_000, start_ms, end_ms), Rule(low=0.5, high=2.0))
    for f in flags: print(f.reason)

`compare` is the same rule with a baseline that needs no history: the groups of ONE window
(the categories of an hour), each a rate, each against the pooled rate of all the others in
that window -- for groups that are alike, such as the share of product views that lead to a
cart addition in each category of a shop. `compare_windows` does it window after window,
with a guard on each group's count against its own past windows.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Point:
    """One window of a metric: a count, or `count / total` for a rate."""

    start_ms: int
    count: float
    total: float | None = None  # None: a count

    @property
    def value(self) -> float:
        if self.total is None:
            return self.count
        return self.count / self.total if self.total else math.nan


@dataclass(frozen=True)
class Rule:
    low: float = 0.5  # flag below low x baseline
    high: float = 2.0  # flag above high x baseline
    min_count: float = 20  # evidence needed to judge a window (see the module doc)
    lookback: int = 12  # running baseline: this many previous unflagged windows
    min_history: int = 3  # baseline values needed to judge a window
    baseline: str = "running"  # or "days": the same window on previous days
    days: int = 7

    def __post_init__(self):
        if not 0 <= self.low < 1 < self.high:
            raise ValueError(f"need 0 <= low < 1 < high, got low={self.low}, high={self.high}")
        if self.baseline not in ("running", "days"):
            raise ValueError(f"baseline must be 'running' or 'days', got {self.baseline!r}")


@dataclass(frozen=True)
class Flag:
    start_ms: int
    value: float
    baseline: float
    kind: str  # "drop" | "spike"
    reason: str  # one sentence: what, against what, which rule

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else math.inf


def dense(points: Sequence[Point], step_ms: int, start_ms: int, end_ms: int) -> list[Point]:
    """Counts for every window in [start_ms, end_ms), zero where `points` has none."""
    by_start = {p.start_ms: p for p in points}
    return [by_start.get(t, Point(t, 0)) for t in range(start_ms, end_ms, step_ms)]


def _has_evidence(p: Point, baseline: float, rule: Rule) -> bool:
    if p.total is not None:
        return p.total >= rule.min_count
    return max(p.count, baseline) >= rule.min_count


def detect(points: Sequence[Point], rule: Rule | None = None) -> list[Flag]:
    """The windows of `points` (any order) that leave their baseline under `rule`."""
    rule = rule or Rule()
    points = sorted(points, key=lambda p: p.start_ms)
    usable = {}  # start -> value, of the windows a baseline may use
    history: list[float] = []
    flags = []
    for p in points:
        if rule.baseline == "days":
            past = [usable[t] for t in (p.start_ms - k * DAY_MS for k in range(1, rule.days + 1))
                    if t in usable]
        else:
            past = history[-rule.lookback:]
        value = p.value
        judged = len(past) >= rule.min_history and not math.isnan(value)
        flag = None
        if judged:
            base = statistics.median(past)
            if _has_evidence(p, base, rule):
                if value < rule.low * base:
                    flag = _flag(p, value, base, "drop", f"below {rule.low:g}x", len(past), rule)
                elif value > rule.high * base:
                    flag = _flag(p, value, base, "spike", f"above {rule.high:g}x", len(past),
                                 rule)
        if flag is not None:
            flags.append(flag)
        elif not math.isnan(value) and (p.total is None or p.total >= rule.min_count):
            usable[p.start_ms] = value
            history.append(value)
    return flags


def _flag(p: Point, value: float, base: float, kind: str, bound: str, n: int,
          rule: Rule) -> Flag:
    when = dt.datetime.fromtimestamp(p.start_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
    of = ("the same window on " + f"{n} previous days" if rule.baseline == "days"
          else f"{n} previous windows")
    ratio = f"x{value / base:.2f}" if base else "new"
    return Flag(p.start_ms, value, base, kind,
                f"{when} UTC: {value:.4g} vs a baseline of {base:.4g} (median of {of}), "
                f"{ratio}, {bound}: {kind}")


def compare(groups: Mapping[str, Point], rule: Rule | None = None, of: str = "groups"
            ) -> dict[str, Flag | None]:
    """Each group of one window (each a rate, `count / total`) against the pooled rate of
    all the OTHER groups of that window: (sum of their counts) / (sum of their totals).

    The verdict of every group judged: its `Flag` when its rate is below `low` or above
    `high` x the others' rate, else None. A group is judged with the evidence of a count
    (rule 2 of the module doc) on both sides: its count, or the count its total would
    give at the others' rate, and the others' count reach `min_count`.
    `lookback`, `min_history` and `baseline` play no part: the baseline is the other
    groups, now. `of` names the groups in the reason ("categories")."""
    rule = rule or Rule()
    others = f"the other {len(groups) - 1} {of} together"
    return {name: _vs_others(p, base, kind, rule, others) if kind else None
            for name, (p, base, kind) in _against_others(groups, rule).items()}


def _against_others(groups: Mapping[str, Point], rule: Rule
                    ) -> dict[str, tuple[Point, float, str | None]]:
    """name -> (its point, the others' rate, "drop" | "spike" | None) of each group judged"""
    starts = {p.start_ms for p in groups.values()}
    if len(starts) > 1 or any(p.total is None for p in groups.values()):
        raise ValueError("compare takes the rates (count, total) of one window")
    count = sum(p.count for p in groups.values())
    total = sum(p.total for p in groups.values())
    out = {}
    for name, p in groups.items():
        rest_count, rest_total = count - p.count, total - p.total
        if not p.total or not rest_total or rest_count < rule.min_count:  # no baseline
            continue
        base = rest_count / rest_total
        if max(p.count, p.total * base) < rule.min_count:
            continue
        kind = ("drop" if p.value < rule.low * base else
                "spike" if p.value > rule.high * base else None)
        out[name] = (p, base, kind)
    return out


def _vs_others(p: Point, base: float, kind: str, rule: Rule, others: str,
               also: str = "") -> Flag:
    when = dt.datetime.fromtimestamp(p.start_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
    ratio = f"x{p.value / base:.2f}" if base else "new"
    bound = f"below {rule.low:g}x" if kind == "drop" else f"above {rule.high:g}x"
    return Flag(p.start_ms, p.value, base, kind,
                f"{when} UTC: {p.value:.4g} ({p.count:,.0f} of {p.total:,.0f}) vs {base:.4g} "
                f"in {others}, {ratio}, {bound}{also}: {kind}")


def compare_windows(windows: Mapping[int, Mapping[str, Point]], rule: Rule | None = None,
                    of: str = "groups", counts: str = "counts"
                    ) -> dict[int, dict[str, Flag | None]]:
    """`compare` in each window (window start -> its groups), with a guard against a
    change of the totals that hits the groups unevenly (a crawler's product views, spread
    over every product, dilute the rate of a small category more than a popular one's):
    a group flagged by `compare` stays flagged only if its count per count of the other
    groups also left its running baseline in the same direction -- below `low` or above
    `high` x the median of that ratio in its previous `lookback` windows in which it was
    judged and not flagged. A group without such a window yet (in the first window of the
    data, or after windows of too little evidence) has `compare` alone.

    window start -> the verdict of each group judged (`compare`'s, guarded)."""
    rule = rule or Rule()
    past: dict[str, list[float]] = {}  # group -> its count per other count, unflagged
    out: dict[int, dict[str, Flag | None]] = {}
    for start in sorted(windows):
        groups = windows[start]
        others = f"the other {len(groups) - 1} {of} together"
        all_counts = sum(p.count for p in groups.values())
        verdicts: dict[str, Flag | None] = {}
        for name, (p, base, kind) in _against_others(groups, rule).items():
            rest = all_counts - p.count
            per = p.count / rest if rest else math.inf
            before = past.get(name, [])[-rule.lookback:]
            also = ""
            if kind and before:
                usual = statistics.median(before)
                moved = per > rule.high * usual if kind == "spike" else per < rule.low * usual
                kind = kind if moved else None
                also = (f", with {100 * per:.3g} {counts} per 100 in the others vs "
                        f"{100 * usual:.3g} (median of {len(before)} previous "
                        f"window{'s' if len(before) > 1 else ''})")
            verdicts[name] = _vs_others(p, base, kind, rule, others, also) if kind else None
            if not kind and rest:
                past.setdefault(name, []).append(per)
        out[start] = verdicts
    return out
