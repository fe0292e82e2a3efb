"""The dashboard in a real browser (Chromium via Playwright) over a seeded Cassandra.

Expected KPI values are computed here with Polars straight from the simulated events,
never through the dashboard's views.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import polars as pl
import pytest

from dashboards.specs import SPECS, TABLE_TAB, TABS, format_kpis
from integration_tests.dashboard_fixtures import (  # noqa: F401 - fixtures
    ARTIFACTS,
    CHARTS_WITH_DATA,
    RENDERED,
    browser_context_args,
    browser_type_launch_args,
    expected_kpis,
    kpi_text,
    local_only,
    require_chromium,
    served_dashboard,
    wait_kpis,
)
from integration_tests.scenario_data import run_batch_job, write_events
from services.simulator import world
from services.simulator.scenarios import Window
from services.stack.schema import apply_cassandra_schema
from shared.clients.cassandra import connect
from testing import dashboard_data as demo


@pytest.fixture(scope="module")
def seeded(stack):
    """A private keyspace: stream tables hold events A, batch tables hold A's first half."""
    ks = f"dash_{uuid.uuid4().hex[:8]}"
    settings = stack.settings.model_copy(update={"cassandra_keyspace": ks})
    apply_cassandra_schema(settings)
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    raw = demo.demo_events(11, now - dt.timedelta(hours=2), now - dt.timedelta(minutes=20),
                           events_per_second=1.0)
    half = raw.filter(pl.col("timestamp") < now - dt.timedelta(hours=1))
    cluster, session = connect(settings, ks)
    demo.write_frames(session, ks, demo.demo_frames(raw, "stream-a"), modes=("stream",))
    demo.write_frames(session, ks, demo.demo_frames(half, "half"), modes=("batch",))
    yield settings, session, raw, half, now
    cluster.shutdown()


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower()).replace("---", "-")


def shot(page, name: str, status: str) -> None:
    """Screenshot once the status line names the mode/range and the charts are drawn."""
    page.locator(".status-line").get_by_text(status).first.wait_for(timeout=30_000)
    page.wait_for_function(RENDERED, timeout=60_000)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def test_dashboard_browser_shows_seeded_data_and_follows_updates(seeded, page):
    settings, session, raw, half, now = seeded
    with served_dashboard(settings, refresh=2.0) as url:
        local_only(page, url)
        page.goto(url)
        page.wait_for_function(RENDERED, timeout=60_000)

        # every chart is drawn, with data, when its tab is open: a sized canvas in its
        # container and a figure (found by its title) whose glyphs have rows
        for label, names in TABS.items():
            page.get_by_text(label, exact=True).click()
            titles = [SPECS[n].full_title for n in names]
            page.wait_for_function(CHARTS_WITH_DATA, arg=titles, timeout=60_000)
            page.wait_for_function(RENDERED, timeout=60_000)
            for name in names:
                canvas = page.locator(f".chart-{name} canvas").first
                canvas.wait_for(timeout=30_000)
                box = canvas.bounding_box()
                assert box and box["width"] > 200 and box["height"] > 150, name
            if label == TABLE_TAB:
                page.locator(".data-table .tabulator-row").first.wait_for(timeout=30_000)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"dashboard-tab-{slug(label)}.png"),
                            full_page=True)
        page.get_by_text("Overview", exact=True).click()

        # KPIs equal what is in Cassandra (computed independently from the events)
        wait_kpis(page, expected_kpis(raw))
        shot(page, "1-stream-24h", "stream")

        # new rows written while the page is open show up without a reload
        more = demo.demo_events(12, now - dt.timedelta(minutes=20), now, events_per_second=1.0)
        both = pl.concat([raw, more])
        demo.write_frames(session, settings.cassandra_keyspace,
                          demo.demo_frames(both, "stream-b"), modes=("stream",))
        expected = expected_kpis(both)
        expected["duplicates"] += raw.height - raw["event_id"].n_unique()  # run a's row stays
        wait_kpis(page, expected)
        shot(page, "2-stream-updated", "stream")

        # the stream/batch switch reads the _batch tables
        page.get_by_role("button", name="batch").click()
        wait_kpis(page, expected_kpis(half))
        shot(page, "3-batch-24h", "batch")

        # a 15-minute range: only the newest stream rows (the batch half is older)
        page.get_by_role("button", name="stream").click()
        page.get_by_text("15 min").click()
        page.locator(".status-line").get_by_text("15 min").wait_for(timeout=30_000)
        full = int(format_kpis(expected)["sessions"].replace(",", ""))
        page.wait_for_function(RENDERED, timeout=60_000)
        recent = int(kpi_text(page, "sessions").replace(",", ""))
        assert 0 < recent < full
        shot(page, "4-stream-15min", "15 min")


