"""The Panel app and its hvplot charts without a browser: set parameters, refresh, assert
on component state."""

from __future__ import annotations

import datetime as dt
import time

import pandas as pd
import pytest
from bokeh.models import FactorRange

from dashboards import app, specs
from dashboards.charts import Chart
from dashboards.reader import DataUnavailable, Snapshot, empty_frame
from dashboards.views import KPI_TABLES
from shared import tables as tb

NOW = dt.datetime(2026, 1, 5, 10, tzinfo=dt.UTC)


def frames(mode: str = "stream", **rows) -> dict[str, pd.DataFrame]:
    out = {t.name: empty_frame(t) for t in (*tb.ANALYTICS, tb.INGEST_QUALITY)}
    out["revenue_hourly"] = pd.DataFrame({
        "window_start": [pd.Timestamp("2026-01-05 09:00")], "purchases": [2], "units": [2],
        "revenue_cents": [123456 if mode == "stream" else 100]})
    out.update({name: pd.DataFrame(r) for name, r in rows.items()})
    return out


class FakeReader:
    """Serves `frames()` (or `self.rows`), only the tables asked for; records each call."""

    def __init__(self, **rows):
        self.calls: list[tuple[str, str, frozenset]] = []
        self.down = False
        self.rows = rows

    def snapshot(self, mode, time_range, tables):
        self.calls.append((mode, time_range, frozenset(tables)))
        if self.down:
            raise DataUnavailable("Cassandra is not reachable: NoHostAvailable")
        all_frames = frames(mode, **self.rows)
        return Snapshot(mode, time_range, NOW - dt.timedelta(hours=1), NOW,
                        {t: all_frames[t] for t in tables})


def kpi(d: app.Dashboard, name: str) -> str:
    return d.kpi[name].format


def test_dashboard_app_refresh_shows_kpis_and_follows_mode():
    reader = FakeReader()
    d = app.Dashboard(reader)
    d.refresh_now()
    assert kpi(d, "revenue") == "$1,234.56" and not d.banner.visible
    d.mode = "batch"  # outside a server the watcher refreshes synchronously
    assert reader.calls[-1][:2] == ("batch", "24 hours")
    assert kpi(d, "revenue") == "$1.00"
    d.time_range = "15 min"
    assert reader.calls[-1][:2] == ("batch", "15 min")


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
    reader = FakeReader(revenue_hourly=empty_frame(tb.REVENUE_HOURLY))
    d = app.Dashboard(reader)
    d.refresh_now()
    assert d.empty_note.visible and "make stream" in d.empty_note.object


def test_dashboard_format_kpis_and_labels_say_what_they_count():
    assert specs.format_kpis({"conversion_rate": 0.01234, "events_per_minute": None}) == {
        **{k: "—" for k in specs.KPIS}, "conversion_rate": "1.23%"}
    assert specs.KPIS["sessions"][0] == "Sessions in range"  # not "active": the whole range
    assert not any("active" in label.lower() for label, _ in specs.KPIS.values())


def test_dashboard_app_reads_only_the_open_tabs_tables():
    reader = FakeReader()
    d = app.Dashboard(reader, mode="batch")  # the streaming tables add the watched ones
    d.main()  # the layout: tabs, the first one open
    d.refresh_now()
    overview = {specs.SPECS[n].table for n in specs.TABS["Overview"]}
    assert reader.calls[-1][2] == overview | set(KPI_TABLES)
    assert "product_views" not in reader.calls[-1][2]
    d.tabs.active = list(specs.TABS).index("Products")  # opening a tab reads its tables
    products = {"product_views", "product_cart_additions", "product_purchases", "product_actions"}
    assert reader.calls[-1][2] == products | set(KPI_TABLES)
    assert all(d.charts[n].updates == 1 for n in specs.TABS["Products"])
    d.tabs.active = list(specs.TABS).index(specs.TABLE_TAB)
    assert reader.calls[-1][2] == {"time_agg", *KPI_TABLES}
    d.table_name = "dead_letter" if "dead_letter" in d.param.table_name.objects else "sessions"
    assert d.table_name in reader.calls[-1][2]


