"""Scenarios: each moves the metric it claims by the stated amount inside its window, leaves
every session outside the window untouched, and the detector flags it while staying quiet
on the same seed without it.

The metrics are computed here with Polars -- through the oracle (`testing.truth`) where one
of its tables fits, directly over the events otherwise -- never with the simulator's
profile code. The thresholds are the scenarios' own declared claims.
"""

from __future__ import annotations

import datetime as dt
import re

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from services.batch_generator.csv_days import rows_to_frame
from services.cli import cli
from services.simulator.model import SimConfig, Simulator
from services.simulator.rows import SENT
from services.simulator.scenario_option import parse_scenario
from services.simulator.scenarios import SCENARIOS, Scenario, Window
from shared.detect import Flag, Point, Rule, dense, detect
from shared.errors import ClickstreamError
from testing.truth import NONE, truth

M, H = 60_000, 3_600_000
T0 = 1767571200000 + 12 * H  # Monday 2026-01-05 12:00 UTC: a steady part of the day
T1 = T0 + 3 * H
W0 = T0 + 90 * M  # every test window starts here, after 1.5 h of baseline
SEED, EPS = 7, 15.0
DURATION_MIN = {"flash-sale": 60, "checkout-outage": 30, "bot-burst": 20,
                "campaign-launch": 90, "traffic-drop": 60}
RULE = Rule(low=0.5, high=2.0, min_count=20, lookback=12, min_history=3)


def window(name: str) -> Window:
    return Window(name, W0, W0 + DURATION_MIN[name] * M)


def simulate(*windows: Window) -> list[tuple]:
    """Every event of the sessions starting in [T0, T1), in delivery order (the stream
    that `simulate` and `produce` send)."""
    return list(Simulator(SimConfig(seed=SEED, events_per_second=EPS,
                                    scenarios=windows)).rows(T0, T1))