# ------------------------------------------------------------- a scenario on the dashboard
#: the shaded windows of the page: (figure title, left, right, the figure's x range, label)
SHADED = """() => {
  const out = [];
  for (const m of Bokeh.documents[0].all_models) {
    if (!(m.center && m.title && m.x_range)) continue;
    const labels = m.center.filter(a => a.constructor.__name__ === "Label").map(a => a.text);
    for (const a of m.center)
      if (a.constructor.__name__ === "BoxAnnotation")
        out.push([m.title.text, a.left, a.right, m.x_range.start, m.x_range.end, labels]);
  }
  return out;
}"""
OUTAGE_RATE = 12.0  # events/s at the time of day of the run: ~35 cart views per 5 minutes


@pytest.fixture(scope="module")
def outage(stack, tmp_path_factory):
    """A private keyspace whose streaming tables hold the last 90 minutes of traffic and a
    checkout outage that started 25 minutes ago, written by the real batch job.

    Not a live `make demo SCENARIO=checkout-outage@+20m`: the detector needs 15 minutes of
    history before it judges a window, and the demo's first micro-batch alone takes 1-3
    minutes here. The batch job writes the rows the streaming job writes for the same
    events (the truth tests pin both to the same Polars computation), and the dashboard
    is the same command, given the window as `make demo` gives it."""
    # till 20 minutes from now: whenever the page loads in that time, the window the
    # dashboard judges (the latest complete one) is inside the outage and full of data
    return _scenario_traffic(stack, tmp_path_factory, "checkout-outage", align_minutes=5,
                             history=90, started=25, left=20)


def _scenario_traffic(stack, tmp_path_factory, name: str, align_minutes: int, history: int,
                      started: int, left: int):
    """(settings of a fresh keyspace, the scenario's window): `history` minutes of seed-7
    traffic before the scenario, which started `started` minutes ago and ends in `left`,
    written to the keyspace's streaming tables by the real batch job."""
    settings = stack.settings.model_copy(
        update={"cassandra_keyspace": f"{name[:4]}_{uuid.uuid4().hex[:8]}"})
    apply_cassandra_schema(settings)
    step = align_minutes * 60_000
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000) // step * step
    minute = 60_000
    window = Window(name, now_ms - started * minute, now_ms + left * minute)
    csv = tmp_path_factory.mktemp(name) / "events.csv"
    eps = OUTAGE_RATE / world.traffic_factor(now_ms)  # the same volume at any hour
    t0 = time.monotonic()
    n = write_events(csv, 7, eps, window.start_ms - history * minute, window.end_ms, (window,))
    out = run_batch_job(settings, (csv, "stream"))
    print(f"\nseeded {n:,} events through the batch job in {time.monotonic() - t0:.0f}s: {out}")
    return settings, window


