"""Serving the dashboard: Panel's server in this process.

    run_dashboard(get_settings(), host="127.0.0.1", port=5006, refresh=5.0)

Binds 127.0.0.1 by default; no autoreload, no debug; `/liveness` answers once the server
is up (what tests and `make dev-dashboard` wait for).
"""

from __future__ import annotations

import logging
import threading

from shared import signals
from shared.errors import ClickstreamError
from shared.settings import Settings, env_var

log = logging.getLogger(__name__)


def run_dashboard(settings: Settings, host: str | None = None, port: int | None = None,
                  refresh: float | None = None, echo=print, marks: tuple = (),
                  categories: dict[str, str] | None = None) -> None:
    """Serve until Ctrl-C, SIGTERM or SIGHUP (`shared.signals` records which). `marks`:
    `charts.Mark` windows shaded on the time charts; `categories`: product id -> category,
    for the detector's per-category watch (`dashboards.watch`)."""
    import panel as pn

    from dashboards import app
    from shared.clients.ports import require_free

    host = host or settings.dashboard_host
    port = port or settings.dashboard_port
    refresh = refresh or settings.dashboard_refresh_seconds
    if refresh <= 0:
        raise ClickstreamError(f"--refresh must be > 0 seconds, got {refresh}")
    require_free(port, env_var("dashboard_port"), host)
    # Which page origins the websocket accepts. Served on loopback, or on every interface
    # (only when configured: the app container, whose port compose publishes on the host's
    # 127.0.0.1), the page is opened as 127.0.0.1 or localhost too.
    opened_on_loopback = host in ("127.0.0.1", "0.0.0.0")
    origins = [f"{host}:{port}"] + (
        [f"127.0.0.1:{port}", f"localhost:{port}"] if opened_on_loopback else [])
    echo(f"dashboard at http://{host}:{port}/ (Cassandra {settings.cassandra_host}:"
         f"{settings.cassandra_port}, keyspace {settings.cassandra_keyspace}, "
         f"refresh {refresh:g} s); Ctrl-C stops")
    reader = app.reader_for(settings)  # one Cassandra session for every browser session
    server = pn.serve({"/": lambda: app.create_app(reader, refresh, marks, categories)},
                      address=host, port=port, websocket_origin=origins, show=False, liveness=True,
                      title=app.TITLE, autoreload=False, threaded=False, start=False)
    # Panel stops on SIGINT only; every stop signal should, and be recorded as received
    loop = server.io_loop.asyncio_loop
    previous = signals.install(on_stop=lambda: loop.call_soon_threadsafe(server.io_loop.stop))
    def warm() -> None:
        try:
            seconds = app.warm_up(reader, marks=marks, categories=categories)
            log.info("dashboard warmed up in %.1f s", seconds)
        except Exception:  # noqa: BLE001 - an optimisation only: the first page reads itself
            log.debug("dashboard warm-up failed", exc_info=True)

    try:
        server.start()
        # in the background: the server answers at once, a page opened meanwhile reads itself
        threading.Thread(target=warm, name="dashboard-warm-up", daemon=True).start()
        server.io_loop.start()
    finally:
        signals.restore(previous)
        server.stop()
        echo(f"dashboard at http://{host}:{port}/ stopped")
