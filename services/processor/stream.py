"""The stream runner: Kafka -> parse once -> dedup within the watermark -> ONE stateful
groupBy over tagged rows (`aggregates`) -> foreachBatch upserts.

    clickstream process --mode stream                      # local[*], settings' Kafka/Cassandra
    clickstream process --mode stream --master spark://127.0.0.1:7077 --trigger 5

Steps (each a function below, so that tests can run them on a file source and a memory sink):
  read      Kafka records: payload, partition, offset, record timestamp
  parse     from_json with the shared schema, once; a `reason` for every bad record
  mark      each record -> one narrow row, shuffled once by (event_id, event time)
  dedup     from that shuffle: `event` rows through dropDuplicates(key, event time) with the
            watermark: duplicates of an event_id within the watermark are dropped; events
            older than the watermark are dropped here and counted in
            `ingest_quality.late_dropped` (never silently). Beside it, from the same
            shuffle, a `delivery` row per valid message (data quality) and a `dead` row per
            bad one
  tag       the shared aggregates' tagged rows + one row per dead record
  reduce    the shared ONE groupBy, update mode: state holds final running totals, so a
            replayed micro-batch rewrites identical rows (idempotent upserts)
  sink      foreachBatch: route rows to their tables (a small micro-batch from the driver,
            a large one through the Spark connector); dead rows to `dead_letter`; the
            touched sessions folded from their pieces, and funnel_hourly /
            campaign_conversion changed by as much as they changed (`second_level`)

Watermark marker (not a public API): Spark evicts aggregation state, and filters late input,
by the grouping column that carries the `spark.watermarkDelayMs` metadata (`window()` sets it
on its struct). Our windows have several lengths in one column, so `reduce` aliases the row's
window END with that metadata; dedup uses the event time (plus the same marker). A unit test
(test_processor_stream.py::test_processor_stream_state_shrinks) fails if state stops shrinking.

Dead rows have no event time: their marker is null, so they are never late-dropped and stay in
state (one small row per bad message, ~100 bytes) -- a deliberate trade for never losing one.

Failure policy for Cassandra: a failed write fails the micro-batch, the query stops and the
command exits non-zero, loudly; the batch was not committed, so a restart from the checkpoint
replays it and the upserts leave exact totals (tested in integration_tests).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared import tables as tb
from shared.events import SPARK_TIMESTAMP_FORMAT, WIRE_FIELDS, spark_schema
from shared.settings import Settings

log = logging.getLogger(__name__)

WATERMARK_KEY = "spark.watermarkDelayMs"
FETCH_MAX_WAIT_MS = 10
Sink = Callable[[str, "DataFrame"], None]  # noqa: F821  (table name, rows) -> None


# --------------------------------------------------------------------------- read
def read_kafka(spark, settings: Settings, max_offsets: int | None = None):
    """The topic as (payload, partition, offset, kafka_ts, topic)."""
    from pyspark.sql import functions as F

    df = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.bootstrap_servers)
        .option("subscribe", settings.kafka_topic)
        .option("startingOffsets", settings.processor_starting_offsets)
        .option("maxOffsetsPerTrigger",
                str(max_offsets or settings.processor_max_offsets_per_trigger))
        .option("failOnDataLoss", "true")
        .option("kafka.request.timeout.ms", "30000")
        .option("kafka.default.api.timeout.ms", "60000")
        # an executor's pooled consumer leaves a fetch in flight at the end of the range it
        # read; the broker holds it up to fetch.max.wait.ms (500 by default) for new data,
        # and the next micro-batch's task waits for it: ~0.5 s of every small micro-batch
        .option("kafka.fetch.max.wait.ms", str(FETCH_MAX_WAIT_MS))
        .load()
    )
    return df.select(F.col("value").cast("string").alias("payload"), "partition", "offset",
                     F.col("timestamp").alias("kafka_ts"), "topic")


# --------------------------------------------------------------------------- parse
def parse(records):
    """(payload, partition, offset, kafka_ts, topic) -> + `e` (the event struct, in the
    internal shape whatever version it was sent in) and `reason` (null for a valid event;
    the rules of its version, `versions.reason`). Pure; works on static and streaming
    frames."""
    from pyspark.sql import functions as F

    from services.processor import versions

    # every version's fields: the row's schema_version says which of them it carries
    w = F.from_json("payload", spark_schema(WIRE_FIELDS),
                    {"timestampFormat": SPARK_TIMESTAMP_FORMAT, "mode": "PERMISSIVE"})
    # PERMISSIVE from_json gives an all-null struct (not a null) for text that is not JSON
    nothing = F.coalesce(*(F.col(f"w.{f.name}").cast("string") for f in WIRE_FIELDS)).isNull()
    reason = F.coalesce(
        F.when(F.col("w").isNull() | nothing, F.lit("not a JSON object of the event schema")),
        versions.reason("w.", lambda f: f"{f.name} is missing, null or not a {f.kind.value}"))
    return (records.withColumn("w", w).withColumn("reason", reason)
            .withColumn("e", F.struct(*versions.internal_columns("w."))).drop("w"))


# --------------------------------------------------------------------------- mark + dedup
#: the record columns a dead letter keeps
DEAD_COLUMNS = ("payload", "reason", "partition", "offset", "kafka_ts", "topic")


def mark_and_dedup(parsed, watermark_seconds: int, partitions: int | None = None):
    """Watermark on event time; each record -> its marker rows; drop duplicate events.

    One narrow row per message (the aggregated columns and the event time, or the dead
    record) crosses one shuffle, by (dkey, dts). Two branches read that shuffle's output
    (Spark reuses the exchange: the record is read and parsed once):
      events   -> dropDuplicates(dkey, dts), valid rows only: an `event` row per event_id
      the rest -> a `delivery` row per valid message (data-quality raw counts) or a `dead`
                  row per bad one, around the dedup state: each is unique by its Kafka
                  offset, so storing it there (as until 2026-12-04) only cost a key per
                  message and its eviction scan
    A delivery of a late event is dropped by the aggregation instead, with its closed
    window (Spark drops input rows whose window ended before the watermark).
    Dead rows still pass the dedup (keyed by offset, with no event time: kept, never
    evicted) so that its duplicate count stays the events' alone; then they are filtered
    out of the events branch.
    `partitions` must be the state's (spark.sql.shuffle.partitions when the checkpoint
    began) for the shuffle to serve the dedup; None reads the session's setting."""
    from pyspark.sql import functions as F

    from services.processor.aggregates import AGGREGATED_COLUMNS

    delay_ms = watermark_seconds * 1000
    valid = F.col("reason").isNull()
    pk = F.concat_ws(":", F.col("partition").cast("string"), F.col("offset").cast("string"))
    if partitions is None:
        partitions = int(parsed.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    rows = (
        parsed.withColumn("ts", F.col("e.timestamp"))
        .withWatermark("ts", f"{watermark_seconds} seconds")
        .select(
            valid.alias("valid"),
            F.when(valid, F.col("e.event_id")).otherwise(F.concat(F.lit("d:"), pk)).alias("dkey"),
            # the only column carrying the watermark marker into dedup (ts itself is dropped)
            F.when(valid, F.col("ts")).alias("dts", metadata={WATERMARK_KEY: delay_ms}),
            *(F.when(valid, F.col(f"e.{c}")).alias(c) for c in AGGREGATED_COLUMNS),
            *(F.when(~valid, F.col(c)).alias(c) for c in DEAD_COLUMNS))
        # the dedup's own shuffle, made explicit so that both branches share it
        .repartition(partitions, "dkey", "dts")
    )
    # the filter sits above the dedup: Spark would push it below the shared shuffle, and
    # each branch would then read and parse the topic on its own
    events = (rows.dropDuplicates(["dkey", "dts"]).where(F.col("valid"))
              .withColumn("kind", F.lit("event")))
    rest = rows.withColumn("kind", F.when(F.col("valid"), F.lit("delivery")).otherwise("dead"))
    return events.unionByName(rest).drop("valid", "dkey")


# --------------------------------------------------------------------------- tag + reduce
def tag_and_reduce(marked, watermark_seconds: int):
    """Marker rows -> tagged rows of every aggregate (+ dead letters) -> ONE groupBy."""
    from pyspark.sql import functions as F

    from services.processor import aggregates as ag

    kind = F.col("kind")
    events = marked.select(
        *ag.AGGREGATED_COLUMNS,
        F.when(kind == "event", 1).otherwise(0).alias("_event"),
        F.when(kind == "delivery", 1).otherwise(0).alias("_deliveries"),
        "kind", *DEAD_COLUMNS,
    )
    # a dead letter is one record: its strings are keys, never buffers (see ag.SLOTS)
    dead = F.when(kind == "dead", ag.tag_struct(
        "dead_letter", F.col("kafka_ts"), F.lit(None).cast("timestamp"),
        [F.col(c) for c in ("partition", "offset", "payload", "reason", "topic")], {}))
    tagged = ag.tag_rows(events, extra=[dead], keep=("kind", *DEAD_COLUMNS))
    wend = F.col("wend").alias("wend", metadata={WATERMARK_KEY: watermark_seconds * 1000})
    return ag.reduce(tagged, wend=wend)


def build_query_frame(records, watermark_seconds: int):
    """The whole pure pipeline: Kafka-shaped records -> reduced rows (streaming or static)."""
    return tag_and_reduce(mark_and_dedup(parse(records), watermark_seconds), watermark_seconds)


# --------------------------------------------------------------------------- sink
def dead_letter_rows(reduced):
    from pyspark.sql import functions as F

    return reduced.where(F.col("agg") == "dead_letter").select(
        F.to_date("wstart").alias("day"), F.col("wstart").alias("received_at"),
        F.concat(F.lit("kafka:"), F.col("k4")).alias("source"),
        F.col("k0").cast("int").alias("kafka_partition"),
        F.col("k1").cast("long").alias("kafka_offset"),
        F.col("k3").alias("reason"), F.col("k2").alias("payload"))


class Router:
    """foreachBatch body: route one micro-batch's updated rows to their tables.

    Per micro-batch, the job that runs the stateful query collects up to `local_rows` + 1
    of its updated rows. At most `local_rows` (a live micro-batch): the sink writes each
    table's rows with prepared CQL statements (`local_rows.py`): one Spark job in all.
    More (a catch-up): a small job over the cache counts the rows per aggregate (and
    collects the sessions touched), then one connector write per table with rows,
    concurrently (each a small Spark job; their latency is what adds up). An empty
    micro-batch writes nothing.

    Sessions: the touched sessions' stored pieces (`session_partials`) are read by key
    through the sink (`read_rows`), overlaid with this micro-batch's pieces and folded into
    their `sessions` rows, in either path (`_fold_sessions`, `_fold_sessions_local`).

    The second level (funnel_hourly, campaign_conversion), if `read_pieces` is given (the
    stored pieces of whole days, `second_level.SecondLevel`): the cells of the touched
    sessions' old rows (their stored pieces folded) are subtracted, those of their new rows
    added, and the rows that changed written, every micro-batch that touches a session."""

    def __init__(self, sink: Sink, suffix: str = "",
                 read_pieces: Callable[[list[dt.date]], DataFrame] | None = None,  # noqa: F821
                 write_timeout: float = 300.0, local_rows: int = 0):
        self.sink = sink
        # a micro-batch of at most this many updated rows is written from the driver
        # (`local_rows`), if the sink can (`write_rows`); 0: always one Spark job per table
        self.local_rows = local_rows if hasattr(sink, "write_rows") else 0
        self.parallel_writes = 6
        self.write_timeout = write_timeout
        self.suffix = suffix
        self.second_level = None
        if read_pieces is not None:
            from services.processor.second_level import SecondLevel

            self.second_level = SecondLevel(sink, read_pieces, suffix)
        self.batches = 0
        self.dead_letters = 0
        self.invalid_by_batch: dict[int, int] = {}
        self._built: dict | None = None

    def __call__(self, batch, batch_id: int) -> None:
        from pyspark.sql import functions as F
        from pyspark.storagelevel import StorageLevel

        from services.processor import aggregates as ag

        batch = batch.persist(StorageLevel.MEMORY_AND_DISK)
        t0 = time.monotonic()
        folded = None
        try:
            if self.local_rows and self._try_local(batch, batch_id, t0):
                return
            # a large micro-batch (the collect above filled the cache): which aggregates
            # have rows, and the sessions touched (day, session_id)
            sessions, _ = ag.BY_TABLE[ag.FOLDED["sessions"]]
            with ThreadPoolExecutor(1) as pool:
                # building the tables' DataFrames is PySpark calls: done while the
                # summary job runs
                frames = pool.submit(lambda: {n: ag.table_rows(batch, n, p)
                                              for n, p in self._projections().items()})
                summary = batch.groupBy("agg").agg(
                    F.count(F.lit(1)).alias("rows"),
                    F.collect_set(F.when(F.col("agg") == sessions.name, F.struct(
                        F.to_date("wstart"), F.col("k0")))).alias("sessions")).collect()
                tables = frames.result()
            rows = {r["agg"]: r["rows"] for r in summary}
            log.debug("micro-batch %d: updated rows %s", batch_id, rows)
            touched = {(d, s) for r in summary for d, s in r["sessions"]}
            log.info("micro-batch %d: %d updated rows in %.1fs", batch_id, sum(rows.values()),
                     time.monotonic() - t0)
            written = [name for name in tables if rows.get(ag.BY_TABLE[name][0].name)]
            invalid = rows.get("dead_letter", 0)
            jobs = [(name + self.suffix, tables[name]) for name in written]
            delta = {}
            if rows.get(sessions.name):  # the longest write (a read and a fold): first
                folded, delta = self._fold_sessions(tables[ag.FOLDED["sessions"]], touched)
                jobs.insert(0, ("sessions" + self.suffix, folded))
            if invalid:
                jobs.append((tb.DEAD_LETTER.name, dead_letter_rows(batch)))
            self._write_all(jobs)
            self._done(batch_id, invalid, delta, len(jobs), t0)
        except BaseException:
            if self.second_level is not None:
                self.second_level.forget()  # reloaded from what was stored
            raise
        finally:
            if folded is not None:
                folded.unpersist()
            batch.unpersist()

    def _done(self, batch_id: int, invalid: int, delta, tables: int, t0: float) -> None:
        if self.second_level is not None and delta:
            self.second_level.apply(delta)
        self.invalid_by_batch[batch_id] = invalid
        self.dead_letters += invalid
        log.info("micro-batch %d: %d tables written in %.1fs", batch_id, tables,
                 time.monotonic() - t0)
        self.batches += 1

    def _fold_sessions(self, partials, touched: set[tuple[dt.date, str]]):
        """The touched sessions' rows (cached: the caller unpersists them) and, with a
        second level, the change of its cells: this micro-batch's pieces of them (`partials`,
        running totals of their windows) with their stored pieces of other windows, folded.
        Exact and replay-safe whether or not this micro-batch's pieces were stored yet. The
        stored pieces are read by key from the driver (`sink.read_rows`): a read of the
        touched days through the connector grows with the day (6-7 s per micro-batch after
        20 minutes at 5k events/s, 2026-12-05)."""
        from pyspark.sql import functions as F
        from pyspark.storagelevel import StorageLevel

        from services.processor import aggregates as ag
        from services.processor import second_level

        if self.second_level is not None:
            self.second_level.load({d for d, _ in touched})
        table = tb.SESSION_PARTIALS
        stored = self.sink.read_rows(ag.FOLDED["sessions"] + self.suffix, touched)
        old = None
        if stored:
            pk = list(table.primary_key)
            old = partials.sparkSession.createDataFrame(
                [tuple(r[c] for c in table.column_names) for r in stored], table.spark_schema())
            partials = old.join(partials.select(*pk), pk, "left_anti").unionByName(partials)
        folded = ag.fold_sessions(partials).persist(StorageLevel.MEMORY_AND_DISK)
        if self.second_level is None:
            return folded, {}
        sign = folded.withColumn("_sign", F.lit(1))
        if old is not None:
            sign = sign.unionByName(ag.fold_sessions(old).withColumn("_sign", F.lit(-1)))
        return folded, second_level.collect_cells(ag.session_cells(sign, F.col("_sign")))

    def _fold_sessions_local(self, partials: list[dict]) -> tuple[list[dict], dict]:
        """`_fold_sessions` for a small micro-batch: the touched sessions' stored pieces are
        read by key (a few CQL queries), folded in Python."""
        from services.processor import aggregates as ag
        from services.processor import local_rows, second_level

        pk = tb.SESSION_PARTIALS.primary_key
        mine = {tuple(r[c] for c in pk) for r in partials}
        if self.second_level is not None:
            self.second_level.load({k[0] for k in mine})
        stored = self.sink.read_rows(ag.FOLDED["sessions"] + self.suffix, {k[:2] for k in mine})
        older = [r for r in stored if tuple(r[c] for c in pk) not in mine]
        new = local_rows.fold_sessions(older + partials)
        if self.second_level is None:
            return new, {}
        return new, second_level.change(local_rows.fold_sessions(stored), new)

    def _projections(self) -> dict:
        """The tables' projections, built at the first micro-batch (they need the JVM) and
        applied to every later one."""
        from services.processor import aggregates as ag

        if self._built is None:
            self._built = {n: ag.projection(n) for n in ag.FIRST_LEVEL}
        return self._built

    def _try_local(self, batch, batch_id: int, t0: float) -> bool:
        """A small micro-batch (at most `local_rows` updated rows, a live one): the job that
        runs the stateful query also collects its reduced rows -- one Spark job, no
        summary -- and the tables' rows are projected in Python and written by the sink's
        own CQL session. False (nothing written) if there are more rows: the caller writes
        them through the connector from the cache this collect filled."""
        from services.processor import aggregates as ag
        from services.processor import local_rows

        reduced = local_rows.collect_reduced(batch, limit=self.local_rows + 1)
        if len(reduced) > self.local_rows:
            return False
        delta = {}
        t1 = time.monotonic()
        names = Counter(r["agg"] for r in reduced)
        log.debug("micro-batch %d: updated rows %s", batch_id, dict(names))
        log.info("micro-batch %d: %d updated rows in %.1fs", batch_id, len(reduced), t1 - t0)
        written = [n for n in ag.FIRST_LEVEL if names[ag.BY_TABLE[n][0].name]]
        rows = {name: local_rows.table_rows(reduced, name) for name in written}
        if partials := rows.get(ag.FOLDED["sessions"]):
            rows["sessions"], delta = self._fold_sessions_local(partials)
            written.append("sessions")
        for name in written:
            self.sink.write_rows(name + self.suffix, rows[name])
        invalid = names["dead_letter"]
        if invalid:
            self.sink.write_rows(tb.DEAD_LETTER.name, local_rows.dead_letter_rows(reduced))
        log.debug("%d reduced rows collected in %.2fs, written in %.2fs", len(reduced),
                  t1 - t0, time.monotonic() - t1)
        self._done(batch_id, invalid, delta, len(written) + bool(invalid), t0)
        return True

    def _write_all(self, jobs: list[tuple[str, DataFrame]]) -> None:  # noqa: F821
        """Write the tables concurrently; the first failure fails the micro-batch, and so
        does a write still running after `write_timeout` seconds. The connector can wait
        forever for a Cassandra that went away (its cached session's schema refresh never
        completes): without the deadline the job would hang instead of failing loudly. The
        threads are daemons, so that a hung one cannot keep the process alive."""
        slots = threading.BoundedSemaphore(self.parallel_writes)
        errors: list[BaseException] = []

        def write(name: str, df) -> None:
            with slots:
                try:
                    t0 = time.monotonic()
                    self.sink(name, df)
                    log.debug("%s written in %.2fs", name, time.monotonic() - t0)
                except BaseException as e:  # noqa: BLE001 - raised below, in the caller
                    errors.append(e)

        threads = [threading.Thread(target=write, args=job, name=f"write-{job[0]}",
                                    daemon=True) for job in jobs]
        for t in threads:
            t.start()
        deadline = time.monotonic() + self.write_timeout
        for t in threads:
            while t.is_alive() and not errors and time.monotonic() < deadline:
                t.join(0.2)
        if errors:
            raise errors[0]
        stuck = [t.name.removeprefix("write-") for t in threads if t.is_alive()]
        if stuck:
            raise TimeoutError(f"Cassandra writes of {', '.join(stuck)} did not finish in "
                               f"{self.write_timeout:.0f} s (is Cassandra up?)")


class CassandraSink:
    """Upserts a table's rows into the keyspace: a DataFrame through the Spark Cassandra
    connector (one Spark job), or a small micro-batch's rows (dicts, `local_rows`) through
    this process's own CQL session with a prepared INSERT per table. A failed or timed-out
    statement raises, which fails the micro-batch (replayed at restart)."""

    def __init__(self, settings: Settings, keyspace: str | None = None, concurrency: int = 16,
                 batch_rows: int = 100, keys_per_read: int = 200):
        self.settings = settings
        self.keyspace = keyspace or settings.cassandra_keyspace
        self.concurrency = concurrency
        self.batch_rows = batch_rows
        self.keys_per_read = keys_per_read
        self._cluster = self._session = None
        self._insert: dict[str, object] = {}
        self._select: dict[str, object] = {}
        self._delete: dict[str, object] = {}

    def _connected(self):
        if self._session is None:
            from shared.clients.cassandra import connect

            self._cluster, self._session = connect(self.settings, self.keyspace)
        return self._session

    def __call__(self, name: str, df) -> None:
        from services.processor.batch import write_table

        write_table(df, self.keyspace, name)

    def write_rows(self, name: str, rows: list[dict]) -> None:
        """Upsert `rows` (dicts of the table's columns): as the connector does, the rows of
        one partition (one day: every table here) go in unlogged batches of at most
        `batch_rows`, exempt from Cassandra's batch-size limits since single-partition, at
        the connector's LOCAL_QUORUM."""
        from cassandra import ConsistencyLevel
        from cassandra.concurrent import execute_concurrent
        from cassandra.query import BatchStatement, BatchType

        if not rows:
            return
        self._connected()
        table = tb.table(name)
        cols = table.column_names
        if name not in self._insert:
            self._insert[name] = self._session.prepare(
                f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})")
        insert = self._insert[name]
        by_partition: dict[tuple, list[dict]] = {}
        for r in rows:
            by_partition.setdefault(tuple(r[k] for k in table.partition_key), []).append(r)
        batches = []
        for part in by_partition.values():
            for i in range(0, len(part), self.batch_rows):
                batch = BatchStatement(batch_type=BatchType.UNLOGGED,
                                       consistency_level=ConsistencyLevel.LOCAL_QUORUM)
                for r in part[i:i + self.batch_rows]:
                    batch.add(insert, [r[c] for c in cols])
                batches.append((batch, None))
        execute_concurrent(self._session, batches, concurrency=self.concurrency,
                           raise_on_first_error=True)

    def delete_rows(self, name: str, keys: list[dict]) -> None:
        """Delete the rows of `name` under `keys` (dicts of its primary key's columns)."""
        from cassandra import ConsistencyLevel
        from cassandra.concurrent import execute_concurrent_with_args

        if not keys:
            return
        session = self._connected()
        pk = tb.table(name).primary_key
        if name not in self._delete:
            self._delete[name] = session.prepare(
                f"DELETE FROM {name} WHERE {' AND '.join(f'{k} = ?' for k in pk)}")
            self._delete[name].consistency_level = ConsistencyLevel.LOCAL_QUORUM
        execute_concurrent_with_args(session, self._delete[name],
                                     [[k[c] for c in pk] for k in keys],
                                     concurrency=self.concurrency, raise_on_first_error=True)

    def read_rows(self, name: str, keys: set[tuple]) -> list[dict]:
        """The rows of `name` (a day-partitioned table) under the (day, first clustering
        column) `keys`, as dicts with timestamps as aware UTC datetimes: one prepared
        `WHERE day = ? AND <col> IN ?` per day and `keys_per_read` keys, concurrently
        (3,500 sessions' pieces: 0.08 s here; one query per key: 1.2 s). At LOCAL_QUORUM,
        as `write_rows` and the connector write: a piece written by an earlier micro-batch
        is read back on a cluster with replicas too."""
        from cassandra import ConsistencyLevel
        from cassandra.concurrent import execute_concurrent_with_args

        if not keys:
            return []
        session = self._connected()
        table = tb.table(name)
        column = table.clustering[0][0]
        if name not in self._select:
            self._select[name] = session.prepare(
                f"SELECT {', '.join(table.column_names)} FROM {name} "
                f"WHERE {tb.DAY} = ? AND {column} IN ?")
            self._select[name].consistency_level = ConsistencyLevel.LOCAL_QUORUM
        by_day: dict[dt.date, list] = {}
        for day, key in keys:
            by_day.setdefault(day, []).append(key)
        args = [(day, ks[i:i + self.keys_per_read]) for day, ks in by_day.items()
                for i in range(0, len(ks), self.keys_per_read)]
        results = execute_concurrent_with_args(session, self._select[name], args,
                                               concurrency=self.concurrency,
                                               raise_on_first_error=True)
        out = []
        for _, result in results:
            for r in result:
                d = dict(zip(table.column_names, r, strict=True))
                for k, v in d.items():
                    if isinstance(v, dt.datetime):
                        d[k] = v.replace(tzinfo=dt.UTC)
                    elif k == tb.DAY and not isinstance(v, dt.date):
                        d[k] = v.date()  # the driver's Date type
                out.append(d)
        return out

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.shutdown()
            self._cluster = self._session = None