def test_dashboard_browser_shades_a_scenario_window_and_shows_the_detectors_flag(outage, page):
    settings, w = outage
    start = dt.datetime.fromtimestamp(w.start_ms / 1000, dt.UTC)
    scenario = f"checkout-outage@{start:%Y-%m-%dT%H:%M:%SZ}+{(w.end_ms - w.start_ms) // 60_000}m"
    with served_dashboard(settings, refresh=2.0, args=("--scenario", scenario)) as url:
        local_only(page, url)
        page.goto(url)
        page.wait_for_function(RENDERED, timeout=60_000)
        page.wait_for_function(CHARTS_WITH_DATA, arg=[SPECS["page-views-time"].full_title],
                               timeout=60_000)

        # the detector's flag: orders stopped coming, in the latest complete window
        note = page.locator(".banner-watch")
        flag = note.get_by_text("orders per cart view").first
        flag.wait_for(timeout=30_000)
        page.wait_for_function(RENDERED, timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-scenario-checkout-outage.png"),
                        full_page=True)
        assert note.get_by_text("Left its baseline").count() == 1
        line = flag.inner_text().strip()
        assert "vs a baseline of" in line and "x0.00" in line and line.endswith("drop"), line

        # the window, shaded and labelled on the page-views chart, inside its time axis
        shaded = page.evaluate(SHADED)
        page_views = [s for s in shaded if s[0] == SPECS["page-views-time"].full_title]
        assert page_views, shaded
        title, left, right, x_start, x_end, labels = page_views[0]
        assert (left, right) == (w.start_ms, w.end_ms), page_views
        assert x_start < left < x_end and "checkout-outage" in labels, page_views


@pytest.fixture(scope="module")
def flash_sale(stack, tmp_path_factory):
    """A private keyspace whose streaming tables hold the last two hours of traffic (seed
    7) and a flash sale that started 50 minutes ago, written by the real batch job.

    The dashboard's per-category watch judges the hour it is in (a rate needs no complete
    window) or, while that one has too little evidence, the hour before; with the sale
    from 50 minutes ago to 30 minutes from now, one of them is mostly sale whatever the
    minute. A live `make demo SCENARIO=flash-sale@+20m+30m` shows the same flag some
    minutes into the sale (README, Scenarios); here the rows come from the batch job,
    which writes what the streaming job writes for the same events."""
    return _scenario_traffic(stack, tmp_path_factory, "flash-sale", align_minutes=1,
                             history=70, started=50, left=30)


def test_dashboard_browser_shades_the_flash_sale_and_flags_its_category(flash_sale, page):
    settings, w = flash_sale
    start = dt.datetime.fromtimestamp(w.start_ms / 1000, dt.UTC)
    scenario = f"flash-sale@{start:%Y-%m-%dT%H:%M:%SZ}+{(w.end_ms - w.start_ms) // 60_000}m"
    # --seed 7: the traffic's catalogue, which gives the watch each product's category
    with served_dashboard(settings, refresh=2.0,
                          args=("--scenario", scenario, "--seed", "7")) as url:
        local_only(page, url)
        page.goto(url)
        page.wait_for_function(RENDERED, timeout=60_000)
        page.wait_for_function(CHARTS_WITH_DATA, arg=[SPECS["page-views-time"].full_title],
                               timeout=60_000)

        # the watch's flag: electronics products go into carts about twice as often
        note = page.locator(".banner-watch")
        flag = note.get_by_text("electronics add-to-cart per product view").first
        flag.wait_for(timeout=30_000)
        page.wait_for_function(RENDERED, timeout=60_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-scenario-flash-sale.png"),
                        full_page=True)
        line = flag.inner_text().strip()
        assert "in the other 11 categories together" in line and line.endswith("spike"), line
        ratio = float(line.split(", x")[1].split(",")[0])
        assert ratio > 1.5, line

        # the window, shaded and labelled on the page-views chart, inside its time axis
        shaded = page.evaluate(SHADED)
        page_views = [s for s in shaded if s[0] == SPECS["page-views-time"].full_title]
        assert page_views, shaded
        title, left, right, x_start, x_end, labels = page_views[0]
        assert (left, right) == (w.start_ms, w.end_ms), page_views
        assert x_start < left < x_end and "flash-sale" in labels, page_views


def test_dashboard_browser_missing_chromium_fails_with_install_hint(tmp_path):
    """No Chromium: the browser tests fail (never skip) with one line saying what to run."""
    with pytest.raises(pytest.fail.Exception) as e:
        require_chromium(tmp_path / "chromium")
    message = str(e.value)
    assert "apt-get install -y chromium" in message and "\n" not in message
    assert require_chromium(tmp_path) == str(tmp_path)  # present: its path
