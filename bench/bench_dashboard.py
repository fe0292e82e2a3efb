"""The dashboard: first complete render in Chromium and server time per refresh cycle.

Starts its OWN private Cassandra (free ports, a temp folder; never the user's data), loads
90 days of seeded batch traffic (a low event density, so the load takes about a minute),
serves the app in this process on a free port and drives Debian's Chromium with Playwright:

* first render: navigation start -> Bokeh document idle with every chart drawn, for the
  "all" range on the batch tables; the first load reads 90 days from Cassandra (cold),
  the others find the settled day partitions in the server's cache.
* refresh cycle: from the start of a refresh's read until the server's event loop is idle
  again (chart updates included), p95. "changed" cycles alternate the range between
  "all" and "7 days", so every chart gets new data; "steady" cycles are the periodic
  refresh with unchanged data.

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


def load(settings, days: int) -> tuple[int, float]:
    """`days` of demo traffic ending now into the _batch tables: (rows, seconds)."""
    from dashboards import demo
    from services.stack.cql import connect

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
    """The app served by Panel in a thread of this process; keeps every Dashboard made."""

    def __init__(self, settings, refresh_seconds: float):
        import panel as pn

        from dashboards import app
        from dashboards import data as dl
        from services.stack.cql import connect
        from services.stack.ports import free_port

        self.reader = dl.Reader(connect=lambda: connect(settings, timeout=3),
                                keyspace=settings.cassandra_keyspace)
        self.dashboards: list = []
        #: the refresh period of the next session made (the page-load sessions get a long
        #: one, so they do not refresh in the background while cycles are measured)
        self.refresh_seconds = refresh_seconds
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"

        def make():
            dash = app.Dashboard(self.reader, mode="batch", time_range="all",
                                 refresh_seconds=self.refresh_seconds)
            self.dashboards.append(dash)
            return dash.__panel__()

        # threaded: the server runs its own IOLoop in a thread, the browser is driven here
        self.thread = pn.serve({"/": make}, address="127.0.0.1", port=self.port, show=False,
                               threaded=True, liveness=True, title=app.TITLE,
                               websocket_origin=[f"127.0.0.1:{self.port}"])
        _wait_http(self.url + "liveness", 60)

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


def first_render(page, url: str) -> float:
    """Seconds from navigation start until Bokeh is idle with every chart's canvas drawn."""
    page.goto(url, wait_until="commit", timeout=180_000)
    page.wait_for_function(_charts_drawn_js(), timeout=120_000, polling=20)
    return page.evaluate("performance.now()") / 1000


