"""The dashboard's per-category watch (`dashboards.watch`) on hand-made product rows, and the
app reading and showing it only when it knows the categories. Expected values by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboards import app, watch
from dashboards.reader import Snapshot, empty_frame
from shared import tables as tb

NOW = dt.datetime(2026, 1, 5, 10, 20, tzinfo=dt.UTC)
HOUR = pd.Timestamp("2026-01-05 10:00")  # the current hour, naive UTC as the reader's
CATEGORIES = {"p1": "electronics", "p2": "electronics", "p3": "books", "p4": "books",
              "p5": "garden"}


def product_actions(rows: list[tuple]) -> pd.DataFrame:
    """(window_start, product_id, views, add_to_cart) rows as the reader gives them."""
    return pd.DataFrame(rows, columns=["window_start", "product_id", "views", "add_to_cart"])


def snapshot(rows: list[tuple], end: dt.datetime = NOW) -> Snapshot:
    frames = {t: empty_frame(tb.table(t)) for t in watch.TABLES}
    frames[watch.CATEGORY_TABLE] = product_actions(rows)
    return Snapshot("stream", "24 hours", end - dt.timedelta(hours=24), end, frames)


def hour_rows(at: pd.Timestamp, electronics_adds: int) -> list[tuple]:
    """2,000 product views per category, 60 cart additions (3%), electronics'
    `electronics_adds` (split over its two products); p9 is in no category."""
    e1 = electronics_adds // 2
    return [(at, "p1", 1200, e1), (at, "p2", 800, electronics_adds - e1),
            (at, "p3", 1400, 40), (at, "p4", 600, 20), (at, "p5", 2000, 60),
            (at, "p9", 5000, 1000)]


def test_watch_flags_the_category_whose_add_to_cart_rate_leaves_the_others():
    sale = snapshot(hour_rows(HOUR - pd.Timedelta(hours=1), 60) + hour_rows(HOUR, 120))
    alerts = watch.category_alerts(sale, CATEGORIES)
    assert [(a.metric, a.flag.kind) for a in alerts] == [
        ("electronics add-to-cart per product view (hour)", "spike")]
    flag = alerts[0].flag
    # 120 of 2,000 views vs (40 + 20 + 60) of 4,000 in the other two categories: x2.00;
    # p9 has no category and counts nowhere
    assert (flag.value, flag.baseline, flag.start_ms) == (0.06, 0.03, HOUR.value // 10**6)
    assert alerts[0].text == (
        "electronics add-to-cart per product view (hour): 2026-01-05 10:00 UTC: 0.06 "
        "(120 of 2,000) vs 0.03 in the other 2 categories together, x2.00, above 1.5x, with "
        "100 cart additions per 100 in the others vs 50 (median of 1 previous window): spike")
    # and `alerts`, which the app calls, lists it with the 5-minute metrics (none here)
    assert watch.alerts(sale, categories=CATEGORIES) == alerts
    assert watch.alerts(sale) == []  # no categories, no category watch


def test_watch_is_quiet_when_every_category_adds_to_carts_alike():
    steady = snapshot(hour_rows(HOUR - pd.Timedelta(hours=1), 60) + hour_rows(HOUR, 80))
    assert watch.category_alerts(steady, CATEGORIES) == []  # x1.33, under 1.5


def test_watch_is_quiet_when_a_crawler_dilutes_the_other_categories_views():
    """Views that never lead to a cart (a crawler's) on the other categories' products:
    electronics' rate is then x2.5 theirs, but its cart additions per cart addition
    elsewhere are what they were the hour before, so no flag."""
    before = hour_rows(HOUR - pd.Timedelta(hours=1), 60)
    crawler = {"p3": 1500, "p4": 1500, "p5": 3000}
    crawled = [(at, p, views + crawler.get(p, 0), adds)
               for at, p, views, adds in hour_rows(HOUR, 60)]
    assert watch.category_alerts(snapshot(before + crawled), CATEGORIES) == []
    # in the first hour of the data there is no hour before: the rate alone flags it
    assert [a.flag.kind for a in watch.category_alerts(snapshot(crawled), CATEGORIES)] == [
        "spike"]


def test_watch_judges_the_previous_hour_until_the_current_one_has_evidence():
    previous = hour_rows(HOUR - pd.Timedelta(hours=1), 120)
    # the current hour's first minutes: 10 views and at most 1 cart addition per product
    first_minutes = [(HOUR, p, 10, 1) for p in CATEGORIES]
    alerts = watch.category_alerts(snapshot(previous + first_minutes), CATEGORIES)
    assert [a.flag.start_ms for a in alerts] == [(HOUR - pd.Timedelta(hours=1)).value // 10**6]
    # once the current hour is judged, its verdict wins: the sale is over
    alerts = watch.category_alerts(snapshot(previous + hour_rows(HOUR, 60)), CATEGORIES)
    assert alerts == []
    # an hour older than the one before the current is never shown
    old = hour_rows(HOUR - pd.Timedelta(hours=2), 120)
    assert watch.category_alerts(snapshot(old), CATEGORIES) == []


def test_dashboard_reads_and_shows_the_category_watch_only_when_it_knows_the_categories():
    rows = hour_rows(HOUR, 120)

    class Reader:
        calls: list[frozenset] = []

        def snapshot(self, mode, time_range, tables):
            Reader.calls.append(frozenset(tables))
            frames = {t.name: empty_frame(t) for t in (*tb.ANALYTICS, tb.INGEST_QUALITY)}
            frames[watch.CATEGORY_TABLE] = product_actions(rows)
            return Snapshot(mode, time_range, NOW - dt.timedelta(hours=24), NOW,
                            {t: frames[t] for t in tables})

    d = app.Dashboard(Reader(), mode="stream", categories=CATEGORIES)
    d.main()  # the layout: the first tab open, which has no product chart
    d.refresh_now()
    assert watch.CATEGORY_TABLE in Reader.calls[-1]
    assert d.watch_note.visible and "electronics add-to-cart per product view" in \
        d.watch_note.object and "x2.00, above 1.5x: spike" in d.watch_note.object
    d.mode = "batch"  # the watch is on the streaming tables only
    assert not d.watch_note.visible
    plain = app.Dashboard(Reader(), mode="stream")
    plain.main()
    plain.refresh_now()
    assert watch.CATEGORY_TABLE not in Reader.calls[-1] and not plain.watch_note.visible
