"""The dashboard: first render in Chromium and server time per refresh cycle, hvplot charts
next to the plain-Bokeh reference, in one run.

Starts its OWN private Cassandra (free ports, a temp folder; never the user's data), loads
90 days of seeded batch traffic (a low event density, so the load takes about a minute),
serves the app in this process on free ports and drives Debian's Chromium with Playwright.
Everything below is measured on the same data with the app's charts (hvplot draws each
`ChartSpec` once per process, each session gets a copy; refreshes update its sources in
place) and with a plain-Bokeh reference (`bokeh_render`: the same specs drawn with
`bokeh.plotting` for every session, updated by the same in-place path).

* first render: navigation start -> Bokeh document idle with every chart of the open tab
  drawn, for the "all" range on the batch tables. Each server first warms up as
  `clickstream dashboard` does when it starts (`app.warm_up`: the first tab's 90 days read
  into the cache its sessions share, its charts drawn; the record gives its seconds), so
  every load finds the settled day partitions in the server's cache; the app before
  2026-12-03 had no warm-up: its first load reads from Cassandra (cold).
  Every variant has a server of its own, all up at once, and the loads alternate between
  them (the order rotated each round), so a noisy machine slows them alike; each record
  gives the ratios to the reference's load of the same round. Besides the app and the
  reference, two variants are measured for their first render only: the app before
  2026-12-03 (hvplot drawing every session's charts, with WebGL, its page added to the
  document root by root, Bokeh validating each session's document) and the app with
  WebGL, to show what the changes gained. Each load is split by the browser's Navigation
  Timing: the HTML (the server made the session: read, views, charts, page), the scripts
  loaded and run, then the document pulled over the websocket and drawn.
* refresh cycle: from the start of a refresh's read until the server's event loop is idle
  again (chart updates included). "changed" cycles alternate the range between "all" and
  "7 days", so every chart of the open tab gets new data; "steady" cycles are the periodic
  refresh with unchanged data. Each cycle is split into read (Cassandra + cache), frames
  (the views: pandas) and update (KPIs, chart sources, table), the rest being Bokeh's
  serialisation and the event loop.

    .venv/bin/python -m bench --only dashboard [--quick]
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import tempfile
import time
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
RENDER_TARGET_S = 3.0
CYCLE_TARGET_MS = 300.0
EVENTS_PER_SECOND = 0.03  # ~2,600 events a day: 90 days in ~240k events, ~420k rows


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18] if len(values) > 1 \
        else values[0]


def bokeh_render(spec, frame):
    """The plain-Bokeh reference: `spec` drawn with `bokeh.plotting`, its sources laid out
    as hvplot lays them out, so `Chart`'s in-place update fills both the same way. The
    reference draws every session's charts, as the plain-Bokeh app did."""
    from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter, Range1d
    from bokeh.plotting import figure

    from dashboards.charts import CHART_HEIGHT, PALETTE

    x, y, by = spec.x, spec.y, spec.by
    cols = {c: frame[c].tolist() for c in frame.columns}
    kw = dict(title=spec.full_title, height=CHART_HEIGHT, sizing_mode="stretch_width",
              tools="save,hover", toolbar_location="above")
    if spec.kind == "line":
        fig = figure(x_axis_type="datetime", x_range=Range1d(0, 1), y_range=Range1d(0, 1), **kw)
        for i, value in enumerate(spec.by_values):
            rows = frame[frame[by] == value]
            source = ColumnDataSource({c: rows[c].tolist() for c in frame.columns})
            fig.line(x=x, y=y, source=source, color=PALETTE[i % len(PALETTE)], line_width=2,
                     legend_label=str(value))
            fig.scatter(x=x, y=y, source=source, color=PALETTE[i % len(PALETTE)], size=4)
    elif spec.kind == "barh":
        fig = figure(y_range=FactorRange(factors=frame[x].astype(str).tolist()[::-1]),
                     x_range=Range1d(0, 1), **kw)
        fig.hbar(y=x, right=y, height=0.8, source=ColumnDataSource(cols), color=spec.color)
    elif by:
        offsets = list(zip(frame[x].astype(str), frame[by].astype(str), strict=True))
        fig = figure(x_range=FactorRange(factors=offsets), y_range=Range1d(0, 1), **kw)
        fig.vbar(x="xoffsets", top=y, width=0.8,
                 source=ColumnDataSource({"xoffsets": offsets, **cols}), color=PALETTE[0])
    elif frame[x].dtype.kind in "Miuf":
        fig = figure(x_axis_type="datetime" if frame[x].dtype.kind == "M" else "linear",
                     x_range=Range1d(0, 1), y_range=Range1d(0, 1), **kw)
        fig.vbar(x=x, top=y, width=0.8, source=ColumnDataSource(cols), color=spec.color)
    else:
        fig = figure(x_range=FactorRange(factors=frame[x].astype(str).tolist()),
                     y_range=Range1d(0, 1), **kw)
        fig.vbar(x=x, top=y, width=0.8, source=ColumnDataSource(cols), color=spec.color)
    if spec.y_format:
        (fig.xaxis if spec.kind == "barh" else fig.yaxis).formatter = \
            NumeralTickFormatter(format=spec.y_format)
    fig.toolbar.logo = None
    return fig