def cassandra_day_reader(spark, keyspace: str, table: str):
    """days -> the rows of those days of `table`, through the Spark connector."""
    def read(days: list[dt.date]):
        from pyspark.sql import functions as F

        df = (spark.read.format("org.apache.spark.sql.cassandra")
              .options(keyspace=keyspace, table=table).load())
        return df.where(F.col("day").isin(*days))  # partition-key pushdown: no scan

    return read


def cassandra_router(spark, settings: Settings) -> Router:
    """The job's router: the settings' keyspace, the sessions folded from their stored
    pieces, the second level's cells loaded from them."""
    return Router(CassandraSink(settings),
                  read_pieces=cassandra_day_reader(spark, settings.cassandra_keyspace,
                                                   tb.SESSION_PARTIALS.name),
                  write_timeout=settings.processor_write_timeout_seconds,
                  local_rows=settings.processor_local_rows)


# --------------------------------------------------------------------------- quality
class QualityListener:
    """Writes one `ingest_quality` row per micro-batch from the query progress.

    The progress only exists once its micro-batch is committed, so a row that cannot be
    written (Cassandra down) would not come back with a replay: it is kept in `spool`
    (JSON lines beside the checkpoint) and written by `retry_spooled` at the next start."""

    def __init__(self, write: Callable[[dict], None], router: Router,
                 spool: Path | None = None):
        self.write = write
        self.router = router
        self.spool = spool

    def on_progress(self, p: dict) -> None:
        dedup = [s for s in p.get("stateOperators", []) if s.get("operatorName") == "dedupe"]
        dropped = sum(s.get("numRowsDroppedByWatermark", 0) for s in dedup)
        duplicates = sum(s.get("customMetrics", {}).get("numDroppedDuplicateRows", 0)
                         for s in dedup)
        finished = dt.datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00"))
        row = {
            "day": finished.date(), "run_id": p["runId"], "batch_id": p["batchId"],
            "finished_at": finished, "input_rows": p.get("numInputRows", 0),
            "invalid": self.router.invalid_by_batch.pop(p["batchId"], 0),
            # only event rows carry an event time into the dedup (`mark_and_dedup`)
            "late_dropped": dropped,
            # dead rows pass it too, each with a key of its own: never a duplicate
            "duplicates_dropped": duplicates,
        }
        try:
            self.write(row)
        except Exception:
            if self.spool is not None:
                import json

                with self.spool.open("a") as f:
                    f.write(json.dumps(row, default=lambda v: v.isoformat()) + "\n")
            raise

    def retry_spooled(self) -> int:
        """Write the rows a previous run could not; returns how many."""
        import json

        if self.spool is None or not self.spool.exists():
            return 0
        rows = [json.loads(line) for line in self.spool.read_text().splitlines() if line]
        for row in rows:
            row["day"] = dt.date.fromisoformat(row["day"])
            row["finished_at"] = dt.datetime.fromisoformat(row["finished_at"])
            self.write(row)
        self.spool.unlink()
        return len(rows)


