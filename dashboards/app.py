"""The live dashboard: a Panel app of hvplot charts over the Cassandra tables.

One `Dashboard` per browser session; all sessions of a server share one `Reader` (one
Cassandra session, prepared statements, a cache of closed windows). Each session refreshes
on its own periodic callback; the read runs in a worker thread so a slow or unreachable
Cassandra never blocks the server. A refresh reads only the tables of the open tab and the
KPIs (`specs.tables_for`), and updates only the open tab's charts, in place.

Serve it with `clickstream dashboard` (127.0.0.1:5006 by default), or for development:

    panel serve dashboards/app.py --liveness
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import datetime as dt
import io
import logging
import threading
import time

import pandas as pd
import panel as pn
import param
from bokeh.settings import settings as bokeh_settings

from dashboards import views, watch
from dashboards.charts import Chart
from dashboards.ranges import DEFAULT_RANGE, MODES, RANGES, table_for
from dashboards.reader import VIEW_TABLES, DataUnavailable, Reader, Snapshot
from dashboards.specs import CHARTS, KPIS, TABLE_TAB, TABS, format_kpis, tables_for

log = logging.getLogger(__name__)

ACCENT = "#0b6e4f"
TITLE = "Clickstream — live"
NO_DATA = "no data yet — run `make stream`"
WATCH_LINES = 5  # the most recent metrics that left their baseline


def _fmt(value, spec: str, none: str = "—") -> str:
    return none if value is None else spec.format(value)


class _Page(pn.template.FastListTemplate):
    """The page, added to a session's document with one recompute of its model graph.

    Bokeh recomputes a document's whole model graph after each root added, and the
    template adds nine (header, sidebar, main, modal, location...): frozen, the page's
    server_doc took 0.28 s per session instead of 0.44 s (same process, alternating).
    """

    def server_doc(self, doc=None, title=None, location=True):
        doc = doc if doc is not None else pn.state.curdoc
        if doc is None:
            return super().server_doc(doc, title, location)
        with doc.models.freeze():
            return super().server_doc(doc, title, location)


class Dashboard(pn.viewable.Viewer):
    """Stream/batch switch, time range, refresh interval; everything else is derived."""

    page_template = _Page  # the bench measures the plain FastListTemplate beside it
    mode = param.Selector(objects=list(MODES), default="stream", doc="stream or _batch tables")
    time_range = param.Selector(objects=list(RANGES), default=DEFAULT_RANGE)
    refresh_seconds = param.Number(default=5.0, bounds=(0.5, 3600), doc="auto-refresh period")
    table_name = param.Selector(objects=list(VIEW_TABLES), default="time_agg",
                                doc="table shown in the tabular view")
    error = param.String(default="", doc="set while Cassandra is unreachable")
    refreshes = param.Integer(default=0, doc="completed refreshes (for tests and the footer)")

    def __init__(self, reader: Reader, chart_factory=Chart, marks: tuple = (),
                 categories: dict[str, str] | None = None, **params):
        super().__init__(**params)
        self.reader = reader
        self.categories = dict(categories or {})  # product id -> category, for `watch`
        self.snapshot: Snapshot | None = None
        self.tabs: pn.Tabs | None = None
        self._callback = None
        self._doc = None
        self._busy = threading.Lock()
        #: one record per completed refresh cycle (seconds): from the start of the read
        #: until the server's event loop is idle again, and its parts, for the bench
        self.cycles: collections.deque[dict] = collections.deque(maxlen=1000)
        self.charts: dict[str, Chart] = {spec.name: chart_factory(spec) for spec in CHARTS}
        for chart in self.charts.values():
            chart.marks = tuple(marks)  # charts.Mark: windows shaded on the time charts
        self._stale: set[str] = set(self.charts)  # charts not updated since the last read
        self._build()
        self.param.watch(lambda *_: self.schedule_refresh(), ["mode", "time_range"])
        self.param.watch(self._set_period, ["refresh_seconds"])
        self.param.watch(lambda *_: self._on_table_name(), ["table_name"])

    # ------------------------------------------------------------------ layout
    def _build(self) -> None:
        self.banner = pn.pane.Alert("", alert_type="danger", visible=False,
                                    css_classes=["banner-down"], sizing_mode="stretch_width")
        self.empty_note = pn.pane.Alert(
            f"**{NO_DATA}** (or `clickstream dashboard --seed-demo` for a demo data set)",
            alert_type="info", visible=False, css_classes=["banner-empty"],
            sizing_mode="stretch_width")
        self.watch_note = pn.pane.Alert("", alert_type="warning", visible=False,
                                        css_classes=["banner-watch"], sizing_mode="stretch_width")
        self.kpi = {name: pn.indicators.Number(label=label, value=0, format="—", font_size="28pt",
                                               title_size="11pt",
                                               css_classes=["kpi", f"kpi-{name.replace('_', '-')}"])
                    for name, (label, _) in KPIS.items()}
        self.status = pn.pane.Markdown("", css_classes=["status-line"])
        self.session_numbers = pn.pane.Markdown("", css_classes=["session-stats"])
        self.table = pn.widgets.Tabulator(pd.DataFrame(), pagination="remote", page_size=15,
                                          sizing_mode="stretch_width", disabled=True,
                                          show_index=False, css_classes=["data-table"])
        self.download = pn.widgets.FileDownload(callback=self._csv, filename="time_agg.csv",
                                                label="Download CSV", color="primary",
                                                css_classes=["csv-download"])

    def _csv(self):
        self.download.filename = f"{table_for(self.table_name, self.mode).name}.csv"
        df = (views.table_view(self.snapshot, self.table_name)
              if self.snapshot is not None and self.snapshot.has([self.table_name])
              else pd.DataFrame())
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
        # A hidden tab's charts are only Python objects (not even a figure) until the tab
        # is opened: no document models, nothing sent, no canvas.
        c = {name: chart.pane for name, chart in self.charts.items()}

        def rows(names):
            return [pn.Row(*(c[n] for n in names[i:i + 2]), sizing_mode="stretch_width")
                    for i in range(0, len(names), 2)]

        pages = {label: pn.Column(*rows(names), sizing_mode="stretch_width")
                 for label, names in TABS.items()}
        pages["Sessions & quality"].objects = [
            pn.Row(c["session-events"], self.session_numbers, sizing_mode="stretch_width"),
            pn.Row(c["quality-time"], sizing_mode="stretch_width")]
        pages[TABLE_TAB].objects = [
            pn.Row(pn.widgets.Select.from_param(self.param.table_name, name="Table",
                                                css_classes=["table-select"]),
                   self.download),
            self.table]
        self.tabs = pn.Tabs(*pages.items(), dynamic=True, sizing_mode="stretch_width",
                            css_classes=["tabs"])
        self.tabs.param.watch(lambda *_: self._on_tab(), "active")
        return [
            self.banner,
            self.watch_note,
            self.empty_note,
            pn.FlexBox(*self.kpi.values(), css_classes=["kpis"]),
            self.tabs,
        ]

    def visible_charts(self) -> tuple[str, ...]:
        if self.tabs is None:  # no layout yet (unit tests): every chart
            return tuple(self.charts)
        return list(TABS.values())[self.tabs.active]

    def table_visible(self) -> bool:
        return self.tabs is None or list(TABS)[self.tabs.active] == TABLE_TAB

    def wanted_tables(self) -> set[str]:
        """What the next refresh reads: the open tab's tables, the KPIs' and, on the
        streaming tables, the watched ones (`watch`)."""
        return tables_for(self.visible_charts(),
                          [self.table_name] if self.table_visible() else [],
                          ) | (set(watch.tables(self.categories)) if self.mode == "stream"
                               else set())

    def _on_tab(self) -> None:
        """A tab was opened: show what the last read has for it, read what it lacks."""
        self._show_visible()
        if self.snapshot is not None and not self.snapshot.has(self.wanted_tables()):
            self.schedule_refresh()

    def _on_table_name(self) -> None:
        if self.snapshot is not None and self.snapshot.has([self.table_name]):
            self._update_table()
        else:
            self.schedule_refresh()

    def _show_visible(self) -> None:
        """Draw the open tab's charts and bring them up to the last snapshot."""
        for name in self.visible_charts():
            self.charts[name].ensure()
        if self.snapshot is None:
            return
        names = [n for n in self.visible_charts()
                 if n in self._stale and self.snapshot.has([self.charts[n].spec.table])]
        for name in names:
            self.charts[name].update(self.charts[name].spec.view(self.snapshot))
        self._stale.difference_update(names)
        if self.table_visible() and self.snapshot.has([self.table_name]):
            self._update_table()

    def __panel__(self):
        # one root for the whole main area: Bokeh recomputes the document's model graph per
        # root added, so one root per row made the first render several times slower
        template = self.page_template(
            title=TITLE, sidebar=[self.controls()],
            main=[pn.Column(*self.main(), sizing_mode="stretch_width")], accent=ACCENT,
            sidebar_width=260, main_layout=None)
        if _in_server():
            # the first read happens before the page is built, so the first render already
            # shows data (no second round of chart updates right after load); it runs in a
            # thread while hvplot draws the open tab's charts
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                t0, c0, wanted = time.perf_counter(), time.process_time(), self._wanted()
                pending = pool.submit(self._read, *wanted)
                self._show_visible()
                result = pending.result()
            self._cycle_done(t0, c0, wanted, result, self._apply(result))
            pn.state.onload(self.start)
        else:
            self._show_visible()
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

    def _wanted(self) -> tuple[str, str, frozenset[str]]:
        return self.mode, self.time_range, frozenset(self.wanted_tables())

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
                wanted = self._wanted()
                result = await asyncio.to_thread(self._read, *wanted)
                if wanted == self._wanted():
                    break  # else the user switched while we read: read again
        except BaseException:
            self._busy.release()
            raise

        def finish() -> None:
            try:
                parts = self._apply(result)
                self._cycle_done(t0, c0, wanted, result, parts)
            finally:
                self._busy.release()
            if self._wanted() != wanted:  # switched after the read: no need to wait a period
                self.schedule_refresh()

        if self._doc is not None and self._doc.session_context is not None:
            self._doc.add_next_tick_callback(finish)
        else:
            finish()

    def refresh_now(self) -> None:
        """The same refresh, synchronously (unit tests, bench)."""
        t0, c0 = time.perf_counter(), time.process_time()
        wanted = self._wanted()
        result = self._read(*wanted)
        parts = self._apply(result)
        self._cycle_done(t0, c0, wanted, result, parts)

    def _cycle_done(self, t0: float, c0: float, wanted, result, parts: dict) -> None:
        """Record the cycle once the event loop has run whatever the updates queued."""
        def done():
            ok = not isinstance(result, Exception)
            self.cycles.append({"seconds": time.perf_counter() - t0,
                                "cpu_seconds": time.process_time() - c0, "mode": wanted[0],
                                "range": wanted[1], "ok": ok, "tables": len(wanted[2]),
                                "read_seconds": result.read_seconds if ok else None, **parts})
        if self._doc is not None and self._doc.session_context is not None:
            self._doc.add_next_tick_callback(done)
        else:
            done()

    def _read(self, mode: str, time_range: str, tables: frozenset[str]):
        try:
            return self.reader.snapshot(mode, time_range, tables)
        except DataUnavailable as e:
            return e

    def _apply(self, result) -> dict:
        """Show a read (or its failure); returns the seconds spent building the frames and
        updating the charts."""
        now = dt.datetime.now(dt.UTC)
        if isinstance(result, Exception):
            self.error = str(result)
            self.banner.object = (f"**Cassandra is unreachable** — showing the last data read. "
                                  f"Retrying every {self.refresh_seconds:g} s. ({result})")
            self.banner.visible = True
            self.status.object = f"last attempt {now:%H:%M:%S} UTC: failed"
            return {}
        snap: Snapshot = result
        self.error = ""
        self.banner.visible = False
        self.snapshot = snap
        self.empty_note.visible = snap.empty
        t0 = time.perf_counter()
        texts = format_kpis(views.kpis(snap))
        visible = [n for n in self.visible_charts() if snap.has([self.charts[n].spec.table])]
        frames = {name: self.charts[name].spec.view(snap) for name in visible}
        st = views.session_stats(snap)
        t1 = time.perf_counter()
        for name, text in texts.items():
            self.kpi[name].format = text.replace("{", "{{").replace("}", "}}")
        for name, df in frames.items():
            self.charts[name].update(df)  # in place; unchanged charts send nothing
        self._stale = set(self.charts) - set(visible)
        self.session_numbers.object = (
            "### Session statistics\n\n"
            f"| | |\n|---|---|\n"
            f"| sessions | {st['sessions']:,} |\n"
            f"| average duration | {_fmt(st['avg_duration_s'], '{:,.0f} s')} |\n"
            f"| events per session | {_fmt(st['avg_events'], '{:.1f}')} |\n"
            f"| bounce rate | {_fmt(st['bounce_rate'], '{:.1%}')} |\n"
            f"| cart abandonment | {_fmt(st['cart_abandonment'], '{:.1%}')} |\n"
            f"| conversion | {_fmt(st['conversion_rate'], '{:.2%}')} |\n")
        if self.table_visible() and snap.has([self.table_name]):
            self._update_table()
        self._update_watch(snap)
        self.refreshes += 1
        t2 = time.perf_counter()
        server_ms = (snap.read_seconds + t2 - t0) * 1000
        self.status.object = (
            f"**{snap.mode}** tables, {snap.range_label}<br>"
            f"{snap.start:%Y-%m-%d %H:%M} → {snap.end:%H:%M:%S} UTC<br>"
            f"refresh #{self.refreshes}: {len(snap.frames)} tables, {snap.queries} queries, "
            f"{server_ms:.0f} ms")
        return {"frames_seconds": t1 - t0, "update_seconds": t2 - t1}

    def _update_watch(self, snap: Snapshot) -> None:
        cats = self.categories if snap.has(watch.tables(self.categories)) else None
        shown = (watch.alerts(snap, categories=cats)
                 if snap.mode == "stream" and snap.has(watch.TABLES) else [])[:WATCH_LINES]
        self.watch_note.object = watch.HEADING + "\n\n" + "\n".join(
            f"- {a.text}" for a in shown)
        self.watch_note.visible = bool(shown)

    def _update_table(self) -> None:
        self.table.value = views.table_view(self.snapshot, self.table_name)
        self.download.filename = f"{table_for(self.table_name, self.mode).name}.csv"