def load(settings, days: int) -> tuple[int, float]:
    """`days` of demo traffic ending now into the _batch tables: (rows, seconds)."""
    from shared.clients.cassandra import connect
    from testing import dashboard_data as demo

    t0 = time.monotonic()
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    events = demo.demo_events(5, end - dt.timedelta(days=days), end,
                              events_per_second=EVENTS_PER_SECOND)
    frames = demo.demo_frames(events, run_id="bench")
    cluster, session = connect(settings, settings.cassandra_keyspace, timeout=30)
    try:
        rows = demo.write_frames(session, settings.cassandra_keyspace, frames, modes=("batch",))
    finally:
        cluster.shutdown()
    return rows, time.monotonic() - t0


class Server:
    """The app served by Panel in a thread of this process; keeps every Dashboard made and
    the seconds each took to make (read, views, charts; not the page's document)."""

    def __init__(self, settings, refresh_seconds: float, chart_factory, dashboard=None,
                 validate: bool = False, warm: bool = True):
        import panel as pn
        from bokeh.settings import settings as bokeh_settings

        from dashboards import app

        dashboard = dashboard or app.Dashboard
        self.reader = app.reader_for(settings)
        self.dashboards: list = []
        self.made: list[float] = []
        #: the refresh period of the next session made (the page-load sessions get a long
        #: one, so they do not refresh in the background while cycles are measured)
        self.refresh_seconds = refresh_seconds
        from shared.clients.ports import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

        def make():
            # Bokeh's per-session document validation (a process setting, off in the app):
            # set per session, the variants' page loads never overlap
            bokeh_settings.perform_document_validation.set_value(validate)
            t0 = time.perf_counter()
            dash = dashboard(self.reader, chart_factory=chart_factory, mode="batch",
                             time_range="all", refresh_seconds=self.refresh_seconds)
            self.dashboards.append(dash)
            page = dash.__panel__()
            self.made.append(time.perf_counter() - t0)
            return page

        # threaded: the server runs its own IOLoop in a thread, the browser is driven here
        self.thread = pn.serve({"/": make}, address="127.0.0.1", port=self.port, show=False,
                               threaded=True, liveness=True, title=app.TITLE,
                               websocket_origin=[f"127.0.0.1:{self.port}"])
        _wait_http(self.url + "liveness", 60)
        # as `clickstream dashboard` does once it serves (there in a background thread)
        self.warm_up_s = (app.warm_up(self.reader, chart_factory=chart_factory, mode="batch",
                                      time_range="all") if warm else None)

    def stop(self) -> None:
        self.thread.stop()
        self.reader.close()


def _wait_http(url: str, timeout: float) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError as e:
            if time.monotonic() > deadline:
                raise RuntimeError(f"dashboard at {url} did not answer in {timeout}s: {e}") from e
            time.sleep(0.2)


def _charts_drawn_js() -> str:
    from integration_tests.dashboard_fixtures import RENDERED

    return RENDERED


#: Navigation Timing of the page (ms from navigation start): the HTML received, and the
#: scripts loaded and run (DOMContentLoaded's end)
NAV_TIMING = """() => { const n = performance.getEntriesByType("navigation")[0];
  return [n.responseEnd, n.domContentLoadedEventEnd]; }"""


