"""A seeded demo data set: simulator events -> independent Polars aggregates -> Cassandra.

Used by `clickstream dashboard --seed-demo` (only when the tables are empty, and only on
request), by the browser tests and by the bench. The rows come from
`testing.truth` (the processor's independent truth), not from this app, so the
dashboard shows exactly what the pipeline would have written for these events.

    frames = demo_frames(seed=7, end=now, hours=6)
    write_frames(session, "clickstream", frames, modes=("stream", "batch"))
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import polars as pl

from shared import tables as tb

DEMO_EVENTS_PER_SECOND = 3.0
DEMO_DUPLICATE_RATE = 0.01


def demo_events(seed: int, start: dt.datetime, end: dt.datetime,
                events_per_second: float = DEMO_EVENTS_PER_SECOND,
                duplicate_rate: float = DEMO_DUPLICATE_RATE) -> pl.DataFrame:
    """Simulated events with start <= timestamp < end (duplicates included) as a frame."""
    from services.batch_generator.csv_days import rows_to_frame
    from services.simulator.model import Noise, SimConfig, Simulator

    sim = Simulator(SimConfig(seed=seed, events_per_second=events_per_second,
                              noise=Noise(duplicate_rate=duplicate_rate)))
    rows = [r for chunk in sim.rows_by_event_time(_ms(start), _ms(end)) for r in chunk]
    return rows_to_frame(rows)


def demo_frames(events: pl.DataFrame, run_id: str = "demo") -> dict[str, pl.DataFrame]:
    """Table name (base) -> rows for these events, plus one `ingest_quality` row."""
    from testing.truth import truth

    frames = truth(events)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    distinct = events["event_id"].n_unique()
    frames["ingest_quality"] = pl.DataFrame({
        "day": [now.date()], "run_id": [run_id], "batch_id": [0], "finished_at": [now],
        "input_rows": [events.height], "invalid": [0], "late_dropped": [0],
        "duplicates_dropped": [events.height - distinct],
    })
    return frames


def write_frames(session, keyspace: str, frames: dict[str, pl.DataFrame],
                 modes: tuple[str, ...] = ("stream", "batch"), concurrency: int = 32) -> int:
    """Upsert every frame into its table (and/or `_batch` twin); returns rows written.

    Rows go in unlogged batches of one day partition each, which Cassandra applies as one
    mutation per partition -- far faster than row-by-row for the bench's 90 days.
    """
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    written = 0
    statements = []
    for base, df in frames.items():
        if df.is_empty():
            continue
        if base == "ingest_quality":
            names = ["ingest_quality"] if "stream" in modes else []
            if "batch" in modes:
                names.append("ingest_quality:batch")
        else:
            names = [base if m == "stream" else base + "_batch" for m in modes]
        for name in names:
            table = tb.table(name.split(":")[0])
            cols = table.column_names
            data = df.select(cols)
            if name.endswith(":batch"):  # the batch job's ingest_quality rows: run_id batch-...
                data = data.with_columns((tb.BATCH_RUN_PREFIX + pl.col("run_id")).alias("run_id"))
            insert = session.prepare(
                f"INSERT INTO {keyspace}.{table.name} ({', '.join(cols)}) "
                f"VALUES ({', '.join('?' for _ in cols)})")
            by_day: dict = defaultdict(list)
            day_i = cols.index(tb.DAY)
            for row in data.iter_rows():
                by_day[row[day_i]].append(row)
            for rows in by_day.values():
                for i in range(0, len(rows), 200):
                    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
                    for row in rows[i:i + 200]:
                        batch.add(insert, row)
                    statements.append((batch, ()))
            written += data.height
    for ok, result in execute_concurrent(session, statements, concurrency=concurrency,
                                         raise_on_first_error=True):
        if not ok:  # pragma: no cover - raise_on_first_error raises first
            raise result
    return written


def tables_empty(session, keyspace: str) -> bool:
    """True if no data_quality partition (stream or batch) of the last 7 days has a row."""
    today = dt.datetime.now(dt.UTC).date()
    for name in ("data_quality", "data_quality_batch"):
        stmt = session.prepare(f"SELECT {tb.DAY} FROM {keyspace}.{name} WHERE {tb.DAY} = ? LIMIT 1")
        for i in range(7):
            if list(session.execute(stmt, (today - dt.timedelta(days=i),))):
                return False
    return True


def seed_demo(session, keyspace: str, seed: int = 7, hours: float = 6.0,
              now: dt.datetime | None = None) -> int:
    """Write `hours` of demo traffic ending now into stream and batch tables; rows written."""
    end = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    events = demo_events(seed, end - dt.timedelta(hours=hours), end)
    return write_frames(session, keyspace, demo_frames(events, run_id=f"demo-{seed}"))


def _ms(t: dt.datetime) -> int:
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
    return int(t.timestamp() * 1000)
