"""The Panel app without a browser: set parameters, refresh, assert on component state."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from dashboards import app
from dashboards import data as dl
from shared import tables as tb


class FakeReader:
    def __init__(self):
        self.calls: list[tuple[str, str]] = []
        self.down = False

    def snapshot(self, mode, time_range):
        self.calls.append((mode, time_range))
        if self.down:
            raise dl.DataUnavailable("Cassandra is not reachable: NoHostAvailable")
        now = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)
        frames = {b: dl.empty_frame(dl.table_for(b, mode)) for b in dl.VIEW_TABLES}
        frames["revenue_hourly"] = pd.DataFrame({
            "window_start": [pd.Timestamp("2026-01-05 09:00")], "purchases": [2], "units": [2],
            "revenue_cents": [123456 if mode == "stream" else 100]})
        return dl.Snapshot(mode, time_range, now - dt.timedelta(hours=1), now, frames,
                           dl.empty_frame(tb.INGEST_QUALITY))


def kpi(d: app.Dashboard, name: str) -> str:
    return d.kpi[name].format


def test_dashboard_app_refresh_shows_kpis_and_follows_mode():
    reader = FakeReader()
    d = app.Dashboard(reader)
    d.refresh_now()
    assert kpi(d, "revenue") == "$1,234.56" and not d.banner.visible
    d.mode = "batch"  # outside a server the watcher refreshes synchronously
    assert reader.calls[-1] == ("batch", dl.DEFAULT_RANGE)
    assert kpi(d, "revenue") == "$1.00"
    d.time_range = "15 min"
    assert reader.calls[-1] == ("batch", "15 min")


def test_dashboard_app_banner_while_down_then_recovers():
    reader = FakeReader()
    d = app.Dashboard(reader)
    d.refresh_now()
    reader.down = True
    d.refresh_now()
    assert d.banner.visible and "unreachable" in d.banner.object
    assert kpi(d, "revenue") == "$1,234.56"  # the last data stays on screen
    reader.down = False
    d.refresh_now()
    assert not d.banner.visible and d.error == ""


def test_dashboard_app_empty_tables_show_the_hint():
    reader = FakeReader()
    reader.snapshot = lambda mode, rng: dl.Snapshot(
        mode, rng, dt.datetime.now(dt.UTC), dt.datetime.now(dt.UTC),
        {b: dl.empty_frame(dl.table_for(b, mode)) for b in dl.VIEW_TABLES},
        dl.empty_frame(tb.INGEST_QUALITY))
    d = app.Dashboard(reader)
    d.refresh_now()
    assert d.empty_note.visible and "make stream" in d.empty_note.object


def test_dashboard_format_kpis():
    assert app.format_kpis({"conversion_rate": 0.01234, "events_per_minute": None}) == {
        **{k: "—" for k in app.KPI_FORMATS}, "conversion_rate": "1.23%"}


def test_dashboard_app_charts_update_in_place_only_when_data_changes():
    reader = FakeReader()
    d = app.Dashboard(reader)
    figures = {name: c.figure for name, c in d.charts.items()}
    d.refresh_now()
    revenue = d.charts["revenue-time"]
    assert list(revenue.sources["main"].data["revenue"]) == [1234.56]
    before = {name: c.updates for name, c in d.charts.items()}
    d.refresh_now()  # same data: nothing is sent
    assert {name: c.updates for name, c in d.charts.items()} == before
    d.mode = "batch"  # only the revenue chart's data differs
    assert revenue.updates == before["revenue-time"] + 1
    assert list(revenue.sources["main"].data["revenue"]) == [1.0]
    assert {n: c.updates for n, c in d.charts.items() if n != "revenue-time"} == \
        {n: u for n, u in before.items() if n != "revenue-time"}
    assert {name: c.figure for name, c in d.charts.items()} == figures  # never rebuilt


def test_dashboard_app_every_original_table_is_charted():
    d = app.Dashboard(FakeReader())
    titles = " ".join(c.title for c in d.charts.values())
    missing = [t.name for t in tb.ORIGINAL_TABLES if f"({t.name})" not in titles]
    assert missing == []


def test_dashboard_app_category_axis_follows_the_data():
    reader = FakeReader()
    snap = reader.snapshot("stream", dl.DEFAULT_RANGE)
    snap.frames["device_distribution"] = pd.DataFrame({
        "window_start": [pd.Timestamp("2026-01-05 09:00")] * 2, "device_type": ["tablet", "mobile"],
        "page_views": [3, 7]})
    reader.snapshot = lambda mode, rng: snap
    d = app.Dashboard(reader)
    d.refresh_now()
    chart = d.charts["devices"]
    assert chart.figure.x_range.factors == ["mobile", "tablet"]  # most views first
    assert list(chart.sources["main"].data["page_views"]) == [7, 3]
    # axis ranges follow each new frame (Bokeh's auto ranges kept the first extent)
    assert (chart.figure.y_range.start, chart.figure.y_range.end) == (0, 7 * 1.08)
    hour = pd.Timestamp("2026-01-05 09:00").value / 1e6
    x = d.charts["revenue-time"].figure.x_range
    assert x.start < hour and hour + 3_600_000 < x.end < hour + 3 * 3_600_000



def test_dashboard_app_every_chart_is_on_exactly_one_tab_and_hidden_tabs_wait():
    on_tabs = [name for names in app.TABS.values() for name in names]
    assert sorted(on_tabs) == sorted(app.CHART_VIEWS) == sorted(app.build_charts())
    d = app.Dashboard(FakeReader())
    d.main()  # the layout: tabs, the first one open
    d.refresh_now()
    first = app.TABS["Overview"]
    assert {n for n, c in d.charts.items() if c.updates} == set(first)
    d.tabs.active = list(app.TABS).index("Products")  # opening a tab brings it up to date
    assert all(d.charts[n].updates == 1 for n in app.TABS["Products"])
    assert d.charts["quality-time"].updates == 0


def test_dashboard_line_chart_with_one_point_still_draws_it():
    """The first minute of a stream is one point per page: a line glyph alone draws nothing
    for it, so every line series also has a marker on the same data."""
    reader = FakeReader()
    snap = reader.snapshot("stream", dl.DEFAULT_RANGE)
    snap.frames["time_agg"] = pd.DataFrame({
        "window_start": [pd.Timestamp("2026-01-05 09:59")], "page": ["homepage"],
        "page_views": [5]})
    reader.snapshot = lambda mode, rng: snap
    d = app.Dashboard(reader)
    d.refresh_now()
    chart = d.charts["page-views-time"]
    source = chart.sources["main"]
    assert list(source.data["homepage"]) == [5]
    glyphs = {type(r.glyph).__name__ for r in chart.figure.renderers
              if r.data_source is source and getattr(r.glyph, "y", None) == "homepage"}
    assert glyphs == {"Line", "Scatter"}