def first_render(page, url: str) -> dict:
    """Seconds from navigation start until Bokeh is idle with every chart's canvas drawn
    (`total`), and when the HTML (`html`) and the scripts (`scripts`) were done."""
    from dashboards.specs import SPECS, TABS
    from integration_tests.dashboard_fixtures import CHARTS_WITH_DATA

    titles = [SPECS[n].full_title for n in next(iter(TABS.values()))]
    page.goto(url, wait_until="commit", timeout=180_000)
    page.wait_for_function(CHARTS_WITH_DATA, arg=titles, timeout=120_000, polling=20)
    page.wait_for_function(_charts_drawn_js(), timeout=120_000, polling=20)
    total = page.evaluate("performance.now()") / 1000
    html, scripts = (t / 1000 for t in page.evaluate(NAV_TIMING))
    return {"total": total, "html": html, "scripts": scripts}


def wait_cycles(dash, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(dash.cycles) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"refresh cycle {n} did not complete in {timeout}s")
        time.sleep(0.02)


def _webgl(render):
    """`render` as HoloViews draws by default: WebGL (the app draws on a 2D canvas)."""
    def draw(spec, frame):
        fig = render(spec, frame)
        fig.output_backend = "webgl"
        return fig
    return draw


#: variant -> its record name prefix, chart factory, Dashboard class (None: the app's),
#: whether Bokeh validates each session's document, and whether refresh cycles and tab
#: switches are measured too; the first is the app, the second the reference
def _variants() -> dict[str, dict]:
    import functools

    import panel as pn

    from dashboards import app
    from dashboards.charts import Chart, Drawings, render

    class RootByRoot(app.Dashboard):
        """The app's page added to the document as before 2026-12-03: one model-graph
        recompute per root."""
        page_template = pn.template.FastListTemplate

    return {
        "hvplot": dict(prefix="dashboard", chart=Chart, full=True),
        "bokeh": dict(prefix="dashboard_bokeh_reference",
                      chart=functools.partial(Chart, render=bokeh_render, drawings=None),
                      full=True),
        "hvplot_before": dict(prefix="dashboard_hvplot_before",
                              chart=functools.partial(Chart, render=_webgl(render),
                                                      drawings=None),
                              dashboard=RootByRoot, validate=True, warm=False),
        "hvplot_webgl": dict(prefix="dashboard_hvplot_webgl",
                             chart=functools.partial(Chart, render=_webgl(render),
                                                     drawings=Drawings())),
    }


def run(quick: bool = False) -> list[dict]:
    import logging

    from playwright.sync_api import sync_playwright

    from integration_tests.backends import local_settings
    from integration_tests.dashboard_fixtures import CHROMIUM_ARGS
    from services.stack.stack import LocalStack

    # closed page-load sessions: bokeh warns per message it can no longer send
    logging.getLogger("bokeh.server.views.ws").setLevel(logging.ERROR)
    days = 30 if quick else 90
    loads = 3 if quick else 7  # per variant, alternating; the first is cold
    cycles = 12 if quick else 30
    load_before = os.getloadavg()[0]
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `apt-get install -y chromium`")
    variants = _variants()
    measured = {}
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-") as tmp:
        settings = local_settings(Path(tmp) / "stack", cassandra_heap="768m",
                                  cassandra_keyspace="clickstream_bench")
        stack = LocalStack(settings, ["cassandra"])
        try:
            stack.up()
            rows, load_s = load(settings, days)
            print(f"   loaded {rows:,} rows ({days} days) in {load_s:.0f}s", flush=True)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                servers = {}
                try:
                    # a server (and Reader cache) per variant: each starts cold
                    for variant, v in variants.items():
                        servers[variant] = Server(settings, refresh_seconds=3600.0,
                                                  chart_factory=v["chart"],
                                                  dashboard=v.get("dashboard"),
                                                  validate=v.get("validate", False),
                                                  warm=v.get("warm", True))
                    renders = _first_renders(browser, servers, loads)
                    for variant, v in variants.items():
                        full = v.get("full", False)
                        m = measured[variant] = {"renders": renders[variant],
                                                 "made": servers[variant].made[:loads],
                                                 "warm_up_s": servers[variant].warm_up_s}
                        if full:
                            m.update(_measure(browser, servers[variant], cycles))
                        line = f"   {variant}: first render {_median(m, 'total'):.2f}s"
                        if full:
                            line += f", refresh p95 {p95(m['changed']) * 1000:.0f} ms"
                        print(line, flush=True)
                finally:
                    for server in servers.values():
                        server.stop()
                    browser.close()
        finally:
            stack.down()
    load_after = os.getloadavg()[0]
    base = (f"machine load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} "
            f"CPUs; {days} days of batch data ({rows:,} rows, loaded in {load_s:.0f}s), "
            f"private Cassandra, in-process Panel servers, Chromium {CHROMIUM}")
    reference = measured["bokeh"]["renders"]
    records = []
    for variant, v in variants.items():
        records += _records(v["prefix"], variant, measured[variant], reference, base)
    return records