def test_dashboard_warm_up_reads_and_draws_what_the_first_page_shows():
    """The server's warm-up reads the first tab's tables (as the first page would, through
    the same Reader whose cache the sessions share) and draws that tab's charts once."""
    from dashboards import charts

    drawings = charts.Drawings()  # the process's, here a fresh one
    reader = FakeReader()
    assert app.warm_up(reader, chart_factory=lambda spec: Chart(spec, drawings=drawings),
                       mode="batch", time_range="all") > 0
    overview = {specs.SPECS[n].table for n in specs.TABS["Overview"]}
    assert reader.calls == [("batch", "all", frozenset(overview | set(KPI_TABLES)))]
    assert len(drawings) == len(specs.TABS["Overview"])
    reader.down = True  # Cassandra unreachable: nothing to cache, no error either
    app.warm_up(reader)
    assert reader.calls[-1][:2] == ("stream", "24 hours")


def test_dashboard_app_charts_update_in_place_never_rebuilt():
    """A refresh never rebuilds a chart: the figure and every data source keep their ids."""
    reader = FakeReader()
    d = app.Dashboard(reader)
    d.main()
    d.refresh_now()
    overview = specs.TABS["Overview"]
    ids = {n: (d.charts[n].figure.id, sorted(s.id for s in d.charts[n].sources.values()))
           for n in overview}
    revenue = d.charts["revenue-time"]
    assert list(revenue.sources["main"].data["revenue"]) == [1234.56]
    before = {n: d.charts[n].updates for n in overview}
    d.refresh_now()  # same data: nothing is sent
    assert {n: d.charts[n].updates for n in overview} == before
    d.mode = "batch"  # only the revenue chart's data differs
    assert revenue.updates == before["revenue-time"] + 1
    assert list(revenue.sources["main"].data["revenue"]) == [1.0]
    assert {n: d.charts[n].updates for n in overview if n != "revenue-time"} == \
        {n: u for n, u in before.items() if n != "revenue-time"}
    d.time_range = "7 days"
    assert {n: (d.charts[n].figure.id, sorted(s.id for s in d.charts[n].sources.values()))
            for n in overview} == ids


def test_dashboard_every_original_table_is_charted_and_every_chart_on_one_tab():
    titles = " ".join(s.full_title for s in specs.CHARTS)
    assert [t.name for t in tb.ORIGINAL_TABLES if f"({t.name})" not in titles] == []
    on_tabs = [name for names in specs.TABS.values() for name in names]
    assert sorted(on_tabs) == sorted(specs.SPECS)


def test_dashboard_hidden_tabs_are_not_drawn_until_opened():
    d = app.Dashboard(FakeReader())
    d.main()
    d.refresh_now()
    assert {n for n, c in d.charts.items() if c.built} == set(specs.TABS["Overview"])
    assert {n for n, c in d.charts.items() if c.updates} == set(specs.TABS["Overview"])


def test_dashboard_chart_category_axis_and_ranges_follow_the_data():
    chart = Chart(specs.SPECS["devices"])
    chart.update(pd.DataFrame({"device_type": ["mobile", "tablet"], "page_views": [7, 3]}))
    assert chart.figure.x_range.factors == ["mobile", "tablet"]  # the view's order
    assert list(chart.sources["main"].data["page_views"]) == [7, 3]
    # axis ranges follow each new frame (auto ranges kept the first extent)
    assert (chart.figure.y_range.start, chart.figure.y_range.end) == (0, 7 * 1.08)
    chart.update(pd.DataFrame({"device_type": ["desktop"], "page_views": [50]}))
    assert chart.figure.x_range.factors == ["desktop"] and chart.figure.y_range.end == 54


def test_dashboard_chart_hourly_bars_span_their_window():
    chart = Chart(specs.SPECS["revenue-time"])
    hour = pd.Timestamp("2026-01-05 09:00")
    chart.update(pd.DataFrame({"time": [hour], "revenue": [12.5], "purchases": [1]}))
    (renderer,) = chart.figure.renderers
    assert renderer.glyph.width == 0.9 * 3_600_000
    ms = hour.value / 1e6
    x = chart.figure.x_range
    assert x.start < ms and ms + 3_600_000 < x.end < ms + 3 * 3_600_000


def test_dashboard_chart_horizontal_bars_first_row_on_top():
    chart = Chart(specs.SPECS["funnel"])
    chart.update(pd.DataFrame({"stage": ["Sessions", "Purchase"], "sessions": [10, 1],
                               "share": [1.0, 0.1]}))
    # Bokeh draws the first factor at the bottom: the funnel's first stage is last
    assert isinstance(chart.figure.y_range, FactorRange)
    assert chart.figure.y_range.factors == ["Purchase", "Sessions"]
    assert chart.figure.x_range.end == pytest.approx(10.8)


