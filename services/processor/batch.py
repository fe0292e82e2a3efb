"""The batch runner: CSV days -> the shared aggregates -> Cassandra `_batch` tables.

    clickstream process --mode batch --input data/days          # a folder of CSV days
    clickstream process --mode batch --input 'data/days/2026-03-0*.csv'
    clickstream process --mode batch --input data/days --from 2026-03-01 --to 2026-03-03

Read with the explicit event schema, `mode=FAILFAST` and the shared timestamp format (the
default mode would turn a bad timestamp into a silent null). Deduplicate by event_id (keeping
how many copies were received, for data quality), then the same `aggregates` as streaming.
Writes are upserts through the Spark Cassandra Connector: re-running leaves identical rows.
"""

from __future__ import annotations

import datetime as dt
import glob
import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from services.processor.aggregates import AGGREGATED_COLUMNS
from shared import tables as tb
from shared.errors import ClickstreamError
from shared.events import (
    CSV_HEADER,
    CSV_HEADER_WIRE,
    SPARK_TIMESTAMP_FORMAT,
    WIRE_FIELDS,
    WIRE_NAMES,
    spark_schema,
)
from shared.settings import Settings

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs
def resolve_inputs(input: str | Path, day_from: dt.date | None = None,
                   day_to: dt.date | None = None) -> list[Path]:
    """The CSV files of `input` (folder, file or glob), optionally only days in [from, to].

    Day files are named by their UTC day (YYYY-MM-DD somewhere in the name); with a date
    range, files whose name carries no date are an error (we cannot tell their day).
    """
    p = Path(input)
    if p.is_dir():
        files = sorted(p.glob("*.csv"))
    elif p.is_file():
        files = [p]
    else:
        files = sorted(Path(f) for f in glob.glob(str(input)))
    if day_from or day_to:
        picked = []
        for f in files:
            day = _day_of(f)
            if day is None:
                raise ClickstreamError(f"{f}: no YYYY-MM-DD in the file name, cannot filter "
                                       "by --from/--to")
            if (day_from is None or day >= day_from) and (day_to is None or day <= day_to):
                picked.append(f)
        files = picked
    if not files:
        raise ClickstreamError(f"no CSV files at {input}" + (
            f" between {day_from} and {day_to}" if day_from or day_to else "") +
            ": generate some with `clickstream generate --days 1 --out DIR`")
    return files


def _day_of(path: Path) -> dt.date | None:
    import re

    m = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
    return dt.date.fromisoformat(m.group(1)) if m else None


def read_csv_days(spark, files: list[Path]):
    """The raw deliveries (duplicates included) with every version's columns (a day of
    version-1 events has the internal shape's header and gets the others as nulls; a day
    of several versions has them all); fails fast."""
    from functools import reduce

    from services.processor import versions

    by_header: dict[tuple[str, ...], list[Path]] = {}
    for f in files:
        with open(f, "rb") as text:
            header = tuple(text.readline().decode("utf-8", "replace").rstrip("\r\n")
                           .split(","))
        # any other header: read as a day of version 1, for Spark's error naming the file
        by_header.setdefault(header if header == CSV_HEADER_WIRE else CSV_HEADER, []).append(f)
    frames = [
        versions.with_wire_columns(
            spark.read.schema(spark_schema(WIRE_FIELDS) if header == CSV_HEADER_WIRE
                              else spark_schema())
            .option("header", "true")
            .option("mode", "FAILFAST")
            .option("timestampFormat", SPARK_TIMESTAMP_FORMAT)
            .option("enforceSchema", "false")  # the header must match the schema's names
            .csv([str(f) for f in group]))
        for header, group in sorted(by_header.items())]
    return reduce(lambda a, b: a.unionByName(b), frames)


# --------------------------------------------------------------------------- pure steps
def invalid_rows_marked(raw):
    """Rows (of any versions) in the internal shape, with `reason`, the first rule of the
    row's version it breaks (`versions.reason`: an unknown schema_version, nulls in
    required fields, unknown page/action/currency, ...), and `_all`, a hash of every
    column read: computing it makes FAILFAST parse (and so check) every column, even where
    only a few are kept."""
    from pyspark.sql import functions as F

    from services.processor import versions

    wire = versions.with_wire_columns(raw)
    return wire.select(*versions.internal_columns(""),
                       versions.reason("", lambda f: f"{f.name} is null").alias("reason"),
                       F.hash(*WIRE_NAMES).alias("_all"))




#: CSV bytes per partition of the deduplication's shuffle at most (Spark's own file split
#: size): a partition is aggregated, then cached, as one block
DEDUP_BYTES_PER_PARTITION = 128 << 20