def _first_renders(browser, servers: dict, loads: int) -> dict[str, list[dict]]:
    """`loads` page loads per server, alternating between them (each round in another
    order), each in a fresh browser context (nothing cached)."""
    from integration_tests.dashboard_fixtures import local_only

    out: dict[str, list[dict]] = {v: [] for v in servers}
    names = list(servers)
    for i in range(loads):
        for variant in names[i % len(names):] + names[:i % len(names)]:
            url = servers[variant].url
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            local_only(page, url)
            out[variant].append(first_render(page, url))
            context.close()
    return out


def _median(m: dict, part: str, warm: bool = False) -> float:
    return statistics.median(r[part] for r in m["renders"][1 if warm else 0:])


def _records(prefix: str, variant: str, m: dict, reference: list[dict],
             base: str) -> list[dict]:
    what = {"hvplot": "charts drawn by hvplot once per process, each session's a copy, "
                      "sources updated in place (the app)",
            "bokeh": "reference: the same ChartSpecs drawn with plain bokeh.plotting for "
                     "every session, same updates",
            "hvplot_before": "the app before 2026-12-03: hvplot drawing every session's "
                             "charts with WebGL, the page added root by root, Bokeh "
                             "validating each session's document",
            "hvplot_webgl": "the app, but its charts drawn with WebGL (HoloViews' default)",
            }[variant]
    renders = m["renders"]
    first = ("runs[0] is cold (every day partition read from Cassandra), the others use the "
             "server's cache" if m["warm_up_s"] is None else
             f"runs[0] is the first page load after the server's warm-up ({m['warm_up_s']:.1f}"
             " s: the first tab's days read from Cassandra into the cache its sessions share, "
             "its charts drawn), as `clickstream dashboard` warms up when it starts")
    ratios = [r["total"] / ref["total"] for r, ref in zip(renders, reference, strict=True)]
    warm = {part: round(_median(m, part, warm=True), 2) for part in ("total", "html", "scripts")}
    made = [round(t * 1000) for t in m["made"]]
    out = [{
        "name": f"{prefix}_first_render_s", "value": round(_median(m, "total"), 2),
        "unit": "s", "runs": [round(r["total"], 2) for r in renders], "target": RENDER_TARGET_S,
        "warm_median_s": warm["total"],
        "ratio_to_reference": round(statistics.median(ratios[1:] or ratios), 2),
        "ratios_to_reference": [round(r, 2) for r in ratios],
        "html_median_s": warm["html"], "scripts_median_s": warm["scripts"],
        "session_made_ms": made,
        "warm_up_s": None if m["warm_up_s"] is None else round(m["warm_up_s"], 2),
        "notes": f"{what}. navigation start -> Bokeh document idle, every chart of the open "
                 f"tab drawn; 'all' range, batch tables; {first}; the variants' "
                 "loads alternate. Warm medians: HTML received "
                 f"{warm['html']:.2f} s (the server made the session: Dashboard made in "
                 f"{statistics.median(made[1:] or made)} ms median, then the page's "
                 f"document), scripts loaded and run {warm['scripts']:.2f} s, charts drawn "
                 f"{warm['total']:.2f} s (the document pulled over the websocket and drawn); "
                 f"ratio to the reference's load of the same round, median of the warm "
                 f"rounds, {statistics.median(ratios[1:] or ratios):.2f}. {base}"}]
    if "changed" not in m:
        return out
    changed, steady = m["changed"], m["steady"]
    out += [
        {"name": f"{prefix}_refresh_cycle_p95_ms", "value": round(p95(changed) * 1000),
         "unit": "ms", "runs": [round(c * 1000) for c in changed], "target": CYCLE_TARGET_MS,
         "median_ms": round(statistics.median(changed) * 1000), **m["changed_parts"],
         "notes": f"{what}. server time per refresh cycle (read start -> event loop idle "
                  "after the chart updates), range alternating all <-> 7 days so every "
                  "chart of the open tab gets new data; median "
                  f"{statistics.median(changed) * 1000:.0f} ms; "
                  f"{_describe(m['changed_parts'])}. {base}"},
        {"name": f"{prefix}_refresh_steady_p95_ms", "value": round(p95(steady) * 1000),
         "unit": "ms", "runs": [round(c * 1000) for c in steady], "target": CYCLE_TARGET_MS,
         "median_ms": round(statistics.median(steady) * 1000), **m["steady_parts"],
         "notes": f"{what}. periodic refresh (1 s) with unchanged data, 'all' range; median "
                  f"{statistics.median(steady) * 1000:.0f} ms; {_describe(m['steady_parts'])}. "
                  f"{base}"},
    ]
    if m["switches"]:
        out.append({"name": f"{prefix}_tab_switch_s",
                    "value": round(statistics.median(m["switches"]), 2), "unit": "s",
                    "runs": [round(t, 2) for t in m["switches"]],
                    "notes": f"{what}. click on a chart tab -> its tables read, its charts "
                             "drawn and Bokeh idle (each chart tab twice: first opening, "
                             f"then again after another tab). {base}"})
    return out