def cassandra_quality_writer(settings: Settings):
    from shared.clients.cassandra import connect

    cluster, session = connect(settings, settings.cassandra_keyspace)
    cols = tb.INGEST_QUALITY.column_names
    stmt = session.prepare(f"INSERT INTO {tb.INGEST_QUALITY.name} ({', '.join(cols)}) "
                           f"VALUES ({', '.join('?' for _ in cols)})")

    def write(row: dict) -> None:
        session.execute(stmt, [row[c] for c in cols])

    write.shutdown = cluster.shutdown  # type: ignore[attr-defined]
    return write


# --------------------------------------------------------------------------- runner
def state_summary(progress: dict) -> str:
    """Each stateful operator's rows and where its time went, from a query progress: the
    removals are its scan of the whole store for keys below the watermark."""
    return "; ".join(
        f"{s.get('operatorName')} +{s.get('numRowsUpdated', 0):,} -{s.get('numRowsRemoved', 0):,}"
        # the total is 0 unless the store tracks it (`configure_state` turns that off)
        + (f" of {s['numRowsTotal']:,}" if s.get("numRowsTotal") else "") + " rows, "
        f"update {s.get('allUpdatesTimeMs', 0)} ms, removal {s.get('allRemovalsTimeMs', 0)} ms, "
        f"commit {s.get('commitTimeMs', 0)} ms"
        for s in progress.get("stateOperators", [])) or "none"