def dedup_partitions(input_bytes: int, shuffle_partitions: int) -> int:
    """Partitions of the deduplication's shuffle: the session's shuffle partitions (one per
    core locally) times as many waves as it takes for each to hold at most
    DEDUP_BYTES_PER_PARTITION of CSV (whole waves: 3 tasks on 2 cores leave one core idle).
    With two for 10.2M events (2.5 GB), each partition's 5M distinct rows did not fit a
    1 GiB driver heap while cached: the job died of `OutOfMemoryError` (2026-12-04)."""
    waves = max(1, -(-input_bytes // (DEDUP_BYTES_PER_PARTITION * shuffle_partitions)))
    return shuffle_partitions * waves


def distinct_events(marked, partitions: int | None = None):
    """`invalid_rows_marked` rows -> one row per distinct content, with _event=1,
    _deliveries = copies received, _invalid = copies that break a rule, and `_all`.
    `partitions`: of the shuffle by event_id (`dedup_partitions`; default: the session's).

    A resend is a copy of the same event, so grouping by every aggregated column finds the
    copies -- a hash aggregation, where `first()` over string columns would force a sort of
    every row (3x slower here). The rows are shuffled by event_id only (a hash partitioning
    by a subset of the keys serves the groupBy), so that `check_events`' groupBy by
    event_id needs no second shuffle. Keeping `_all` keeps every column parsed (FAILFAST).
    Copies that differ in an aggregated column stay apart; `run_batch` rejects such input."""
    from pyspark.sql import functions as F

    by_id = (marked.repartition(partitions, "event_id") if partitions
             else marked.repartition("event_id"))
    return (by_id.groupBy(*AGGREGATED_COLUMNS)
            .agg(F.count(F.lit(1)).alias("_deliveries"), F.count("reason").alias("_invalid"),
                 F.max("_all").alias("_all"))
            .select(*AGGREGATED_COLUMNS, F.lit(1).alias("_event"), "_deliveries", "_invalid",
                    "_all"))


def check_events(events) -> tuple[int, int, int, int, str | None]:
    """(rows read, invalid rows, distinct events, event_ids with more than one content, an
    example of those) of `distinct_events`, in one job."""
    from pyspark.sql import functions as F

    more = F.col("n") > 1
    r = (events.groupBy("event_id")
         .agg(F.count(F.lit(1)).alias("n"), F.sum("_deliveries").alias("d"),
              F.sum("_invalid").alias("i"))
         .agg(F.sum("d"), F.sum("i"), F.sum("n"), F.count(F.when(more, 1)),
              F.first(F.when(more, F.col("event_id")), ignorenulls=True)).collect())[0]
    return r[0] or 0, r[1] or 0, r[2] or 0, r[3], r[4]


def validate(raw) -> tuple[int, int, str | None]:
    """(rows, invalid rows, an example reason) of `invalid_rows_marked` rows."""
    from pyspark.sql import functions as F

    r = raw.agg(F.count(F.lit(1)), F.count("reason"),
                F.first(F.when(F.col("reason").isNotNull(),
                               F.concat_ws(": ", "event_id", "reason")),
                        ignorenulls=True)).collect()
    return r[0][0], r[0][1], r[0][2]


def batch_tables(raw) -> dict:
    """raw deliveries (valid events of any versions) -> {table name (without _batch):
    DataFrame}: the batch job's plan, the internal shape with each row's rule check
    (`invalid_rows_marked`), `distinct_events` then `aggregates.all_tables`, as `run_batch`
    runs it. Pure."""
    from services.processor import aggregates

    return aggregates.all_tables(distinct_events(invalid_rows_marked(raw)))


# --------------------------------------------------------------------------- runner
@dataclass
class BatchResult:
    files: int
    input_rows: int
    rows_written: dict[str, int]
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.input_rows / self.seconds if self.seconds else 0.0


def write_table(df, keyspace: str, name: str) -> None:
    """Upsert rows into `keyspace.name` (the connector's append = CQL INSERT = upsert)."""
    (df.write.format("org.apache.spark.sql.cassandra")
     .options(keyspace=keyspace, table=name)
     .mode("append").save())


def run_batch(settings: Settings, input: str | Path, day_from: dt.date | None = None,
              day_to: dt.date | None = None, master: str | None = None,
              spark=None, into: tuple[str, ...] = ("batch",)) -> BatchResult:
    """Aggregate the CSV days at `input` into the `_batch` tables. Returns what was done.
    `into=("stream", "batch")` writes the same rows to the streaming tables too (the demo
    seeding: what the streaming job would have written for these events, the sessions'
    pieces included).

    ONE pass over the CSV parses (and so checks) every column, marks each row's broken
    rule and deduplicates (`distinct_events`); only the distinct events are cached, and the
    checks (`check_events`) and the tables (`batch_tables`' plan, one small hash
    aggregation per aggregate) work from that cache."""
    from pyspark.storagelevel import StorageLevel

    from services.processor import aggregates as ag
    from services.processor.session import BATCH_DRIVER_MEMORY, build_session

    files = resolve_inputs(input, day_from, day_to)
    own = spark is None
    spark = spark or build_session(settings, "clickstream-batch", master, BATCH_DRIVER_MEMORY)
    ks = settings.cassandra_keyspace
    t0 = time.monotonic()
    cached = []

    def cache(df):
        cached.append(df.persist(StorageLevel.MEMORY_AND_DISK))
        return cached[-1]

    try:
        # one pass: read, check and deduplicate; only the distinct events are cached
        marked = invalid_rows_marked(read_csv_days(spark, files))
        partitions = dedup_partitions(sum(f.stat().st_size for f in files),
                                      int(spark.conf.get("spark.sql.shuffle.partitions")))
        events = cache(distinct_events(marked, partitions))
        try:
            input_rows, invalid, distinct, conflicts, example = check_events(events)
        except Exception as e:  # FAILFAST errors surface here; Spark wraps them deep
            if "OutOfMemoryError" in str(e) or "SparkContext was shut down" in str(e):
                # an OutOfMemoryError kills the local JVM: the job only sees it shut down
                raise ClickstreamError(
                    f"Spark stopped while reading the CSV days at {input}; if the lines "
                    "above say java.lang.OutOfMemoryError, raise "
                    f"CLICKSTREAM_SPARK_DRIVER_MEMORY (now "
                    f"{settings.spark_driver_memory or BATCH_DRIVER_MEMORY}) "
                    "or pass fewer days (--from/--to)") from None
            raise ClickstreamError(f"cannot read the CSV days at {input}: "
                                   f"{_first_line(e)}") from None
        log.info("batch: read and checked %d rows, %d distinct events in %.1fs", input_rows,
                 distinct, time.monotonic() - t0)
        if invalid:
            _, _, example = validate(marked)  # the error path: read again for an example
            raise ClickstreamError(f"{input}: {invalid} rows break the event schema, e.g. "
                                   f"{example}")
        if conflicts:
            raise ClickstreamError(f"{input}: {conflicts} event_ids appear with different "
                                   f"contents, e.g. {example}; a resend must be an exact copy")
        frames = ag.all_tables(events, cache, pieces="stream" in into)

        def write(item: tuple[str, object]) -> tuple[str, int]:
            table = tb.table(item[0])
            targets = [table.batch().name if m == "batch" else table.name for m in into
                       if table not in tb.STREAM_INTERNAL or m == "stream"]
            # counted from the rows the write computed, not by computing them again
            df = item[1].persist(StorageLevel.MEMORY_AND_DISK)
            try:
                for target in targets:
                    write_table(df, ks, target)
                n = df.count()
            finally:
                df.unpersist()
            log.info("batch: %s written at %.1fs", ", ".join(targets), time.monotonic() - t0)
            return targets[0], n

        # small jobs over cached frames: run them concurrently (per-job latency adds up)
        with ThreadPoolExecutor(4) as pool:
            written = dict(pool.map(write, frames.items()))
        seconds = time.monotonic() - t0
        for mode in into:
            _write_ingest_quality(spark, settings, input_rows, input_rows - distinct, mode)
        return BatchResult(len(files), input_rows, written, seconds)
    finally:
        for df in cached:
            df.unpersist()
        if own:
            spark.stop()


def _write_ingest_quality(spark, settings: Settings, input_rows: int, duplicates: int,
                          mode: str) -> None:
    now = dt.datetime.now(dt.UTC)
    # the dashboard tells the batch job's rows by this prefix
    run_id = f"{tb.BATCH_RUN_PREFIX if mode == 'batch' else ''}{uuid.uuid4()}"
    row = [(now.date(), run_id, 0, now, input_rows, 0, 0, duplicates)]
    df = spark.createDataFrame(row, schema=tb.INGEST_QUALITY.spark_schema())
    write_table(df, settings.cassandra_keyspace, tb.INGEST_QUALITY.name)


def _first_line(e: Exception) -> str:
    text = str(e).strip().splitlines()
    for line in text:
        if "Malformed" in line or "Exception" in line:
            return line.strip()[:300]
    return (text[0] if text else type(e).__name__)[:300]
