"""Dashboard data for the browser tests and the bench, fast and exact: simulator events
-> the independent Polars truth (`testing.truth`) -> Cassandra, written directly.

(`clickstream dashboard --seed-demo` makes its data with the real batch job instead:
`services/dashboard/demo_seed.py`.) The frames are what the pipeline writes for these
events (the truth tests pin that), so the dashboard's figures can be checked against an
independent computation over the same events.

    events = demo_events(seed=7, start=now - dt.timedelta(hours=6), end=now)
    write_frames(session, "clickstream", demo_frames(events), modes=("stream", "batch"))
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import polars as pl

from services.dashboard.demo_seed import demo_config
from shared import tables as tb


def demo_events(seed: int, start: dt.datetime, end: dt.datetime,
                events_per_second: float | None = None) -> pl.DataFrame:
    """The demo data set's events (`demo_seed.demo_config`, optionally at another rate)
    with start <= timestamp < end, duplicates included, as a frame."""
    from dataclasses import replace

    from services.batch_generator.csv_days import rows_to_frame
    from services.simulator.model import Simulator

    config = demo_config(seed)
    if events_per_second is not None:
        config = replace(config, events_per_second=events_per_second)
    sim = Simulator(config)
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


def _ms(t: dt.datetime) -> int:
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t
    return int(t.timestamp() * 1000)