def test_dashboard_chart_grouped_bars_by_series():
    chart = Chart(specs.SPECS["campaign-actions"])
    chart.update(pd.DataFrame({"utm_campaign": ["x", "x"], "action": ["add_to_cart", "purchases"],
                               "actions": [5, 2]}))
    assert chart.figure.x_range.factors == [("x", "add_to_cart"), ("x", "purchases")]
    assert list(chart.sources["main"].data["actions"]) == [5, 2]


def test_dashboard_line_chart_one_renderer_set_per_series_and_one_point_still_draws():
    """The first minute of a stream is one point per page: a line glyph alone draws nothing
    for it, so every series also has a marker on the same source."""
    chart = Chart(specs.SPECS["page-views-time"])
    t = pd.Timestamp("2026-01-05 09:59")
    chart.update(pd.DataFrame({"time": [t], "page": ["homepage"], "page_views": [5]}))
    assert sorted(chart.sources) == sorted(specs.SPECS["page-views-time"].by_values)
    source = chart.sources["homepage"]
    assert list(source.data["page_views"]) == [5]
    assert list(chart.sources["cart"].data["page_views"]) == []
    glyphs = {type(r.glyph).__name__ for r in chart.figure.renderers if r.data_source is source}
    assert glyphs == {"Line", "Scatter"}


def test_dashboard_chart_grouped_bars_keep_two_level_factors_without_data():
    """Bokeh fails in the browser ("2 levels of factors with an L1FactorMap") if a nested
    category range is ever set to an empty, one-level list."""
    chart = Chart(specs.SPECS["campaign-actions"])
    chart.update(specs.SPECS["campaign-actions"].view(
        Snapshot("stream", "1 hour", NOW, NOW, {"campaign_actions":
                                                empty_frame(tb.CAMPAIGN_ACTIONS)})))
    assert chart.figure.x_range.factors and all(
        isinstance(f, tuple) and len(f) == 2 for f in chart.figure.x_range.factors)


def test_dashboard_chart_drawn_once_per_process_each_session_gets_its_own_models():
    """hvplot draws a chart once per process; every later Chart gets a copy of that
    drawing with model ids of its own (a Bokeh model belongs to one document), updated in
    place independently of the others."""
    from bokeh.document import Document
    from bokeh.models import HoverTool

    from dashboards import charts

    drawings, drawn = charts.Drawings(), []

    def counting(spec, frame):
        drawn.append(spec.name)
        return charts.render(spec, frame)

    spec = specs.SPECS["campaign-actions"]
    first, second = (Chart(spec, render=counting, drawings=drawings).ensure() for _ in "ab")
    assert drawn == ["campaign-actions"] and len(drawings) == 1
    a, b = first.figure, second.figure
    assert not {m.id for m in a.references()} & {m.id for m in b.references()}
    assert b.output_backend == "canvas" and b.title.text == spec.full_title
    assert b.x_range.factors == a.x_range.factors and isinstance(b.x_range.factors[0], tuple)
    assert [type(r.glyph) for r in b.renderers] == [type(r.glyph) for r in a.renderers]
    (hover,) = b.select(HoverTool)
    assert [tuple(t) for t in hover.tooltips] == [tuple(t) for t in a.select(HoverTool)[0].tooltips]
    second.update(pd.DataFrame({"utm_campaign": ["x", "x"], "action": ["add_to_cart", "purchases"],
                                "actions": [5, 2]}))
    assert list(second.sources["main"].data["actions"]) == [5, 2]
    assert list(first.sources["main"].data["actions"]) == []  # still its empty frame
    for fig in (a, b):  # each in a document of its own, as two browser sessions have
        Document().add_root(fig)


