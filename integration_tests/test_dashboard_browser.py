"""The dashboard in a real browser (Chromium via Playwright) over a seeded Cassandra.

Expected KPI values are computed here with Polars straight from the simulated events,
never through the dashboard's views.
"""

from __future__ import annotations

import datetime as dt
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


def test_dashboard_browser_missing_chromium_fails_with_install_hint(tmp_path):
    """No Chromium: the browser tests fail (never skip) with one line saying what to run."""
    with pytest.raises(pytest.fail.Exception) as e:
        require_chromium(tmp_path / "chromium")
    message = str(e.value)
    assert "apt-get install -y chromium" in message and "\n" not in message
    assert require_chromium(tmp_path) == str(tmp_path)  # present: its path