def wait_cycles(dash, n: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while len(dash.cycles) < n:
        if time.monotonic() > deadline:
            raise RuntimeError(f"refresh cycle {n} did not complete in {timeout}s")
        time.sleep(0.02)


def run(quick: bool = False) -> list[dict]:
    import logging

    from playwright.sync_api import sync_playwright

    from integration_tests.backends import local_settings
    from integration_tests.dashboard_fixtures import CHROMIUM_ARGS
    from services.stack.stack import LocalStack

    # closed page-load sessions: bokeh warns per message it can no longer send
    logging.getLogger("bokeh.server.views.ws").setLevel(logging.ERROR)
    days = 30 if quick else 90
    loads = 4  # the first is cold
    cycles = 30
    load_before = os.getloadavg()[0]
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: run `apt-get install -y chromium`")
    with tempfile.TemporaryDirectory(prefix="clickstream-bench-") as tmp:
        settings = local_settings(Path(tmp) / "stack", cassandra_heap="768m",
                                  cassandra_keyspace="clickstream_bench")
        stack = LocalStack(settings, ["cassandra"])
        try:
            stack.up()
            rows, load_s = load(settings, days)
            print(f"   loaded {rows:,} rows ({days} days) in {load_s:.0f}s", flush=True)
            server = Server(settings, refresh_seconds=1.0)
            try:
                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                    try:
                        (renders, steady, changed, charts, visible, switches, steady_parts,
                         changed_parts) = _measure(browser, server, loads, cycles)
                    finally:
                        browser.close()
            finally:
                server.stop()
        finally:
            stack.down()
    load_after = os.getloadavg()[0]
    base = f"machine load average {load_before:.1f} -> {load_after:.1f} on {os.cpu_count()} " \
           f"CPUs; {days} days of batch data ({rows:,} rows, loaded in {load_s:.0f}s), " \
           f"{charts} charts ({visible} on the first tab), private Cassandra, in-process " \
           f"Panel server, Chromium {CHROMIUM}"
    tabs = [{"name": "dashboard_tab_switch_s", "value": round(statistics.median(switches), 2),
             "unit": "s", "runs": [round(t, 2) for t in switches],
             "notes": "click on a chart tab -> its charts drawn and Bokeh idle (the charts of "
                      f"hidden tabs are rendered when their tab is opened). {base}"}] \
        if switches else []
    return [
        {"name": "dashboard_first_render_s", "value": round(statistics.median(renders), 2),
         "unit": "s", "runs": [round(r, 2) for r in renders], "target": RENDER_TARGET_S,
         "notes": "navigation start -> Bokeh document idle, every chart of the open tab "
                  "drawn; 'all' range, batch tables; runs[0] is cold (every day partition "
                  f"read from Cassandra), the others use the server's cache. {base}"},
        {"name": "dashboard_refresh_cycle_p95_ms", "value": round(p95(changed) * 1000),
         "unit": "ms", "runs": [round(c * 1000) for c in changed], "target": CYCLE_TARGET_MS,
         "notes": "server time per refresh cycle (read start -> event loop idle after the "
                  "chart updates), range alternating all <-> 7 days so every chart of the "
                  f"open tab redraws; median {statistics.median(changed) * 1000:.0f} ms; "
                  f"{changed_parts}. {base}"},
        {"name": "dashboard_refresh_steady_p95_ms", "value": round(p95(steady) * 1000),
         "unit": "ms", "runs": [round(c * 1000) for c in steady], "target": CYCLE_TARGET_MS,
         "notes": "periodic refresh (1 s) with unchanged data, 'all' range; median "
                  f"{statistics.median(steady) * 1000:.0f} ms; {steady_parts}. {base}"},
        *tabs,
    ]


def _measure(browser, server, loads: int, cycles: int):
    from integration_tests.dashboard_fixtures import local_only

    renders = []
    server.refresh_seconds = 3600.0
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        local_only(page, server.url)
        renders.append(first_render(page, server.url))
        context.close()

    server.refresh_seconds = 1.0
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    local_only(page, server.url)
    page.goto(server.url, timeout=180_000)
    page.wait_for_function(_charts_drawn_js(), timeout=120_000)
    dash = server.dashboards[-1]
    charts = len(getattr(dash, "charts", {}))
    visible = dash.visible_charts() if hasattr(dash, "visible_charts") else tuple(dash.charts)
    drawn = page.locator(".chart:has(canvas)").count()
    if drawn < len(visible):
        raise RuntimeError(f"only {drawn} of {len(visible)} visible charts have a canvas")
    switches = _tab_switches(page, dash)
    # steady: the periodic callback with unchanged data
    wait_cycles(dash, 2)
    n0 = len(dash.cycles)
    wait_cycles(dash, n0 + cycles, timeout=cycles * 5)
    steady_cycles = list(dash.cycles)[n0:n0 + cycles]
    steady = [c["seconds"] for c in steady_cycles]
    print(f"   steady cycles: median {statistics.median(steady) * 1000:.0f} ms", flush=True)
    # changed: alternate the range; each switch redraws every chart
    changed, changed_cycles = [], []
    for i in range(cycles):
        label = "7 days" if i % 2 == 0 else "all"
        n = len(dash.cycles)
        page.locator(".range-select").get_by_text(label, exact=True).click(timeout=30_000)
        deadline = time.monotonic() + 60
        while True:
            new = [c for c in list(dash.cycles)[n:] if c["range"] == label]
            if new:
                changed.append(new[0]["seconds"])
                changed_cycles.append(new[0])
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"no refresh cycle for range {label!r} in 60s")
            time.sleep(0.02)
    page.wait_for_function(_charts_drawn_js(), timeout=60_000)
    context.close()
    return (renders, steady, changed, charts, len(visible), switches,
            _breakdown(steady_cycles), _breakdown(changed_cycles))


def _breakdown(cycles: list[dict]) -> str:
    """Median read / apply / CPU of some cycles, for the notes."""
    def med(key: str) -> str:
        values = [c[key] for c in cycles if c.get(key) is not None]
        return f"{statistics.median(values) * 1000:.0f}" if values else "n/a"

    cpu = [c["cpu_seconds"] for c in cycles if c.get("cpu_seconds") is not None]
    cpu_p95 = f"{p95(cpu) * 1000:.0f}" if cpu else "n/a"
    return (f"median read {med('read_seconds')} ms, apply {med('apply_seconds')} ms, "
            f"process CPU {med('cpu_seconds')} ms (p95 {cpu_p95} ms)")

def _tab_switches(page, dash) -> list[float]:
    """Seconds from a tab click until Bokeh is idle with that tab's charts drawn (each
    chart tab twice: first opening, then again after another tab)."""
    if not hasattr(dash, "tabs"):  # a layout without tabs (the previous app)
        return []
    from dashboards.app import TABS

    labels = [label for label, names in TABS.items() if names]
    times = []
    for label in labels[1:] + labels:
        t0 = time.perf_counter()
        page.get_by_text(label, exact=True).click()
        n = len(TABS[label])
        page.locator(".chart:has(canvas)").nth(n - 1).wait_for(timeout=60_000)
        page.wait_for_function(_charts_drawn_js(), timeout=60_000, polling=20)
        times.append(time.perf_counter() - t0)
    page.get_by_text(labels[0], exact=True).click()
    page.wait_for_function(_charts_drawn_js(), timeout=60_000)
    return times