def test_dashboard_charts_are_drawn_one_at_a_time_and_once_across_threads():
    """The server's warm-up thread and a first browser session draw at the same time; HoloViews
    is not thread-safe (two threads drawing every spec failed inside it, 1 run in 3), so a
    drawing waits for the one in progress, and a chart being drawn is copied, not redrawn."""
    import threading

    from dashboards import charts

    drawings, drawn, entered = charts.Drawings(), [], threading.Event()
    spec = specs.SPECS["campaign-actions"]

    def slow(spec, frame):
        drawn.append(spec.name)
        entered.set()
        time.sleep(0.3)  # the other thread arrives while this one draws
        return charts.render(spec, frame)

    figures = []
    first = threading.Thread(
        target=lambda: figures.append(Chart(spec, render=slow, drawings=drawings).ensure()))
    first.start()
    assert entered.wait(10)
    figures.append(Chart(spec, render=slow, drawings=drawings).ensure())
    first.join(10)
    assert drawn == ["campaign-actions"] and len(figures) == 2
    assert figures[0].figure is not figures[1].figure

    # render itself: a second drawing waits while one holds HoloViews
    done = threading.Event()
    with charts.RENDERING:
        other = threading.Thread(target=lambda: (
            charts.render(spec, charts._placeholder(charts.empty_view(spec), spec)), done.set()))
        other.start()
        assert not done.wait(0.5)
    other.join(30)
    assert done.is_set()


def test_dashboard_chart_drawing_leaves_the_sessions_document_alone():
    """hv.render attaches its plot to curdoc() and sets that document's theme: in a served
    session's tab callback curdoc() is a proxy that refuses it (the tab's charts failed to
    draw). A drawing gets a document of its own."""
    from bokeh.document import Document
    from panel.io.state import set_curdoc

    from dashboards import charts

    doc = Document()
    theme = doc.theme
    spec = specs.SPECS["session-events"]
    with set_curdoc(doc):
        fig = charts.render(spec, charts._placeholder(charts.empty_view(spec), spec))
    assert doc.theme is theme and not doc.roots and fig.document is None


@pytest.mark.parametrize("spec", specs.CHARTS, ids=lambda s: s.name)
def test_dashboard_chart_value_axis_is_numeral_never_scientific(spec):
    """Bokeh's default ticks wrote 200,000 as 2.000e+5 (seen in the live demo's screenshot):
    the value axis (a barh's x) has the spec's numeral format, or thousands separators."""
    from bokeh.models import CategoricalTickFormatter, NumeralTickFormatter

    from dashboards import charts

    fig = charts.render(spec, charts._placeholder(charts.empty_view(spec), spec))
    value, other = (fig.xaxis, fig.yaxis) if spec.kind == "barh" else (fig.yaxis, fig.xaxis)
    (formatter,) = [a.formatter for a in value]
    assert isinstance(formatter, NumeralTickFormatter)
    assert formatter.format == (spec.y_format or "0,0.[00]")
    assert not any(isinstance(a.formatter, NumeralTickFormatter) for a in other)
    if spec.kind == "barh":
        assert all(isinstance(a.formatter, CategoricalTickFormatter) for a in other)


def test_dashboard_chart_copies_serialize_exactly_like_the_drawing():
    """Every chart's copy is the drawing: the same JSON to the browser, model ids aside."""
    import json
    import re

    from bokeh.core.serialization import Serializer

    from dashboards import charts

    def text(fig) -> str:
        ids: dict[str, int] = {}
        out = json.dumps(Serializer(deferred=False).serialize(fig).content)
        return re.sub(r'"id": "([^"]+)"', lambda m: f'"id": {ids.setdefault(m[1], len(ids))}', out)

    drawings = charts.Drawings()
    for spec in specs.CHARTS:
        frame = charts._placeholder(charts.empty_view(spec), spec)
        drawing = drawings.figure(spec.name, lambda: charts.render(spec, frame))  # noqa: B023
        copy = drawings.figure(spec.name, lambda: pytest.fail("drawn twice"))
        assert text(copy) == text(drawing), spec.name
        assert copy.id != drawing.id


def test_dashboard_charts_pass_bokehs_integrity_checks():
    """The served app skips Bokeh's per-session document validation (its cost is in the
    first render); the checks run here instead, on every chart with data and without."""
    from bokeh.core.validation.check import check_integrity

    from shared.events import PAGES

    t = pd.Timestamp("2026-01-05 09:00")
    reader = FakeReader(
        time_agg=pd.DataFrame({"window_start": [t] * len(PAGES), "page": list(PAGES),
                               "page_views": range(1, len(PAGES) + 1)}),
        device_distribution=pd.DataFrame({"window_start": [t], "device_type": ["mobile"],
                                          "page_views": [3]}))
    d = app.Dashboard(reader)
    d.main()
    d.refresh_now()  # draws the open tab's charts; opening a tab draws its own
    for label in specs.TABS:
        d.tabs.active = list(specs.TABS).index(label)
    assert all(c.built for c in d.charts.values())
    for name, chart in d.charts.items():
        issues = check_integrity(chart.figure.references())
        assert (issues.error, issues.warning) == ([], []), name
        chart.update(chart.spec.view(Snapshot("stream", "1 hour", NOW, NOW, {
            chart.spec.table: empty_frame(tb.table(chart.spec.table))})))
        issues = check_integrity(chart.figure.references())
        assert (issues.error, issues.warning) == ([], []), name
    assert app.bokeh_settings.perform_document_validation() is False


