"""The dashboard's ranges, views and reader on hand-made frames: no servers, expectations
by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from dashboards import cache, views
from dashboards import ranges as rg
from dashboards.reader import Reader, Snapshot, empty_frame, view_columns
from shared import tables as tb

T0 = dt.datetime(2026, 1, 5, 10, 0, tzinfo=dt.UTC)


def ts(minutes: float) -> pd.Timestamp:
    return pd.Timestamp((T0 + dt.timedelta(minutes=minutes)).replace(tzinfo=None))


def snap(**frames) -> Snapshot:
    full = {t.name: empty_frame(t) for t in (*tb.ANALYTICS, tb.INGEST_QUALITY)}
    for name, rows in frames.items():
        full[name] = pd.DataFrame(rows)
    return Snapshot("stream", "1 hour", T0, T0 + dt.timedelta(hours=1), full)


def sessions(*rows: dict) -> dict[str, list]:
    """sessions-table columns for hand-written rows (unset flags False, numbers 0)."""
    cols = view_columns(tb.SESSIONS)
    defaults = {c: False if tb.SESSIONS.cql_type(c) == "boolean" else 0 for c in cols}
    return {c: [{**defaults, **r}[c] for r in rows] for c in cols}


def test_dashboard_range_bounds_all_starts_at_earliest_day_capped():
    now = T0
    assert rg.range_bounds("15 min", now) == (now - dt.timedelta(minutes=15), now)
    start, _ = rg.range_bounds("all", now, dt.date(2026, 1, 1))
    assert start == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    start, _ = rg.range_bounds("all", now, dt.date(2020, 1, 1))
    assert (now.date() - start.date()).days == rg.ALL_MAX_DAYS - 1
    with pytest.raises(ValueError):
        rg.range_bounds("2 weeks", now)


def test_dashboard_query_start_includes_overlapping_windows():
    hourly = tb.table("product_views")
    assert rg.query_start(hourly, T0 + dt.timedelta(minutes=45)) == \
        T0 + dt.timedelta(minutes=-15, milliseconds=1)  # the 09:45+ window still overlaps
    assert rg.query_start(tb.SESSIONS, T0) == T0


def test_dashboard_kpis_by_hand():
    s = snap(
        data_quality={"window_start": [ts(0), ts(1), ts(2)], "raw_events": [12, 8, 0],
                      "events": [10, 8, 0], "duplicates": [2, 0, 0]},
        funnel_hourly={"window_start": [ts(0)], "sessions": [4], "reached_product": [3],
                       "reached_cart": [2], "reached_checkout": [1], "purchased": [1]},
        revenue_hourly={"window_start": [ts(0)], "purchases": [1], "units": [2],
                        "revenue_cents": [1999]},
        sessions=sessions(
            {"day": T0.date(), "session_id": "a", "start_ts": ts(-200), "end_ts": ts(-150),
             "events": 3, "reached_cart": True},
            {"day": T0.date(), "session_id": "b", "start_ts": ts(5), "end_ts": ts(20),
             "events": 5, "reached_cart": True, "converted": True},
            {"day": T0.date(), "session_id": "c", "start_ts": ts(-90), "end_ts": ts(3),
             "events": 2, "bounced": True}),
        ingest_quality={"run_id": ["r"], "invalid": [3], "late_dropped": [1],
                        "duplicates_dropped": [2]},
    )
    k = views.kpis(s)
    assert k["events_per_minute"] == 9.0  # 18 events over the 2 minutes that had events
    assert k["sessions"] == 2  # "a" ended before the range
    assert k["conversion_rate"] == 0.5  # b bought, c did not (a is out of range)
    assert k["revenue"] == 19.99
    assert (k["invalid"], k["late"], k["duplicates"]) == (3, 1, 2)
    st = views.session_stats(s)
    assert st["sessions"] == 2 and st["bounce_rate"] == 0.5 and st["cart_abandonment"] == 0.0


def test_dashboard_kpis_empty_is_none_not_zero_division():
    k = views.kpis(snap())
    assert k["events_per_minute"] is None and k["conversion_rate"] is None
    assert k["sessions"] == 0 and k["revenue"] == 0
    assert snap().empty


def test_dashboard_funnel_top_products_campaigns_duration_by_hand():
    s = snap(
        sessions=sessions(
            *({"session_id": f"s{i}", "start_ts": ts(i), "end_ts": ts(i + 1), "events": 1,
               "reached_product": i < 8, "reached_cart": i < 4, "reached_checkout": i < 2,
               "converted": i < 1} for i in range(10))),
        product_views={"window_start": [ts(0)] * 3 + [ts(60)],
                       "product_id": ["p1", "p2", "p3", "p2"], "views": [5, 4, 0, 3]},
        product_purchases={"window_start": [ts(0)] * 2, "product_id": ["p1", "p2"],
                           "purchases": [1, 2], "units": [1, 3], "revenue_cents": [500, 150]},
        campaign_events={"window_start": [ts(0)] * 3, "utm_campaign": ["x", "x", "y"],
                         "utm_source": ["g", "f", "g"], "events": [3, 4, 5]},
        campaign_actions={"window_start": [ts(0)], "utm_campaign": ["x"], "add_to_cart": [2],
                          "purchases": [1]},
        campaign_conversion={"window_start": [ts(0)] * 2, "utm_campaign": ["x", "(none)"],
                             "utm_source": ["g", "(none)"], "sessions": [4, 9],
                             "converted": [1, 2], "revenue_cents": [100, 200]},
        agg_duration={"window_start": [ts(0), ts(10)], "page": ["home", "home"],
                      "duration_ms_sum": [3000, 5000], "events": [2, 2]},
    )
    f = views.funnel(s)
    assert f["sessions"].tolist() == [10, 8, 4, 2, 1]
    assert views.top_viewed(s).values.tolist() == [["p2", 7], ["p1", 5]]  # p3 has no views
    assert views.top_purchased(s)["product_id"].tolist() == ["p2", "p1"]
    assert views.top_revenue(s).values.tolist() == [["p1", 5.0], ["p2", 1.5]]
    assert views.campaign_events(s).values.tolist() == [["x", 7], ["y", 5]]
    assert views.campaign_actions(s).values.tolist() == [["x", "add_to_cart", 2],
                                                         ["x", "purchases", 1]]
    c = views.campaign_conversion(s)
    assert c.values.tolist() == [["x", 4, 1, 0.25]]  # no "(none)": traffic without a campaign
    d = views.avg_duration_per_page(s)
    assert d.loc[0, "avg_duration_s"] == 2.0


def test_dashboard_session_crossing_midnight_counts_once():
    # one session from 23:50 to 00:10 UTC: a row in each day partition; the second day's
    # part has the purchase. Range 23:00-01:00.
    day1, day2 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)
    t = dt.datetime(2026, 1, 5, 23, 50)
    rows = sessions(
        {"day": day1, "session_id": "x", "start_ts": t, "end_ts": t + dt.timedelta(minutes=9),
         "events": 4, "reached_product": True},
        {"day": day2, "session_id": "x", "start_ts": t + dt.timedelta(minutes=10),
         "end_ts": t + dt.timedelta(minutes=20), "events": 3, "reached_product": True,
         "reached_cart": True, "reached_checkout": True, "converted": True},
        {"day": day2, "session_id": "y", "start_ts": t + dt.timedelta(minutes=30),
         "end_ts": t + dt.timedelta(minutes=31), "events": 1, "bounced": True})
    s = snap(sessions=rows)
    s.start = dt.datetime(2026, 1, 5, 23, tzinfo=dt.UTC)
    s.end = dt.datetime(2026, 1, 6, 1, tzinfo=dt.UTC)
    k = views.kpis(s)
    assert k["sessions"] == 2 and k["conversion_rate"] == 0.5
    assert views.funnel(s)["sessions"].tolist() == [2, 1, 1, 1, 1]
    st = views.session_stats(s)
    assert st["sessions"] == 2 and st["avg_events"] == 4.0  # (4 + 3 + 1) / 2
    assert st["avg_duration_s"] == (20 * 60 + 60) / 2 and st["bounce_rate"] == 0.5
    assert views.session_event_histogram(s).values.tolist() == [[1, 1], [7, 1]]


def test_dashboard_series_over_time_are_long_and_bucketed():
    s = snap(time_agg={"window_start": [ts(0), ts(0), ts(1)], "page": ["cart", "search", "cart"],
                       "page_views": [1, 2, 3]},
             data_quality={"window_start": [ts(0), ts(1)], "raw_events": [3, 4],
                           "events": [2, 4], "duplicates": [1, 0]})
    assert views.page_views_over_time(s).values.tolist() == [
        [ts(0), "cart", 1], [ts(0), "search", 2], [ts(1), "cart", 3]]
    assert views.quality_over_time(s).values.tolist() == [
        [ts(0), "events", 2], [ts(1), "events", 4], [ts(0), "duplicates", 1],
        [ts(1), "duplicates", 0]]


def test_dashboard_time_bucket_keeps_series_short():
    assert rg.time_bucket(T0, T0 + dt.timedelta(hours=1)) == "1min"
    assert rg.time_bucket(T0, T0 + dt.timedelta(days=1)) == "5min"
    assert rg.time_bucket(T0, T0 + dt.timedelta(days=90)) == "1D"


def naive(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=None)


class ScriptedReader(Reader):
    """A Reader whose Cassandra is a list of data_quality rows (day, window_start, ...)."""

    def __init__(self, rows):
        self.now = 0.0
        super().__init__(connect=None, keyspace="ks", clock=lambda: self.now)
        self.rows = rows
        self.queries: list[tuple] = []
        self.statements: list[str] = []

    def session(self):
        return object()

    def _statement(self, session, key, cql):
        self.statements.append(key)
        return key

    def _run(self, stmt, params):
        self.queries += params
        # the driver returns naive UTC timestamps
        return [[r[1:] for r in self.rows
                 if r[0] == p[0] and (len(p) == 1 or naive(p[1]) <= r[1] < naive(p[2]))]
                for p in params]


def test_dashboard_reader_caches_settled_partitions_and_rereads_only_recent_ones():
    table = tb.DATA_QUALITY
    now = dt.datetime(2026, 1, 5, 10, 30, tzinfo=dt.UTC)
    hours = [dt.datetime(2026, 1, 3, tzinfo=dt.UTC) + dt.timedelta(hours=h) for h in range(58)]
    rows = [(h.date(), naive(h), 2, 2, 0) for h in hours]  # one row an hour until 09:00 on day 3
    reader = ScriptedReader(rows)
    start = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)

    first, n1 = reader.read(table, start, now, now)
    # settled segments of Jan 2 (a 1-minute window starting before the range overlaps it),
    # 3 and 4, Jan 5 until the settle point, and the recent part of Jan 5
    assert len(first) == 58 and n1 == 5
    assert first["events"].sum() == 116

    reader.queries.clear()
    again, n2 = reader.read(table, start, now, now)
    cut = dt.datetime(2026, 1, 5, 7, tzinfo=dt.UTC)  # SETTLE (3 h) before now, on the hour
    assert reader.queries == [(now.date(), cut, now)] and n2 == 1
    assert sorted(again["window_start"]) == sorted(first["window_start"])

    reader.now += cache.SETTLED_TTL + 1  # the cache expires: everything is read again
    reader.queries.clear()
    _, n3 = reader.read(table, start, now, now)
    assert n3 == 5


def test_dashboard_reader_joins_segments_that_expire_while_it_queries():
    """A cached settled segment can expire while the recent ones are queried (a loaded
    machine): the read joins the frames it found, never asks the cache again."""
    table = tb.DATA_QUALITY
    now = dt.datetime(2026, 1, 5, 10, 30, tzinfo=dt.UTC)
    rows = [(h.date(), naive(h), 2, 2, 0) for h in
            (dt.datetime(2026, 1, 3, tzinfo=dt.UTC) + dt.timedelta(hours=k) for k in range(58))]
    reader = ScriptedReader(rows)
    start = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    first, _ = reader.read(table, start, now, now)
    for key in [k for k in reader.cache._entries if k[1] == "joined"]:
        reader.cache._entries.pop(key)  # the joined frame dropped, its segments kept
    run = reader._run

    def slow_run(stmt, params):
        reader.now += cache.SETTLED_TTL + 1  # every cached segment expires meanwhile
        return run(stmt, params)

    reader._run = slow_run
    again, _ = reader.read(table, start, now, now)
    assert sorted(again["window_start"]) == sorted(first["window_start"])


def test_dashboard_reader_sessions_whole_days_cached_once_no_duplicates():
    now = dt.datetime(2026, 1, 5, 10, 30, tzinfo=dt.UTC)
    days = [dt.date(2026, 1, 3), dt.date(2026, 1, 4), dt.date(2026, 1, 5)]
    cols = view_columns(tb.SESSIONS)
    rows = []
    for i, day in enumerate(days):
        t = naive(dt.datetime.combine(day, dt.time(9), dt.UTC))
        values = {**{c: 0 for c in cols}, "day": day, "session_id": f"s{i}", "start_ts": t,
                  "end_ts": t}
        rows.append((day, *(values[c] for c in cols)))  # sessions rows include `day`
    reader = ScriptedReader(rows)
    start = dt.datetime(2026, 1, 3, tzinfo=dt.UTC)
    first, n1 = reader.read(tb.SESSIONS, start, now, now)
    assert sorted(first["session_id"]) == ["s0", "s1", "s2"] and n1 == 3
    reader.queries.clear()
    again, n2 = reader.read(tb.SESSIONS, start, now, now)
    assert sorted(again["session_id"]) == ["s0", "s1", "s2"]
    assert n2 == 0  # today's partition is cached for SESSIONS_TTL, the others until settled
    reader.now += cache.SESSIONS_TTL + 1
    reader.queries.clear()
    third, n3 = reader.read(tb.SESSIONS, start, now, now)
    assert reader.queries == [(days[2],)] and sorted(third["session_id"]) == ["s0", "s1", "s2"]


def test_dashboard_reader_snapshot_reads_only_the_asked_tables():
    now = dt.datetime(2026, 1, 5, 10, 30, tzinfo=dt.UTC)
    reader = ScriptedReader([])
    snap = reader.snapshot("batch", "1 hour", {"data_quality", "sessions"}, now=now)
    assert set(snap.frames) == {"data_quality", "sessions"}
    assert set(reader.statements) == {"data_quality_batch", "sessions_batch"}
    with pytest.raises(KeyError, match="time_agg.*not read"):
        snap.frame("time_agg")
