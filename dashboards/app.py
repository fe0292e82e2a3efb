"""The live dashboard: a Panel app with Bokeh charts over the Cassandra tables.

One `Dashboard` per browser session; all sessions of a server share one `Reader` (one
Cassandra session, prepared statements, a cache of closed day partitions). Each session
refreshes on its own periodic callback; the read runs in a worker thread so a slow or
unreachable Cassandra never blocks the server. The charts (`dashboards.charts`) are Bokeh
figures built once per session; a refresh only replaces their data, and only for the
charts whose data changed.

Serve it with `clickstream dashboard` (127.0.0.1:5006 by default), or for development:

    panel serve dashboards/app.py --liveness
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import io
import logging
import threading
import time

import pandas as pd
import panel as pn
import param

from dashboards import charts as ch
from dashboards import data as dl
from shared.events import PAGES

log = logging.getLogger(__name__)

ACCENT = "#0b6e4f"
TITLE = "Clickstream — live"


# --------------------------------------------------------------------------- charts
def build_charts() -> dict[str, ch.Chart]:
    """Every chart, by name (its CSS class is `chart-<name>`); each title names its table."""
    charts = [
        ch.hbars("funnel", "Conversion funnel (sessions)", "stage", "sessions",
                 hover=[("share", "0.0%")]),
        ch.bars("devices", "Page views by device (device_distribution)", "device_type",
                ["page_views"], color=ACCENT),
        ch.lines("page-views-time", "Page views over time (time_agg)", "time", PAGES,
                 y_label="page views"),
        ch.bars("page-views-page", "Page views per page (time_agg)", "page", ["page_views"],
                color=ACCENT),
        ch.time_bars("site-views", "Site page views per hour (website_views)", "time",
                     "page_views"),
        ch.time_bars("revenue-time", "Revenue per hour, $ (revenue_hourly)", "time", "revenue",
                     y_format="$0,0.[00]", hover=["purchases"]),
        ch.bars("top-views", "Top products by views (product_views)", "product_id", ["views"]),
        ch.bars("top-cart", "Top products by cart additions (product_cart_additions)",
                "product_id", ["cart_additions"]),
        ch.bars("top-purchases", "Top products by purchases (product_purchases)", "product_id",
                ["purchases"]),
        ch.bars("top-revenue", "Top products by revenue, $ (product_purchases)", "product_id",
                ["revenue"], color=ACCENT, y_format="$0,0.[00]"),
        ch.bars("atc-rate", "Add-to-cart rate of the most viewed products (product_actions)",
                "product_id", ["add_to_cart_rate"], hover=["views", "add_to_cart"],
                y_format="0.0%"),
        ch.bars("duration", "Average time on page, s (agg_duration)", "page",
                ["avg_duration_s"], color=ACCENT, y_format="0.0"),
        ch.bars("campaign-events", "Events per campaign (campaign_events)", "utm_campaign",
                ["events"]),
        ch.bars("campaign-actions", "Add-to-cart and purchases per campaign (campaign_actions)",
                "utm_campaign", ["add_to_cart", "purchases"],
                labels=["add to cart", "purchases"], y_label="actions"),
        ch.bars("campaign-conversion", "Session conversion per campaign (campaign_conversion)",
                "utm_campaign", ["conversion_rate"], hover=["sessions", "converted"],
                color=ACCENT, y_format="0.0%"),
        ch.lines("quality-time", "Events and duplicates over time (data_quality)", "time",
                 ["events", "duplicates"]),
        ch.num_bars("session-events", "Events per session (sessions)", "events", "sessions"),
    ]
    return {c.name: c for c in charts}


def _top(snap: dl.Snapshot) -> dict[str, pd.DataFrame]:
    return snap.memo("top_products", lambda: dl.top_products(snap))


def _campaigns(snap: dl.Snapshot) -> pd.DataFrame:
    return snap.memo("campaigns", lambda: dl.campaign_performance(snap))


#: chart name -> the frame it shows
CHART_VIEWS = {
    "funnel": dl.funnel,
    "devices": dl.device_distribution,
    "page-views-time": dl.page_views_wide,
    "page-views-page": dl.page_views_per_page,
    "site-views": dl.site_views_over_time,
    "revenue-time": dl.revenue_over_time,
    "top-views": lambda s: _top(s)["views"],
    "top-cart": lambda s: _top(s)["cart_additions"],
    "top-purchases": lambda s: _top(s)["purchases"],
    "top-revenue": lambda s: _top(s)["revenue"],
    "atc-rate": dl.product_add_to_cart_rate,
    "duration": dl.avg_duration_per_page,
    "campaign-events": _campaigns,
    "campaign-actions": _campaigns,
    "campaign-conversion": lambda s: _campaigns(s).fillna({"conversion_rate": 0}),
    "quality-time": dl.quality_over_time,
    "session-events": dl.session_event_histogram,
}

#: tab label -> its charts, in layout order (two per row). Tabs are rendered only when
#: shown, and only the shown tab's charts are updated by a refresh.
TABS: dict[str, tuple[str, ...]] = {
    "Overview": ("funnel", "devices", "page-views-time", "page-views-page", "site-views",
                 "revenue-time"),
    "Products": ("top-views", "top-cart", "top-purchases", "top-revenue", "atc-rate"),
    "Campaigns": ("campaign-events", "campaign-actions", "campaign-conversion", "duration"),
    "Sessions & quality": ("session-events", "quality-time"),
    "Table rows": (),
}


def chart_frames(snap: dl.Snapshot, names=None) -> dict[str, pd.DataFrame]:
    """Chart name -> the frame it shows, for `names` (default: every chart)."""
    return {name: CHART_VIEWS[name](snap) for name in (names or CHART_VIEWS)}


def _fmt(value, spec: str, none: str = "—") -> str:
    return none if value is None else spec.format(value)


KPI_FORMATS = {
    "events_per_minute": ("Events / min", "{:,.1f}"),
    "active_sessions": ("Active sessions", "{:,}"),
    "conversion_rate": ("Conversion", "{:.2%}"),
    "revenue": ("Revenue", "${:,.2f}"),
    "invalid": ("Invalid", "{:,}"),
    "late": ("Late", "{:,}"),
    "duplicates": ("Duplicates", "{:,}"),
}


def format_kpis(k: dict) -> dict[str, str]:
    """KPI name -> the text shown in the header (what the browser test reads)."""
    return {name: _fmt(k.get(name), spec) for name, (_, spec) in KPI_FORMATS.items()}


# --------------------------------------------------------------------------- the app
class _Tabs(pn.Tabs):
    """Dynamic tabs that call `_before_render()` when a tab is opened, before its models
    are made: a figure updated only after its first render in a hidden-until-now tab
    stayed blank, one that has its data when it is rendered does not."""

    _before_render = None

    def _update_active(self, *events):
        if self._before_render is not None and any(e.name == "active" for e in events):
            self._before_render()
        super()._update_active(*events)


class Dashboard(pn.viewable.Viewer):
    """Stream/batch switch, time range, refresh interval; everything else is derived."""

    mode = param.Selector(objects=list(dl.MODES), default="stream", doc="stream or _batch tables")
    time_range = param.Selector(objects=list(dl.RANGES), default=dl.DEFAULT_RANGE)
    refresh_seconds = param.Number(default=5.0, bounds=(0.5, 3600), doc="auto-refresh period")
    table_name = param.Selector(objects=list(dl.VIEW_TABLES), default="time_agg",
                                doc="table shown in the tabular view")
    error = param.String(default="", doc="set while Cassandra is unreachable")
    refreshes = param.Integer(default=0, doc="completed refreshes (for tests and the footer)")

    def __init__(self, reader: dl.Reader, **params):
        super().__init__(**params)
        self.reader = reader
        self.snapshot: dl.Snapshot | None = None
        self.last_server_seconds = 0.0
        self.last_apply_seconds = 0.0
        self._callback = None
        self._doc = None
        self._busy = threading.Lock()
        #: one record per completed refresh cycle: seconds from the start of the read until
        #: the server's event loop is idle again (chart updates included), for the bench
        self.cycles: collections.deque[dict] = collections.deque(maxlen=1000)
        self._build()
        self.param.watch(lambda *_: self.schedule_refresh(), ["mode", "time_range"])
        self.param.watch(self._set_period, ["refresh_seconds"])
        self.param.watch(lambda *_: self._update_table(), ["table_name"])

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.banner = pn.pane.Alert("", alert_type="danger", visible=False,
                                    css_classes=["banner-down"], sizing_mode="stretch_width")
        self.empty_note = pn.pane.Alert(
            f"**{dl.NO_DATA}** (or `clickstream dashboard --seed-demo` for a demo data set)",
            alert_type="info", visible=False, css_classes=["banner-empty"],
            sizing_mode="stretch_width")
        self.kpi = {name: pn.indicators.Number(label=label, value=0, format="—", font_size="28pt",
                                               title_size="11pt",
                                               css_classes=["kpi", f"kpi-{name.replace('_', '-')}"])
                    for name, (label, _) in KPI_FORMATS.items()}
        self.status = pn.pane.Markdown("", css_classes=["status-line"])

        self.charts = build_charts()  # figures: built with the layout (`main`)
        self._stale: set[str] = set(self.charts)  # charts not updated since the last read

        self.session_numbers = pn.pane.Markdown("", css_classes=["session-stats"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(), pagination="remote", page_size=15,
                                          sizing_mode="stretch_width", disabled=True,
                                          show_index=False, css_classes=["data-table"])
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="time_agg.csv",
                                                label="Download CSV", color="primary",
                                                css_classes=["csv-download"])

    def _csv(self):
        self.download.filename = f"{dl.table_for(self.table_name, self.mode).name}.csv"
        df = dl.table_view(self.snapshot, self.table_name) if self.snapshot else pd.DataFrame()
        buf = io.StringIO()
        df.to_csv(buf, index=False)
        buf.seek(0)
        return buf

    def controls(self) -> pn.Column:
        return pn.Column(
            pn.pane.Markdown("**Tables**"),
            pn.widgets.RadioButtonGroup.from_param(self.param.mode, color="primary",
                                                   css_classes=["mode-switch"]),
            pn.pane.Markdown("**Time range**"),
            pn.widgets.RadioBoxGroup.from_param(self.param.time_range, name="",
                                                css_classes=["range-select"]),
            pn.widgets.FloatInput.from_param(self.param.refresh_seconds, name="Refresh every (s)",
                                             step=1, css_classes=["refresh-input"]),
            self.status,
        )

    def main(self) -> list:
        # Every figure exists before the tabs do (a figure added to a tab's layout after
        # the tab was rendered stayed blank); a hidden tab's figures are only Python
        # objects: no document models, nothing sent, no canvas, until the tab is opened.
        for chart in self.charts.values():
            chart.ensure()
        self._stale = set(self.charts)
        c = {name: chart.pane for name, chart in self.charts.items()}

        def rows(names):
            return [pn.Row(*(c[n] for n in names[i:i + 2]), sizing_mode="stretch_width")
                    for i in range(0, len(names), 2)]

        pages = {label: pn.Column(*rows(names), sizing_mode="stretch_width")
                 for label, names in TABS.items()}
        pages["Sessions & quality"].objects = [
            pn.Row(c["session-events"], self.session_numbers, sizing_mode="stretch_width"),
            pn.Row(c["quality-time"], sizing_mode="stretch_width")]
        pages["Table rows"].objects = [
            pn.Row(pn.widgets.Select.from_param(self.param.table_name, name="Table",
                                                css_classes=["table-select"]),
                   self.download),
            self.table]
        self.tabs = _Tabs(*pages.items(), dynamic=True, sizing_mode="stretch_width",
                          css_classes=["tabs"])
        self.tabs._before_render = self._show_tab
        return [
            self.banner,
            self.empty_note,
            pn.FlexBox(*self.kpi.values(), css_classes=["kpis"]),
            self.tabs,
        ]

    def visible_charts(self) -> tuple[str, ...]:
        tabs = getattr(self, "tabs", None)
        if tabs is None:  # no layout yet (unit tests): every chart
            return tuple(self.charts)
        return list(TABS.values())[tabs.active]

    def table_visible(self) -> bool:
        tabs = getattr(self, "tabs", None)
        return tabs is None or list(TABS)[tabs.active] == "Table rows"

    def _show_tab(self) -> None:
        """A tab was opened: bring its charts (and the table) up to the last snapshot."""
        for name in self.visible_charts():
            self.charts[name].ensure()
        if self.snapshot is None:
            return
        names = [n for n in self.visible_charts() if n in self._stale]
        for name, df in chart_frames(self.snapshot, names).items():
            self.charts[name].update(df)
        self._stale.difference_update(names)
        if self.table_visible():
            self._update_table()

    def __panel__(self):
        # one root for the whole main area: Bokeh recomputes the document's model graph per
        # root added, so one root per row made the first render several times slower
        template = pn.template.FastListTemplate(
            title=TITLE, sidebar=[self.controls()],
            main=[pn.Column(*self.main(), sizing_mode="stretch_width")], accent=ACCENT,
            sidebar_width=260, main_layout=None)
        self._show_tab()
        if _in_server():
            # the first read happens before the page is built, so the first render already
            # shows data (no second round of chart updates right after load)
            self.refresh_now()
            pn.state.onload(self.start)
        return template

    # ------------------------------------------------------------------ refresh
    def start(self) -> None:
        """Start this session's refresh loop (called once the page has loaded)."""
        self._doc = pn.state.curdoc
        self._callback = pn.state.add_periodic_callback(self.refresh,
                                                        period=int(self.refresh_seconds * 1000))
        self.schedule_refresh()

    def _set_period(self, event) -> None:
        if self._callback is not None:
            self._callback.period = int(event.new * 1000)

    def schedule_refresh(self) -> None:
        if _in_server() and self._callback is not None:
            pn.state.execute(self.refresh, schedule=True)
        else:
            self.refresh_now()

    async def refresh(self) -> None:
        """Read in a worker thread, then update the page; skip if a refresh is running.

        The update runs as a next-tick callback of the document: Bokeh applies it with
        the document lock held (a coroutine resumed after an await may not hold it, and
        changing Bokeh models without it fails)."""
        if not self._busy.acquire(blocking=False):
            return
        try:
            while True:
                t0, c0 = time.perf_counter(), time.process_time()
                wanted = (self.mode, self.time_range)
                result = await asyncio.to_thread(self._read, *wanted)
                if wanted == (self.mode, self.time_range):
                    break  # else the user switched while we read: read again
        except BaseException:
            self._busy.release()
            raise

        def finish() -> None:
            try:
                self._apply(result)
                self._cycle_done(t0, c0, wanted, result)
            finally:
                self._busy.release()

        if self._doc is not None and self._doc.session_context is not None:
            self._doc.add_next_tick_callback(finish)
        else:
            finish()

    def refresh_now(self) -> None:
        """The same refresh, synchronously (unit tests, bench)."""
        t0, c0 = time.perf_counter(), time.process_time()
        wanted = (self.mode, self.time_range)
        result = self._read(*wanted)
        self._apply(result)
        self._cycle_done(t0, c0, wanted, result)

    def _cycle_done(self, t0: float, c0: float, wanted: tuple[str, str], result) -> None:
        """Record the cycle once the event loop has run whatever the updates queued."""
        def done():
            ok = not isinstance(result, Exception)
            self.cycles.append({"seconds": time.perf_counter() - t0,
                                "cpu_seconds": time.process_time() - c0, "mode": wanted[0],
                                "range": wanted[1], "ok": ok,
                                "read_seconds": result.read_seconds if ok else None,
                                "apply_seconds": self.last_apply_seconds})
        if self._doc is not None and self._doc.session_context is not None:
            self._doc.add_next_tick_callback(done)
        else:
            done()

    def _read(self, mode: str, time_range: str):
        try:
            return self.reader.snapshot(mode, time_range)
        except dl.DataUnavailable as e:
            return e

    def _apply(self, result) -> None:
        t0 = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        if isinstance(result, Exception):
            self.error = str(result)
            self.banner.object = (f"**Cassandra is unreachable** — showing the last data read. "
                                  f"Retrying every {self.refresh_seconds:g} s. ({result})")
            self.banner.visible = True
            self.status.object = f"last attempt {now:%H:%M:%S} UTC: failed"
            return
        snap: dl.Snapshot = result
        self.error = ""
        self.banner.visible = False
        self.snapshot = snap
        self.empty_note.visible = snap.empty
        texts = format_kpis(dl.kpis(snap))
        for name, text in texts.items():
            self.kpi[name].format = text.replace("{", "{{").replace("}", "}}")
        visible = self.visible_charts()
        for name, df in chart_frames(snap, visible).items():
            self.charts[name].update(df)  # in place; unchanged charts send nothing
        self._stale = set(self.charts) - set(visible)
        st = dl.session_stats(snap)
        self.session_numbers.object = (
            "### Session statistics\n\n"
            f"| | |\n|---|---|\n"
            f"| sessions | {st['sessions']:,} |\n"
            f"| average duration | {_fmt(st['avg_duration_s'], '{:,.0f} s')} |\n"
            f"| events per session | {_fmt(st['avg_events'], '{:.1f}')} |\n"
            f"| bounce rate | {_fmt(st['bounce_rate'], '{:.1%}')} |\n"
            f"| cart abandonment | {_fmt(st['cart_abandonment'], '{:.1%}')} |\n"
            f"| conversion | {_fmt(st['conversion_rate'], '{:.2%}')} |\n")
        if self.table_visible():
            self._update_table()
        self.refreshes += 1
        self.last_apply_seconds = time.perf_counter() - t0
        self.last_server_seconds = snap.read_seconds + self.last_apply_seconds
        self.status.object = (
            f"**{snap.mode}** tables, {snap.range_label}<br>"
            f"{snap.start:%Y-%m-%d %H:%M} → {snap.end:%H:%M:%S} UTC<br>"
            f"refresh #{self.refreshes}: {snap.queries} queries, "
            f"{self.last_server_seconds * 1000:.0f} ms")

    def _update_table(self) -> None:
        if self.snapshot is None:
            return
        df = dl.table_view(self.snapshot, self.table_name)
        self.table.value = df
        self.download.filename = f"{dl.table_for(self.table_name, self.mode).name}.csv"


# --------------------------------------------------------------------------- serving
def _in_server() -> bool:
    """Inside a served session (panel serve or pn.serve), not an import or a unit test."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


_READER: dl.Reader | None = None
_READER_LOCK = threading.Lock()


def shared_reader(settings=None) -> dl.Reader:
    """The server process's one Reader (one Cassandra session for every browser session)."""
    global _READER
    with _READER_LOCK:
        if _READER is None:
            from services.stack.cql import connect
            from shared.settings import get_settings

            s = settings or get_settings()
            _READER = dl.Reader(connect=lambda: connect(s, timeout=3),
                                keyspace=s.cassandra_keyspace)
        return _READER


def create_app(settings=None, refresh_seconds: float | None = None):
    """One session's app (Panel calls this per browser session)."""
    from shared.settings import get_settings

    s = settings or get_settings()
    dash = Dashboard(shared_reader(s),
                     refresh_seconds=refresh_seconds or s.dashboard_refresh_seconds)
    return dash.__panel__()


pn.extension("tabulator", design="material", notifications=False)

if pn.state.served:
    create_app().servable(title=TITLE)