def test_dashboard_shared_reader_is_per_settings_never_the_first_ones():
    from shared.settings import Settings

    a = Settings(_env_file=None, cassandra_keyspace="ks_a")
    b = Settings(_env_file=None, cassandra_keyspace="ks_b")
    try:
        first = app.shared_reader(a)
        assert app.shared_reader(Settings(_env_file=None, cassandra_keyspace="ks_a")) is first
        assert app.shared_reader(b).keyspace == "ks_b"
        assert first.keyspace == "ks_a"
    finally:
        app.pn.state.clear_caches()


def test_dashboard_scenario_marks_shade_the_time_charts_only():
    from bokeh.models import BoxAnnotation

    from dashboards.charts import Mark

    start = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
    mark = Mark("flash-sale", start, start + dt.timedelta(minutes=30))
    dash = app.Dashboard(FakeReader(), marks=(mark,))
    shaded = {}
    for name in ("page-views-time", "site-views", "devices"):
        boxes = [a for a in dash.charts[name].ensure().figure.center
                 if isinstance(a, BoxAnnotation)]
        shaded[name] = [(b.left, b.right) for b in boxes]
    window = (start.timestamp() * 1000, (start + dt.timedelta(minutes=30)).timestamp() * 1000)
    assert shaded == {"page-views-time": [window], "site-views": [window], "devices": []}


def _time_agg(outage_from: dt.datetime | None) -> dict:
    """An hour of per-minute page views: 10 cart views and 5 orders (confirmation views)
    a minute, no orders from `outage_from` on. (The checkout page has no views: its events
    are a begin_checkout and a click.)"""
    minutes = pd.date_range(NOW - dt.timedelta(hours=1), NOW, freq="min", inclusive="left")
    rows = []
    for m in minutes:
        orders = 0 if outage_from is not None and m >= outage_from else 5
        at = m.tz_localize(None)
        rows += [(at, "cart", 10), (at, "confirmation", orders)]
    df = pd.DataFrame(rows, columns=["window_start", "page", "page_views"])
    return {"time_agg": df.assign(day=df["window_start"].dt.date)}


def test_dashboard_watch_flags_orders_stopping_and_stays_quiet_on_steady_traffic():
    from dashboards import watch

    outage = NOW - dt.timedelta(minutes=20)
    snap = FakeReader(**_time_agg(outage)).snapshot("stream", "1 hour", watch.TABLES)
    flagged = watch.alerts(snap)
    assert [(a.metric, a.flag.kind) for a in flagged] == [
        ("confirmation page views", "drop"), ("orders per cart view", "drop")]
    # the latest complete window: the one that ended at NOW is still within its grace
    assert flagged[0].flag.start_ms == int((NOW - dt.timedelta(minutes=10)).timestamp() * 1000)
    orders = {a.metric: a.flag for a in flagged}["orders per cart view"]
    assert (orders.value, orders.baseline) == (0, 5 / 10)  # 5 orders per 10 cart views before
    steady = FakeReader(**_time_agg(None)).snapshot("stream", "1 hour", watch.TABLES)
    assert watch.alerts(steady) == []


def test_dashboard_shows_the_watch_on_the_streaming_tables_only():
    d = app.Dashboard(FakeReader(**_time_agg(NOW - dt.timedelta(minutes=20))))
    d.refresh_now()
    assert d.watch_note.visible and "orders per cart view" in d.watch_note.object
    assert set(watch_tables()) <= d.reader.calls[-1][2]
    d.mode = "batch"
    assert not d.watch_note.visible
    assert not set(watch_tables()) & d.reader.calls[-1][2] - set(KPI_TABLES) - {
        specs.SPECS[n].table for n in d.visible_charts()}


def watch_tables() -> tuple[str, ...]:
    from dashboards import watch

    return watch.TABLES