def ms(t: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(t / 1000, dt.UTC)


def with_session_start(ev: pl.DataFrame) -> pl.DataFrame:
    return ev.with_columns(pl.col("timestamp").min().over("session_id").alias("session_start"))


def starting_in(ev: pl.DataFrame, w: Window) -> pl.DataFrame:
    """The events of the sessions that start in `w`."""
    return ev.filter(pl.col("session_start").is_between(ms(w.start_ms), ms(w.end_ms),
                                                        closed="left"))


class Run:
    """One simulated run as Polars frames: the events and the oracle's session table."""

    def __init__(self, rows: list[tuple]):
        self.rows = rows
        self.events = with_session_start(rows_to_frame(rows))
        self.tables = truth(self.events)
        self.sessions = self.tables["sessions"]

    def sessions_starting_in(self, w: Window) -> pl.DataFrame:
        return self.sessions.filter(pl.col("start_ts").is_between(ms(w.start_ms), ms(w.end_ms),
                                                                  closed="left"))


@pytest.fixture(scope="module")
def baseline() -> Run:
    return Run(simulate())


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {name: Run(simulate(window(name))) for name in SCENARIOS}


# ---------------------------------------------------------------- the claims, in Polars
def _top3_ip_events(ev: pl.DataFrame) -> pl.DataFrame:
    top = ev.group_by("ip_address").len().sort("len", descending=True).head(3)
    return ev.filter(pl.col("ip_address").is_in(top["ip_address"].implode()))


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def metric(name: str, run: Run, sc: Scenario, w: Window) -> float:
    ev = starting_in(run.events, w)
    sess = run.sessions_starting_in(w)
    cat = pl.col("category") == (sc.category or "")
    act = pl.col("action")
    if name == "category_views":
        return ev.filter((act == "view") & cat).height
    if name == "category_add_to_cart_rate":
        pviews = ev.filter((pl.col("page") == "product") & (act == "view") & cat).height
        return _ratio(ev.filter((act == "add_to_cart") & cat).height, pviews)
    if name == "category_purchases":
        return ev.filter((act == "purchase") & cat).height
    if name == "checkout_to_purchase":
        checkout = sess.filter("reached_checkout")
        return _ratio(checkout["converted"].sum(), checkout.height)
    if name == "checkout_sessions":
        return sess["reached_checkout"].sum()
    if name == "events":
        return ev.height
    if name == "top3_ip_event_share":
        return _top3_ip_events(ev).height / ev.height
    if name == "top3_ip_purchases":
        return _top3_ip_events(ev).filter(act == "purchase").height
    if name == "top3_ip_median_gap_ms":
        return _top3_ip_events(ev)["page_duration_ms"].median()
    ours = pl.col("utm_campaign") == (sc.utm_campaign or "")
    if name == "campaign_session_share":
        return sess.filter(ours).height / sess.height
    if name == "campaign_ramp":
        quarter = (w.end_ms - w.start_ms) // 4
        starts = sess.filter(ours)["start_ts"]
        first = (starts < ms(w.start_ms + quarter)).sum()
        return _ratio((starts >= ms(w.end_ms - quarter)).sum(), first)
    if name == "campaign_conversion_lift":
        conv = sess.group_by(ours.alias("ours")).agg(pl.col("converted").mean())
        by = dict(zip(conv["ours"], conv["converted"], strict=True))
        return by[True] / by[False]
    if name == "source_sessions":
        return sess.filter(pl.col("utm_source") == sc.utm_source).height
    if name == "direct_sessions":  # the oracle's sessions have no referrer: from the events
        first = ev.filter(pl.col("timestamp") == pl.col("session_start")).unique("session_id")
        return first.filter(pl.col("utm_source").is_null()
                            & pl.col("referrer").is_null()).height
    raise AssertionError(f"no Polars computation for {name}")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_moves_its_metrics_by_the_claimed_amount(name, runs, baseline):
    sc, w = SCENARIOS[name], window(name)
    failed = []
    for claim in sc.claims:
        with_v = metric(claim.metric, runs[name], sc, w)
        measured = (_ratio(with_v, metric(claim.metric, baseline, sc, w))
                    if claim.compare == "ratio" else with_v)
        if not claim.holds(measured):
            failed.append((claim.metric, measured, claim.low, claim.high))
    assert not failed, failed


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_leaves_sessions_outside_its_window_identical(name, runs, baseline):
    w = window(name)

    def outside(run: Run) -> pl.DataFrame:
        inside = starting_in(run.events, w)["session_id"].unique().implode()
        return run.events.filter(~pl.col("session_id").is_in(inside)).sort("event_id")

    with_out, without_out = outside(runs[name]), outside(baseline)
    assert_frame_equal(with_out, without_out)  # every field of every event
    assert with_out.height > 0.4 * len(baseline.rows)
    # and the stream before the window is the same, event for event, in the same order
    before = [r for r in baseline.rows if r[SENT] < w.start_ms]
    assert runs[name].rows[:len(before)] == before


# ---------------------------------------------------------------- the detector
def counts(df: pl.DataFrame, time_col: str, every: str, step: int) -> list[Point]:
    """A count per window over [T0, T1), zeros included."""
    g = df.group_by(pl.col(time_col).dt.truncate(every).alias("t")).len()
    points = [Point(int(t.timestamp() * 1000), n) for t, n in g.iter_rows()]
    return dense(points, step, T0, T1)


def series(name: str, run: Run) -> dict[str, list[Point]]:
    """The series an analyst would watch for each scenario, by key."""
    ev, sess = run.events, run.sessions
    if name == "flash-sale":  # page views per category, 15 min, by event time
        views = ev.filter((pl.col("action") == "view") & pl.col("category").is_not_null())
        return {c: counts(views.filter(pl.col("category") == c), "timestamp", "15m", 15 * M)
                for c in views["category"].unique()}
    if name == "checkout-outage":  # checkout -> purchase per 15 min, by session start
        g = sess.filter("reached_checkout").group_by(
            pl.col("start_ts").dt.truncate("15m").alias("t")).agg(
            pl.col("converted").sum(), pl.len())
        return {"checkout_to_purchase": [Point(int(t.timestamp() * 1000), c, n)
                                         for t, c, n in g.iter_rows()]}
    if name == "bot-burst":  # all events per 5 min, by event time
        return {"events": counts(ev, "timestamp", "5m", 5 * M)}
    key = "utm_campaign" if name == "campaign-launch" else "utm_source"
    # sessions per campaign (or source) per 15 min, by session start
    return {k: counts(sess.filter(pl.col(key) == k), "start_ts", "15m", 15 * M)
            for k in sess[key].unique() if k != NONE}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_detector_flags_the_scenario_and_is_quiet_without_it(name, runs, baseline):
    w = window(name)
    quiet = {k: detect(s, RULE) for k, s in series(name, baseline).items()}
    assert not any(quiet.values()), {k: [f.reason for f in v] for k, v in quiet.items() if v}

    flagged = {k: detect(s, RULE) for k, s in series(name, runs[name]).items()}
    flagged = {k: v for k, v in flagged.items() if v}
    sc = SCENARIOS[name]
    assert list(flagged) == [sc.category or sc.utm_campaign or sc.utm_source
                             or next(iter(quiet))], flagged
    flags = next(iter(flagged.values()))
    inside = range(w.start_ms, w.end_ms, 5 * M if name == "bot-burst" else 15 * M)
    # every window inside the scenario is flagged, in the direction it moves the metric,
    # and no other (but the next: sessions that start inside may spill into it)
    assert [f.start_ms for f in flags if f.start_ms in inside] == list(inside)
    assert all(w.start_ms <= f.start_ms <= w.end_ms for f in flags)
    want = "drop" if name in ("checkout-outage", "traffic-drop") else "spike"
    assert {f.kind for f in flags} == {want}


# ---------------------------------------------------------------- the dashboard's watch
def category_verdicts(run: Run) -> dict[int, dict[str, Flag | None]]:
    """The dashboard's per-category watch (`dashboards.watch`: each category's add-to-cart
    per product view against the other categories', guarded by its cart additions against
    its earlier hours') over every hour of `product_actions`, the table the dashboard
    reads, as the oracle computes it from the run's events."""
    import pandas as pd

    from dashboards import watch
    from dashboards.reader import Snapshot
    from services.simulator import world

    catalogue = world.build_catalogue(SEED)
    table = run.tables["product_actions"].with_columns(
        pl.col("window_start").dt.replace_time_zone(None))  # naive UTC, as the reader's
    rows = pd.DataFrame({c: table[c].to_numpy() for c in table.columns})
    snap = Snapshot("stream", "all", ms(T0), ms(T1), {watch.CATEGORY_TABLE: rows})
    assert pd.api.types.is_datetime64_dtype(rows["window_start"])
    return watch.category_verdicts(snap, dict(zip(catalogue.product_ids, catalogue.categories,
                                                  strict=True)))


def flagged(verdicts: dict[int, dict[str, Flag | None]]) -> dict[tuple[int, str], Flag]:
    return {(hour, cat): f for hour, v in verdicts.items() for cat, f in v.items() if f}


def test_dashboard_category_watch_flags_the_flash_sale_and_is_quiet_without(runs, baseline):
    sale = Window("flash-sale", T0 + H, T0 + 2 * H)  # the 13:00 hour, whole
    verdicts = category_verdicts(Run(simulate(sale)))
    quiet = category_verdicts(baseline)
    assert not flagged(quiet), {k: f.reason for k, f in flagged(quiet).items()}
    # judged: the sale's category in every hour of the run (the evidence is there; after
    # T1 come only the last events of the sessions that started before it)
    assert all(SCENARIOS["flash-sale"].category in v for h, v in quiet.items() if h < T1)
    found = flagged(verdicts)
    sale_hour = (sale.start_ms, SCENARIOS["flash-sale"].category)
    assert sale_hour in found and found[sale_hour].kind == "spike", found
    # the sale's category only, in its hour or the next (its sessions run past its end)
    assert {cat for _, cat in found} == {sale_hour[1]}, found
    assert {h for h, _ in found} <= {sale.start_ms, sale.end_ms}, found
    assert found[sale_hour].ratio > 1.7, found[sale_hour].reason  # x1.9: twice as often
    print("\n" + "\n".join(f.reason for f in found.values()))
    # no other scenario moves it (their windows straddle 13:30); the bot-burst's crawler
    # dilutes the smaller categories' rates (fashion x1.55 the others' at 13:00), but
    # brings no cart additions
    for name, run in runs.items():
        if name != "flash-sale":
            assert not flagged(category_verdicts(run)), name


# ---------------------------------------------------------------- the grammar and the CLI
@pytest.mark.parametrize("text, expected", [
    ("flash-sale", ("flash-sale", None, 0, 2 * H)),
    ("checkout-outage@+1h30m+45m", ("checkout-outage", None, 90 * M, 45 * M)),
    ("bot-burst+90s", ("bot-burst", None, 0, 90_000)),
    # a trailing +DURATION is the duration; a time zone offset stays part of the time
    ("traffic-drop@2026-01-05T18:00:00+01:00+1h", ("traffic-drop", 1767632400000, 0, H)),
    ("traffic-drop@2026-01-05T18:00:00+01:00", ("traffic-drop", 1767632400000, 0, 2 * H)),
    ("campaign-launch@2026-01-05+1d", ("campaign-launch", 1767571200000, 0, 24 * H)),
])
def test_scenario_option_grammar(text, expected):
    r = parse_scenario(text)
    assert (r.name, r.start_ms, r.offset_ms, r.duration_ms) == expected


def test_scenario_window_is_whole_minutes_and_resolves_offsets():
    r = parse_scenario("flash-sale@+90s+1m")
    w = r.window(1_000)  # the run starts one second after the epoch
    assert (w.start_ms, w.end_ms) == (60_000, 180_000)  # 91 s .. 151 s, widened


@pytest.mark.parametrize("value, message", [
    ("flash-sail", "unknown scenario 'flash-sail': choose from flash-sale, checkout-outage"),
    ("flash-sale@", "cannot read scenario 'flash-sale@'"),
    ("flash-sale@+2x", "cannot read duration '2x'"),
    ("flash-sale@yesterday", "cannot read time 'yesterday'"),
    ("flash-sale+0m", "scenario flash-sale: the duration must be > 0, got '0m'"),
])
def test_scenario_option_errors_are_one_line(value, message):
    with pytest.raises(ClickstreamError, match=re.escape(message)):
        parse_scenario(value)
    for command in (["simulate", "--events", "10"], ["profile"], ["produce", "--count", "1"],
                    ["generate", "--out", "/nonexistent/never-written"]):
        result = CliRunner().invoke(cli, [*command, "--scenario", value])
        assert result.exit_code == 1, (command, result.output)
        assert result.output.count("\n") == 1 and message in result.output, result.output


def test_scenario_windows_of_one_scenario_must_not_overlap():
    result = CliRunner().invoke(cli, ["simulate", "--scenario", "flash-sale@+0m+1h",
                                      "--scenario", "flash-sale@+30m+1h"])
    assert result.exit_code == 1
    assert result.output == "error: two flash-sale windows overlap: give one longer window\n"


def test_simulate_scenarios_compose_deterministically_in_any_order(tmp_path):
    def simulate_cli(*scenarios):
        args = ["simulate", "--seed", "3", "--events", "30000"]
        for s in scenarios:
            args += ["--scenario", s]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
        return result.stdout_bytes

    outage, drop = "checkout-outage@+30m+30m", "traffic-drop@+40m+20m"
    both = simulate_cli(outage, drop)
    assert both == simulate_cli(drop, outage)
    plain = simulate_cli()
    assert both != plain
    # before the first window (the run starts at the default 2026-01-05T00:00Z) the bytes
    # are those of the run without scenarios
    cut = b'"sent_at":"2026-01-05T00:30'
    assert cut in plain and both[:both.index(cut)] == plain[:plain.index(cut)]


def test_generate_applies_scenarios_to_the_csv_days(tmp_path):
    from testing.truth import read_csv_days

    result = CliRunner().invoke(cli, [
        "generate", "--days", "1", "--out", str(tmp_path), "--events-per-day", "40000",
        "--seed", "5", "--workers", "1", "--quiet", "--scenario", "traffic-drop@+12h+6h"])
    assert result.exit_code == 0, result.output
    sessions = truth(read_csv_days(tmp_path))["sessions"]
    noon, evening = dt.datetime(2026, 1, 5, 12, tzinfo=dt.UTC), dt.datetime(
        2026, 1, 5, 18, tzinfo=dt.UTC)
    facebook = sessions.filter(pl.col("utm_source") == "facebook")["start_ts"]
    assert not facebook.is_between(noon, evening, closed="left").any()
    assert (facebook < noon).sum() > 20 and (facebook >= evening).sum() > 20


def test_profile_reports_each_claim_with_and_without(tmp_path):
    import json

    result = CliRunner().invoke(cli, ["profile", "--seed", "4", "--events", "20000", "--json",
                                      "--scenario", "checkout-outage@+1d12h+1h"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)["scenarios"]
    assert [s["scenario"] for s in report] == ["checkout-outage"]
    assert (report[0]["start"], report[0]["end"]) == ("2026-01-06T12:00:00Z",
                                                      "2026-01-06T13:00:00Z")
    claims = {c["metric"]: c for c in report[0]["claims"]}
    assert set(claims) == {c.metric for c in SCENARIOS["checkout-outage"].claims}
    purchase = claims["checkout_to_purchase"]
    assert purchase["with"] == 0 and purchase["without"] > 0.3 and purchase["ok"]