def start_query(records, router: Router, checkpoint: Path, trigger_seconds: float | None,
                watermark_seconds: int, name: str = "clickstream-processor",
                available_now: bool = False):
    """Start the streaming query over `records` (Kafka-shaped) with `router` as sink."""
    checkpoint.mkdir(parents=True, exist_ok=True)
    writer = (
        build_query_frame(records, watermark_seconds)
        .writeStream.queryName(name)
        .outputMode("update")
        .option("checkpointLocation", str(checkpoint))
        .foreachBatch(router)
    )
    if available_now:
        writer = writer.trigger(availableNow=True)
    elif trigger_seconds:
        writer = writer.trigger(processingTime=f"{trigger_seconds} seconds")
    return writer.start()


def configure_state(spark) -> None:
    """RocksDB state store: state lives on disk, so the driver/executor heap stays flat.
    Without tracking the total number of rows, a write is a put, not a get + put (the
    progress then reports numRowsTotal as 0; rows removed and dropped are still counted)."""
    spark.conf.set("spark.sql.streaming.stateStore.providerClass",
                   "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
    spark.conf.set("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled",
                   "true")
    spark.conf.set("spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows", "false")


def run_stream(settings: Settings, master: str | None = None,
               trigger_seconds: float | None = None, watermark_seconds: int | None = None,
               checkpoint: Path | None = None, max_offsets: int | None = None,
               available_now: bool = False, timeout: float | None = None) -> Router:
    """Run the streaming job until it is stopped (Ctrl-C), fails, or -- with
    `available_now` -- has processed everything in the topic. Returns the router (counts)."""
    from pyspark.errors import StreamingQueryException

    from services.processor.session import build_session
    from shared.errors import ClickstreamError

    trigger_seconds = trigger_seconds or settings.processor_trigger_seconds
    watermark_seconds = (settings.processor_watermark_seconds if watermark_seconds is None
                         else watermark_seconds)
    checkpoint = Path(checkpoint or settings.processor_checkpoint_dir
                      or settings.data_dir / "checkpoints" / "processor")
    spark = build_session(settings, "clickstream-stream", master)
    configure_state(spark)
    if not log.isEnabledFor(logging.INFO):
        # a failed micro-batch (Cassandra gone) is reported below as one `error:` line;
        # py4j would also log the foreachBatch's Python traceback at ERROR (-v shows it)
        logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)
    router = cassandra_router(spark, settings)
    checkpoint.mkdir(parents=True, exist_ok=True)
    quality = QualityListener(cassandra_quality_writer(settings), router,
                              spool=checkpoint.parent / f"{checkpoint.name}.quality-pending")
    if n := quality.retry_spooled():
        log.info("wrote %d ingest_quality rows left over by the last run", n)
    query = start_query(read_kafka(spark, settings, max_offsets), router, checkpoint,
                        trigger_seconds, watermark_seconds, available_now=available_now)
    log.info("streaming from %s/%s, checkpoint %s", settings.bootstrap_servers,
             settings.kafka_topic, checkpoint)

    def on_progress(p: dict) -> None:
        log.info("micro-batch %d: %d records, %s ms; state %s", p["batchId"],
                 p["numInputRows"], p.get("durationMs"), state_summary(p))
        quality.on_progress(p)

    try:
        follow_query(query, on_progress, timeout=timeout)
        return router
    except KeyboardInterrupt:
        return router
    except StreamingQueryException as e:  # e.g. Cassandra gone while writing
        raise ClickstreamError(f"the streaming query failed: {_first_line(e)} -- restart it "
                               f"to resume from {checkpoint}") from None
    except ClickstreamError:
        raise
    except Exception as e:  # e.g. an ingest_quality row Cassandra refused: resumable
        raise ClickstreamError(f"the streaming job stopped: {_first_line(e)} -- restart it "
                               f"to resume from {checkpoint}") from None
    finally:
        try:
            quality.write.shutdown()
            router.sink.close()
        finally:
            spark.stop()


