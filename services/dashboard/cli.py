"""`clickstream dashboard`: the live Panel dashboard over the Cassandra tables."""

from __future__ import annotations

import click

from services.simulator.scenario_option import GRAMMAR, ScenarioType
from shared.settings import get_settings


@click.command()
@click.option("--host", default=None,
              help="Address to bind (default: CLICKSTREAM_DASHBOARD_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None,
              help="Port (default: CLICKSTREAM_DASHBOARD_PORT, 5006).")
@click.option("--refresh", type=float, default=None,
              help="Seconds between refreshes (default: CLICKSTREAM_DASHBOARD_REFRESH_SECONDS, 5).")
@click.option("--seed-demo", is_flag=True,
              help="If the tables are empty, first load 6 h of seeded demo traffic, "
                   "aggregated by the batch job into the stream and batch tables. Never "
                   "done without this flag.")
@click.option("--scenario", "scenarios", type=ScenarioType(), multiple=True, metavar=GRAMMAR,
              help="Shade this scenario's window on the time charts (repeatable; the "
                   "grammar of `clickstream simulate --scenario`, +OFFSET from now).")
@click.option("--seed", type=int, default=None,
              help="The seed of the simulated traffic shown (`clickstream produce --seed`; "
                   "`clickstream demo` passes its own): each product's category comes from "
                   "its catalogue, for the detector's per-category watch (a flash sale). "
                   "Default: the demo data's seed with --seed-demo, else none and no "
                   "per-category watch.")
def dashboard(host, port, refresh, seed_demo, scenarios, seed):
    """Serve the live dashboard (Panel + hvplot) until Ctrl-C, SIGTERM or SIGHUP.

    KPIs, then tabs of funnel, page, product, device, campaign, duration, session and
    data-quality charts and a table view with CSV download; switch between streaming and
    batch tables and pick a time range. Reads only the selected range through one
    Cassandra session; shows a banner while Cassandra is down and recovers by itself.
    `/liveness` answers when it is up.

    Example:

        clickstream up --only cassandra && clickstream dashboard --seed-demo
        clickstream dashboard --seed 7 --scenario flash-sale@2026-01-05T13:00:00Z+1h
    """
    import datetime as dt
    import time

    from dashboards.charts import Mark
    from dashboards.serve import run_dashboard
    from services.dashboard.demo_seed import DEMO_SEED, seed_demo_if_empty
    from services.simulator.world import build_catalogue

    settings = get_settings()
    now_ms = int(time.time() * 1000)
    at = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC)  # noqa: E731
    marks = tuple(Mark(w.name, at(w.start_ms), at(w.end_ms))
                  for w in (r.window(now_ms) for r in scenarios))
    if seed_demo:
        seed = DEMO_SEED if seed is None else seed
        seed_demo_if_empty(settings, echo=lambda m: click.echo(m, err=True), seed=seed)
    categories = None
    if seed is not None:  # the shop's catalogue: which category each product is in
        catalogue = build_catalogue(seed)
        categories = dict(zip(catalogue.product_ids, catalogue.categories, strict=True))
    run_dashboard(settings, host=host, port=port, refresh=refresh,
                  echo=lambda m: click.echo(m, err=True), marks=marks, categories=categories)


COMMANDS = [dashboard]