def _measure(browser, server, cycles: int) -> dict:
    """Refresh cycles (steady, then with new data) and tab switches in one page."""
    from integration_tests.dashboard_fixtures import local_only

    server.refresh_seconds = 1.0
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    local_only(page, server.url)
    page.goto(server.url, timeout=180_000)
    page.wait_for_function(_charts_drawn_js(), timeout=120_000)
    dash = server.dashboards[-1]
    visible = dash.visible_charts()
    drawn = page.locator(".chart:has(canvas)").count()
    if drawn < len(visible):
        raise RuntimeError(f"only {drawn} of {len(visible)} visible charts have a canvas")
    switches = _tab_switches(page, dash)
    # steady: the periodic callback with unchanged data
    wait_cycles(dash, 2)
    n0 = len(dash.cycles)
    wait_cycles(dash, n0 + cycles, timeout=cycles * 5)
    steady_cycles = list(dash.cycles)[n0:n0 + cycles]
    # changed: alternate the range; each switch gives every chart of the tab new data
    changed_cycles = []
    for i in range(cycles):
        label = "7 days" if i % 2 == 0 else "all"
        n = len(dash.cycles)
        page.locator(".range-select").get_by_text(label, exact=True).click(timeout=30_000)
        deadline = time.monotonic() + 60
        while True:
            new = [c for c in list(dash.cycles)[n:] if c["range"] == label]
            if new:
                changed_cycles.append(new[0])
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no refresh cycle for range {label!r} in 60s")
            time.sleep(0.02)
    page.wait_for_function(_charts_drawn_js(), timeout=60_000)
    context.close()
    return {"steady": [c["seconds"] for c in steady_cycles],
            "changed": [c["seconds"] for c in changed_cycles], "charts": len(dash.charts),
            "visible": len(visible), "switches": switches,
            "steady_parts": _breakdown(steady_cycles), "changed_parts": _breakdown(changed_cycles)}


PARTS = ("read", "frames", "update", "cpu")


def _breakdown(cycles: list[dict]) -> dict:
    """Median and p95 of each part of some cycles, in ms: read (Cassandra and the cache),
    frames (the views), update (KPIs, chart sources, table) and the process CPU."""
    out = {}
    for part in PARTS:
        values = [c[f"{part}_seconds"] for c in cycles if c.get(f"{part}_seconds") is not None]
        if values:
            out[f"{part}_median_ms"] = round(statistics.median(values) * 1000)
            out[f"{part}_p95_ms"] = round(p95(values) * 1000)
    return out


def _describe(parts: dict) -> str:
    return ", ".join(f"{p} median {parts[f'{p}_median_ms']} ms (p95 {parts[f'{p}_p95_ms']})"
                     for p in PARTS if f"{p}_median_ms" in parts)


def _tab_switches(page, dash) -> list[float]:
    """Seconds from a tab click until Bokeh is idle with that tab's charts drawn (each
    chart tab twice: first opening, then again after another tab)."""
    from dashboards.specs import SPECS, TABS
    from integration_tests.dashboard_fixtures import CHARTS_WITH_DATA

    labels = [label for label, names in TABS.items() if names]
    times = []
    for label in labels[1:] + labels:
        t0 = time.perf_counter()
        page.get_by_text(label, exact=True).click()
        titles = [SPECS[n].full_title for n in TABS[label]]
        page.wait_for_function(CHARTS_WITH_DATA, arg=titles, timeout=60_000, polling=20)
        page.wait_for_function(_charts_drawn_js(), timeout=60_000, polling=20)
        times.append(time.perf_counter() - t0)
    page.get_by_text(labels[0], exact=True).click()
    page.wait_for_function(_charts_drawn_js(), timeout=60_000)
    return times