def follow_query(query, report: Callable[[dict], None], poll_seconds: float = 1.0,
                 timeout: float | None = None) -> None:
    """Wait until `query` ends -- finished (available-now), stopped, failed, interrupted or
    past `timeout` -- calling `report` once per committed micro-batch, in order, including
    the ones committed after the last look (a micro-batch can commit and the next one fail
    within one poll). A failure is raised after they are reported; once the query has ended,
    a report that raises (its row spooled) does not stop the others or hide the failure."""
    from pyspark.errors import StreamingQueryException

    seen = -1

    def catch_up(keep_going: bool = False) -> None:
        nonlocal seen
        for p in query.recentProgress:
            if p["batchId"] > seen and p.get("numInputRows") is not None:
                seen = p["batchId"]
                if not keep_going:
                    report(p)
                    continue
                with contextlib.suppress(Exception):
                    report(p)

    deadline = time.monotonic() + timeout if timeout else None
    try:
        while query.isActive:
            try:
                query.awaitTermination(poll_seconds)
            except StreamingQueryException:
                break  # raised below, once the micro-batches before it are reported
            catch_up()
            if deadline and time.monotonic() > deadline:
                query.stop()
    except BaseException:  # Ctrl-C, or a report refused while the query ran
        if query.isActive:
            _stop_quietly(query)
        with contextlib.suppress(Exception):  # the JVM may be going away with a Ctrl-C
            catch_up(keep_going=True)
        raise
    failure = query.exception()
    catch_up(keep_going=failure is not None)
    if failure is not None:
        raise failure


def _stop_quietly(query) -> None:
    """Stop the query on purpose: a micro-batch it interrupts makes py4j log the Python
    traceback of the interrupted foreachBatch at ERROR, which is noise here."""
    logging.getLogger("py4j.clientserver").setLevel(logging.CRITICAL)
    query.stop()


def _first_line(e) -> str:
    """The informative line of a (possibly Java-wrapped Python) exception message."""
    import re

    lines = [ln.strip() for ln in str(getattr(e, "desc", None) or e).strip().splitlines()]
    if any("Traceback" in ln for ln in lines):
        # foreachBatch failures carry the Python traceback; its last "X: msg" line says it
        errors = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Unavailable|"
                                                 r"NoHostAvailable)\b.*", ln)]
        if errors:
            i = len(lines) - 1 - lines[::-1].index(errors[-1])
            cause = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith(":") else ""
            return (errors[-1] + " " + cause).strip()[:400]
    return (lines[0] if lines else type(e).__name__)[:400]
