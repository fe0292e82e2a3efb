"""`clickstream dashboard --seed-demo`: a seeded demo data set, made by the real pipeline.

The simulator writes the last `hours` of traffic (noise on: duplicates) as one CSV file,
and the batch job (`services.processor.batch.run_batch`, Spark) aggregates it into the
streaming and the batch tables, so the dashboard shows exactly what the pipeline writes
for these events. Only when the tables are empty, and only on request.

    seed_demo_if_empty(get_settings(), echo=print)   # -> rows written, 0 if not empty
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

from shared import tables as tb
from shared.errors import ClickstreamError
from shared.settings import Settings

DEMO_SEED = 7
DEMO_EVENTS_PER_SECOND = 3.0
DEMO_DUPLICATE_RATE = 0.01


def demo_config(seed: int):
    """The simulator configuration of the demo data set (tests rebuild the events from it)."""
    from services.simulator.model import Noise, SimConfig

    return SimConfig(seed=seed, events_per_second=DEMO_EVENTS_PER_SECOND,
                     noise=Noise(duplicate_rate=DEMO_DUPLICATE_RATE))


def tables_empty(session, keyspace: str) -> bool:
    """True if no data_quality partition (stream or batch) of the last 7 days has a row."""
    today = dt.datetime.now(dt.UTC).date()
    for name in (tb.DATA_QUALITY.name, tb.DATA_QUALITY.batch().name):
        stmt = session.prepare(f"SELECT {tb.DAY} FROM {keyspace}.{name} WHERE {tb.DAY} = ? LIMIT 1")
        for i in range(7):
            if list(session.execute(stmt, (today - dt.timedelta(days=i),))):
                return False
    return True


def seed_demo(settings: Settings, seed: int = DEMO_SEED, hours: float = 6.0,
              now: dt.datetime | None = None, master: str | None = None) -> int:
    """Simulate `hours` of traffic ending at `now` and aggregate it with the batch job into
    the streaming and batch tables; returns the rows written (both modes)."""
    from services.batch_generator.csv_days import write_range
    from services.processor.batch import run_batch

    end = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    end_ms = int(end.timestamp() * 1000)
    start_ms = end_ms - int(hours * 3_600_000)
    with tempfile.TemporaryDirectory(prefix="clickstream-demo-") as tmp:
        path = Path(tmp) / "demo-events.csv"
        if not write_range(demo_config(seed), start_ms, end_ms, path):
            raise ClickstreamError(f"--seed-demo: no events in the last {hours:g} h")
        into = ("stream", "batch")
        result = run_batch(settings, path, master=master, into=into)
    return len(into) * sum(result.rows_written.values())


def seed_demo_if_empty(settings: Settings, echo=print, hours: float = 6.0,
                       seed: int = DEMO_SEED, now: dt.datetime | None = None,
                       master: str | None = None) -> int:
    """Load the demo data set if (and only if) the tables are empty; rows written."""
    from shared.clients.cassandra import connect

    try:
        cluster, session = connect(settings, timeout=5)
    except Exception as e:  # noqa: BLE001 - driver errors vary
        raise ClickstreamError(
            f"--seed-demo: Cassandra at {settings.cassandra_host}:{settings.cassandra_port} "
            f"(CLICKSTREAM_CASSANDRA_HOST/PORT) does not answer ({type(e).__name__}); "
            f"start it with `clickstream up --only cassandra`") from None
    try:
        ks = settings.cassandra_keyspace
        if not tables_empty(session, ks):
            echo(f"tables in keyspace {ks} already hold data: demo data NOT loaded")
            return 0
    finally:
        cluster.shutdown()
    echo(f"tables in keyspace {ks} are empty: simulating {hours:g} h of demo traffic "
         f"(seed {seed}) and aggregating it with the batch job into the stream and batch "
         f"tables (Spark, about a minute)...")
    n = seed_demo(settings, seed=seed, hours=hours, now=now, master=master)
    echo(f"demo data loaded: {n:,} rows")
    return n
