"""The detector's rule on small hand-made series (expected flags written by hand)."""

from __future__ import annotations

import pytest

from shared.detect import DAY_MS, Point, Rule, dense, detect

STEP = 15 * 60_000


def counts(*values) -> list[Point]:
    return [Point(i * STEP, v) for i, v in enumerate(values)]


def test_detect_flags_a_drop_and_a_spike_against_the_running_median():
    flags = detect(counts(100, 90, 110, 100, 40, 105, 250), Rule(lookback=4))
    assert [(f.start_ms // STEP, f.kind, f.baseline) for f in flags] == [
        (4, "drop", 100), (6, "spike", 102.5)]  # medians of (100,90,110,100), (90,110,100,105)
    assert flags[0].ratio == 0.4
    assert flags[0].reason == ("1970-01-01 01:00 UTC: 40 vs a baseline of 100 (median of 4 "
                               "previous windows), x0.40, below 0.5x: drop")


def test_detect_keeps_flagged_windows_out_of_the_baseline():
    # a long outage stays flagged: its zeros never become the norm
    flags = detect(counts(50, 50, 50, 0, 0, 0, 0, 0, 50), Rule(lookback=3))
    assert [f.start_ms // STEP for f in flags] == [3, 4, 5, 6, 7]
    assert {f.baseline for f in flags} == {50}


def test_detect_needs_history_and_evidence():
    # fewer than min_history previous windows: not judged
    assert detect(counts(100, 1, 1), Rule(min_history=3)) == []
    # a count judged only when it or its baseline reaches min_count
    assert detect(counts(10, 10, 10, 2), Rule(min_count=20)) == []
    assert [f.kind for f in detect(counts(20, 20, 20, 2), Rule(min_count=20))] == ["drop"]
    # something new, from a baseline of zero
    new = detect(counts(0, 0, 0, 30), Rule(min_count=20))
    assert [(f.kind, f.baseline) for f in new] == [("spike", 0)]
    assert new[0].ratio == float("inf") and "new" in new[0].reason


def test_detect_rates_need_enough_total():
    rate = [Point(i * STEP, c, n) for i, (c, n) in
            enumerate([(8, 10), (16, 20), (15, 20), (0, 5), (0, 30), (31, 40)])]
    flags = detect(rate, Rule(min_count=20, min_history=2))
    # 0/5 has too small a total to judge (and to count in the baseline); 0/30 is a drop;
    # the drop's baseline: median(16/20, 15/20) = 0.775 (8/10 never counted)
    assert [(f.start_ms // STEP, f.kind) for f in flags] == [(4, "drop")]
    assert flags[0].baseline == pytest.approx(0.775)
    assert detect([Point(0, 1, 0)]) == []  # 0/0: no value, no flag


def test_detect_same_window_on_previous_days():
    hour = 3_600_000
    # 10:00 has 40 each day and 200 on day 3; 11:00 is busier every day and never flagged
    points = [Point(d * DAY_MS + h * hour, v) for d in range(3)
              for h, v in ((10, 40 if d < 2 else 200), (11, 120))]
    flags = detect(points, Rule(baseline="days", min_history=2))
    assert [(f.start_ms, f.kind, f.baseline) for f in flags] == [
        (2 * DAY_MS + 10 * hour, "spike", 40)]
    assert "the same window on 2 previous days" in flags[0].reason


def test_dense_fills_missing_windows_with_zeros():
    assert dense([Point(STEP, 5)], STEP, 0, 3 * STEP) == [
        Point(0, 0), Point(STEP, 5), Point(2 * STEP, 0)]


@pytest.mark.parametrize("bad", [{"low": 1.2}, {"high": 0.9}, {"baseline": "weekly"}])
def test_detect_rule_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        Rule(**bad)