# --------------------------------------------------------------------------- serving
def _in_server() -> bool:
    """Inside a served session (panel serve or pn.serve), not an import or a unit test."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


def create_app(reader: Reader, refresh_seconds: float, marks: tuple = (),
               categories: dict[str, str] | None = None):
    """One session's app (Panel calls this per browser session)."""
    return Dashboard(reader, refresh_seconds=refresh_seconds, marks=marks,
                     categories=categories).__panel__()


def warm_up(reader: Reader, **params) -> float:
    """What the first browser session would do first, done before it comes: the first tab's
    tables read into the Reader's (process-wide) cache and its charts drawn by hvplot (once
    per process), so that the first page load costs what the next ones do. `params` are the
    Dashboard's (mode, time_range, marks...). Returns the seconds it took; Cassandra unreachable
    caches nothing (the page then shows its banner, as without a warm-up)."""
    t0 = time.perf_counter()
    dash = Dashboard(reader, **params)
    dash.__panel__()  # the layout, so that only the first tab's tables are read
    dash.refresh_now()
    return time.perf_counter() - t0


def reader_for(settings) -> Reader:
    """A Reader over the settings' Cassandra (it connects on first use)."""
    from shared.clients.cassandra import connect

    return Reader(connect=lambda: connect(settings, timeout=3),
                  keyspace=settings.cassandra_keyspace)


def shared_reader(settings) -> Reader:
    """The server process's Reader for these settings, shared by its browser sessions:
    cached per settings (all of them, so other settings get their own, never the first's)."""
    return pn.state.as_cached("clickstream-reader", lambda config: reader_for(settings),
                              config=tuple(settings.model_dump().items()))


pn.extension("tabulator", design="material", notifications=False)
# Bokeh checks every new session's whole document (0.14-0.24 s of the first render for the
# Overview tab's ~400 models, and it has never found an issue); the unit tests check every
# chart instead (test_dashboard_charts_pass_bokehs_integrity_checks)
bokeh_settings.perform_document_validation.set_value(False)

if pn.state.served:  # `panel serve dashboards/app.py`: run per browser session
    from shared.settings import get_settings

    create_app(shared_reader(get_settings()),
               get_settings().dashboard_refresh_seconds).servable(title=TITLE)
