"""The detector's rule on small hand-made series (expected flags written by hand)."""

from __future__ import annotations

import pytest

from shared.detect import DAY_MS, Point, Rule, compare, compare_windows, dense, detect

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


def test_compare_flags_a_group_against_the_pooled_rate_of_the_others():
    hour = 13 * 3_600_000
    groups = {"a": Point(hour, 30, 1000), "b": Point(hour, 60, 2000),
              "c": Point(hour, 100, 1600), "d": Point(hour, 5, 1000)}
    verdicts = compare(groups, Rule(low=0.5, high=1.5, min_count=20), of="categories")
    # c: 100/1600 = 0.0625 vs (30+60+5)/(1000+2000+1000) = 0.02375 -> x2.63, a spike;
    # d: 5/1000 vs 190/4600 = 0.0413 -> x0.12, a drop (expected 41 at the others' rate);
    # a: 30/1000 vs 165/4600 = 0.0359 -> x0.84, judged and quiet
    assert {k: v and v.kind for k, v in verdicts.items()} == {
        "a": None, "b": None, "c": "spike", "d": "drop"}
    c = verdicts["c"]
    assert (c.value, c.baseline) == (0.0625, 95 / 4000)
    assert c.reason == ("1970-01-01 13:00 UTC: 0.0625 (100 of 1,600) vs 0.02375 in the other "
                        "3 categories together, x2.63, above 1.5x: spike")


def test_compare_needs_evidence_and_other_groups():
    rule = Rule(low=0.5, high=1.5, min_count=20)
    # a: x3, but 9 cart additions where 3 were expected; b: against a's 9: none judged
    assert compare({"a": Point(0, 9, 100), "b": Point(0, 30, 1000)}, rule) == {}
    # a: expected 20 at b's rate, none came: a drop; b: against a's 0, not judged
    verdicts = compare({"a": Point(0, 0, 1000), "b": Point(0, 20, 1000)}, rule)
    assert list(verdicts) == ["a"] and verdicts["a"].kind == "drop"
    # a lone group, or others without a count, has nothing to compare with
    assert compare({"a": Point(0, 50, 100)}, rule) == {}
    assert compare({"a": Point(0, 50, 100), "b": Point(0, 0, 0)}, rule) == {}
    assert compare({}, rule) == {}


def test_compare_takes_the_rates_of_one_window():
    with pytest.raises(ValueError):
        compare({"a": Point(0, 1, 10), "b": Point(60_000, 1, 10)})
    with pytest.raises(ValueError):
        compare({"a": Point(0, 1), "b": Point(0, 1, 10)})


def test_compare_windows_guards_each_flag_with_the_groups_own_past_counts():
    rule = Rule(low=0.5, high=1.5, min_count=20)

    def window(t, a, b, c):  # (count, total) of groups a, b, c in window t
        return {name: Point(t * STEP, *nt) for name, nt in zip("abc", (a, b, c), strict=True)}

    verdicts = compare_windows({
        0: window(0, (30, 1000), (30, 1000), (30, 1000)),
        # a's rate x2 the others', but its count per count of the others did not move
        # (the others' totals grew): not flagged
        1: window(1, (30, 1000), (30, 2000), (30, 2000)),
        # a's rate and its count x2: flagged, against the median of windows 0 and 1 (0.5)
        2: window(2, (60, 1000), (30, 1000), (30, 1000)),
        # still: flagged windows stay out of the baseline
        3: window(3, (60, 1000), (30, 1000), (30, 1000)),
    }, rule, of="categories", counts="cart additions")
    kinds = {t: {k: f and f.kind for k, f in v.items()} for t, v in verdicts.items()}
    assert kinds == {0: {"a": None, "b": None, "c": None}, 1: {"a": None, "b": None, "c": None},
                     2: {"a": "spike", "b": None, "c": None},
                     3: {"a": "spike", "b": None, "c": None}}
    assert verdicts[3]["a"].reason.endswith(
        "x2.00, above 1.5x, with 100 cart additions per 100 in the others vs 50 (median of 2 "
        "previous windows): spike")
    # the first window of the data has no past: the rate alone
    first = compare_windows({0: window(0, (60, 1000), (30, 1000), (30, 1000))}, rule)
    assert first[0]["a"].kind == "spike" and "per 100" not in first[0]["a"].reason
