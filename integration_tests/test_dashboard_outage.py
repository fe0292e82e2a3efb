"""Cassandra goes down under an open dashboard and comes back: a real private Cassandra.

The dashboard is served against a Cassandra of its own (never the session `stack`, which
other tests share), the page stays open the whole time: the banner must appear while the
server is stopped, the app must keep serving, and once Cassandra is back the banner must go
and fresh data must show -- without a page reload.
"""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from integration_tests.backends import local_settings
from integration_tests.dashboard_fixtures import (  # noqa: F401 - fixtures
    ARTIFACTS,
    RENDERED,
    browser_context_args,
    browser_type_launch_args,
    expected_kpis,
    liveness,
    local_only,
    served_dashboard,
    wait_kpis,
)
from services.stack.stack import LocalStack
from shared.clients.cassandra import connect
from testing import dashboard_data as demo

CASSANDRA_RESTART_S = 240  # a cold JVM on a busy 2-core machine


@pytest.fixture
def private_cassandra(tmp_path):
    """A Cassandra of this test's own on free ports, with the schema; always stopped."""
    settings = local_settings(tmp_path / "stack")
    stack = LocalStack(settings, ["cassandra"])
    try:
        stack.up(die_with_parent=True)  # gone with pytest, even if it is killed
        yield settings, stack.servers()[0]
    finally:
        stack.down()


def write_stream(settings, events: pl.DataFrame, run_id: str) -> None:
    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        demo.write_frames(session, settings.cassandra_keyspace, demo.demo_frames(events, run_id),
                          modes=("stream",))
    finally:
        cluster.shutdown()


def banner(page):
    return page.locator(".banner-down")


def test_dashboard_outage_banner_then_recovery_without_reload(private_cassandra, page):
    settings, cassandra = private_cassandra
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    first = demo.demo_events(21, now - dt.timedelta(minutes=50), now - dt.timedelta(minutes=25),
                             events_per_second=0.5)
    write_stream(settings, first, "before")
    ARTIFACTS.mkdir(exist_ok=True)

    with served_dashboard(settings, refresh=1.0) as url:
        local_only(page, url)
        page.goto(url)
        page.wait_for_function(RENDERED, timeout=60_000)
        wait_kpis(page, expected_kpis(first))
        assert not banner(page).is_visible()
        page.evaluate("window.__same_page = true")  # gone if the page were reloaded

        cassandra.stop()
        banner(page).get_by_text("Cassandra is unreachable").wait_for(timeout=60_000)
        page.locator(".status-line").get_by_text("failed").wait_for(timeout=30_000)
        assert liveness(url)  # the server keeps serving...
        wait_kpis(page, expected_kpis(first), timeout_s=5)  # ...and the last data stays
        page.screenshot(path=str(ARTIFACTS / "dashboard-outage-1-down.png"), full_page=True)

        cassandra.start(timeout=CASSANDRA_RESTART_S, die_with_parent=True)
        # rows written after the restart prove the page reads again (not just hides a banner)
        more = demo.demo_events(22, now - dt.timedelta(minutes=25), now, events_per_second=0.5)
        both = pl.concat([first, more])
        write_stream(settings, both, "after")  # upserts: hourly rows hold both parts
        expected = expected_kpis(both)
        expected["duplicates"] = (first.height - first["event_id"].n_unique()
                                  + both.height - both["event_id"].n_unique())
        banner(page).wait_for(state="hidden", timeout=120_000)
        wait_kpis(page, expected, timeout_s=120)
        page.wait_for_function(RENDERED, timeout=60_000)
        assert page.evaluate("window.__same_page === true")
        page.screenshot(path=str(ARTIFACTS / "dashboard-outage-2-recovered.png"), full_page=True)
