"""The stream pipeline (parse -> mark/dedup -> one groupBy -> router) on a file source of
Kafka-shaped records and an upserting memory sink: exact totals vs the Polars truth, dead
letters, late drops counted, and the watermark-marker trick evicting state."""

import datetime as dt

import pytest
from test_events_schema import event, event_v2, rule_breaks, version_rule_breaks
from test_truth_handmade import normalise

from services.processor import stream
from shared import tables as tb
from testing.spark import (
    RECORD_SCHEMA,
    MemorySink,
    generate,
    local_session,
    make_event,
    polars_events,
    write_record_files,
)
from testing.truth import truth

WATERMARK = 600
BAD = ["{not json", '{"event_id": "x"}', "[1, 2]"]


def memory_router(spark, sink, **options) -> stream.Router:
    """A Router over `sink` that loads the second level's cells from the pieces stored in
    it, as the job loads them from Cassandra."""
    return stream.Router(sink, read_pieces=sink.day_reader(spark), **options)


def run_files(folder, checkpoint, sink, watermark=WATERMARK, **router_options):
    spark = local_session()
    records = spark.readStream.schema(RECORD_SCHEMA).option("maxFilesPerTrigger", 1).json(
        str(folder))
    router = memory_router(spark, sink, **router_options)
    q = stream.start_query(records, router, checkpoint, None, watermark)
    try:
        q.processAllAvailable()
        progress = q.recentProgress
    finally:
        q.stop()
    return router, progress


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    events = generate(120, seed=5, span_hours=3.0, late_ms=120_000)
    n = len(events)
    batches = [events[i * n // 4:(i + 1) * n // 4] for i in range(4)]
    batches[2] = batches[2] + BAD
    write_record_files(tmp / "in", batches)
    sink = MemorySink()
    router, progress = run_files(tmp / "in", tmp / "ckpt", sink)
    return events, sink, router, progress


def test_processor_stream_tables_equal_polars_truth(streamed):
    events, sink, _, _ = streamed
    expected = truth(polars_events(events))
    for t in tb.ANALYTICS:
        assert normalise(sink.rows(t.name)) == normalise(expected[t.name].rows()), t.name


def test_processor_stream_dead_letters_keep_payload_reason_and_offset(streamed):
    _, sink, router, _ = streamed
    dead = sorted(sink.rows("dead_letter"), key=lambda r: r[4])
    assert [r[6] for r in dead] == BAD
    assert [r[5] for r in dead] == ["not a JSON object of the event schema",
                                    "schema_version is missing, null or not a int",
                                    "not a JSON object of the event schema"]
    assert all(r[2] == "kafka:clickstream" and r[3] == 0 for r in dead)
    assert len({r[4] for r in dead}) == 3
    assert router.dead_letters == 3


def test_processor_stream_state_shrinks(streamed):
    """Pins the watermark-marker trick: if the window end stops carrying the watermark
    metadata, the aggregation never evicts and numRowsRemoved stays 0. Eviction happens in
    the micro-batches with data (4 files, 4 micro-batches)."""
    _, _, _, progress = streamed
    agg = [op for p in progress for op in p["stateOperators"]
           if op["operatorName"] != "dedupe"]
    assert agg, [op["operatorName"] for p in progress for op in p["stateOperators"]]
    # the watermark moves with every file (each spans later event times): every micro-batch
    # after the first evicts the windows that closed, sessions' pieces among them
    assert [op["numRowsRemoved"] > 0 for op in agg] == [False, True, True, True]
    dedup = [op for p in progress for op in p["stateOperators"] if op["operatorName"] == "dedupe"]
    assert sum(op["numRowsRemoved"] for op in dedup) > 0
    # ... and in micro-batches with data: none runs only to move the watermark and evict
    # (`session.SQL_CONF`), a scan of every store that writes nothing in update mode
    assert [p["numInputRows"] > 0 for p in progress] == [True] * 4


def test_processor_stream_late_events_beyond_watermark_are_counted(tmp_path):
    """Spark drops input older than the PREVIOUS micro-batch's watermark (3.5 semantics):
    c1 (10:30) arrives when that watermark is 11:50 -> dropped and counted; c2 (11:55) is
    within the watermark -> counted in its window."""
    base = dict(session_id="s", page="homepage", action="view")
    on_time = [make_event(f"a{i}", f"2026-01-01T10:{i:02d}:00", **base) for i in range(3)]
    ahead = [make_event("b1", "2026-01-01T12:00:00", **base)]
    within = [make_event("c2", "2026-01-01T11:55:00", **base)]
    too_late = [make_event("c1", "2026-01-01T10:30:00", **base)]
    write_record_files(tmp_path / "in", [on_time, ahead, within, too_late])
    sink = MemorySink()
    router, progress = run_files(tmp_path / "in", tmp_path / "ckpt", sink)
    rows = []
    listener = stream.QualityListener(rows.append, router)
    for p in progress:
        listener.on_progress(p)
    assert sum(r["late_dropped"] for r in rows) == 1
    assert sum(r["input_rows"] for r in rows) == 6
    views = {r[1]: r[2] for r in sink.rows("website_views")}
    assert views == {dt.datetime(2026, 1, 1, 10): 3, dt.datetime(2026, 1, 1, 11): 1,
                     dt.datetime(2026, 1, 1, 12): 1}
    # its delivery bypasses the dedup: the aggregation drops it with its closed minute, so
    # data quality counts the received copies of the events counted, no more
    quality = sink.rows("data_quality")
    assert {r[1].minute for r in quality if r[1].hour == 10} == {0, 1, 2}
    assert sum(r[2] for r in quality) == sum(r[3] for r in quality) == 5


def test_processor_stream_restart_from_checkpoint_is_exact(tmp_path):
    """A second run on the same checkpoint continues where the first stopped; the upserted
    rows end exact (the new batch updates rows written by the first run)."""
    events = generate(60, seed=9, span_hours=1.0)
    half = len(events) // 2
    write_record_files(tmp_path / "all", [events[:half], events[half:]])
    (tmp_path / "in").mkdir()
    sink = MemorySink()
    for name in ("batch-0000.json", "batch-0001.json"):
        (tmp_path / "in" / name).write_text((tmp_path / "all" / name).read_text())
        run_files(tmp_path / "in", tmp_path / "ckpt", sink)
    expected = truth(polars_events(events))
    for name in ("time_agg", "sessions", "data_quality", "funnel_hourly"):
        assert normalise(sink.rows(name)) == normalise(expected[name].rows()), name


@pytest.mark.parametrize("local", [0, 10**9], ids=["connector", "driver"])
def test_processor_stream_session_in_pieces_across_micro_batches_is_one_exact_row(tmp_path,
                                                                                   local):
    """A session lives in the state as 5-minute pieces (`session_partials`); its `sessions`
    row is the fold of every stored piece with the micro-batch's own. Here one session spans
    three pieces over three micro-batches, the last one adding to an earlier piece (a late
    event) with another device than the piece's first event, which had a campaign: its row
    must count all of them and keep the greatest of each attribute, in both write paths."""
    base = dict(session_id="s-long", page="homepage", action="view", user_id="u7")
    batches = [
        [make_event("a", "2026-01-01T10:00:00", **base),
         make_event("b", "2026-01-01T10:06:00", **base, utm_campaign="spring")],
        [make_event("c", "2026-01-01T10:12:00", **dict(base, page="cart",
                                                      action="add_to_cart"))],
        [make_event("d", "2026-01-01T10:08:00", **dict(base, page="product"),
                    device_type="tablet")],
    ]
    write_record_files(tmp_path / "in", batches)
    sink = MemorySink()
    run_files(tmp_path / "in", tmp_path / "ckpt", sink, local_rows=local)
    pieces = sink.rows("session_partials")
    # one piece per 5 minutes and attributes: 10:05 holds b (desktop) and d (tablet)
    assert sorted(r[2].minute for r in pieces) == [0, 5, 5, 10]
    t = tb.SESSIONS.column_names
    [row] = [dict(zip(t, r, strict=True)) for r in sink.rows("sessions")]
    assert row["start_ts"] == dt.datetime(2026, 1, 1, 10, 0)
    assert row["end_ts"] == dt.datetime(2026, 1, 1, 10, 12)
    assert row["duration_ms"] == 12 * 60_000
    assert (row["events"], row["pages"]) == (4, 3)
    assert row["reached_product"] and row["reached_cart"] and not row["converted"]
    assert (row["utm_campaign"], row["device_type"], row["user_id"]) == (
        "spring", "tablet", "u7")


@pytest.mark.parametrize("local", [0, 10**9], ids=["connector", "driver"])
def test_processor_stream_second_level_follows_a_session_into_an_earlier_hour(tmp_path,
                                                                             local):
    """funnel_hourly and campaign_conversion change by the cells of the touched sessions
    (`second_level`). A late event moves a session's start from 10:02 to 09:58: it leaves
    the 10:00 rows -- which then have no session and must be gone, not left stale or
    written as zeros -- and joins 09:00 beside another session; then it converts."""
    spring = dict(session_id="s1", utm_campaign="spring", utm_source="mail")
    events = [
        [make_event("a", "2026-01-01T10:02:00", page="homepage", action="view", **spring),
         make_event("b", "2026-01-01T09:40:00", session_id="s2", page="product",
                    action="view")],
        [make_event("c", "2026-01-01T09:58:00", page="product", action="view", **spring)],
        [make_event("d", "2026-01-01T10:05:00", page="checkout", action="purchase",
                    order_id="o1", revenue_cents=1234, **spring)],
    ]
    write_record_files(tmp_path / "in", events)
    sink = MemorySink()
    run_files(tmp_path / "in", tmp_path / "ckpt", sink, local_rows=local)
    expected = truth(polars_events([e for batch in events for e in batch]))
    for name in ("funnel_hourly", "campaign_conversion", "sessions"):
        assert normalise(sink.rows(name)) == normalise(expected[name].rows()), name
    assert {r[1].hour for r in sink.rows("funnel_hourly")} == {9}
    [spring_row] = [r for r in sink.rows("campaign_conversion") if r[2] == "spring"]
    assert (spring_row[1].hour, spring_row[4:]) == (9, (1, 1, 1234))


def test_processor_stream_reports_the_batches_committed_before_a_failure(tmp_path):
    """A micro-batch can commit and the next one fail between two looks at the progress
    (seen in CI: the Cassandra outage test one ingest_quality row short). Here the poll is
    longer than the run, so the only look is after the failure: both committed batches are
    still reported, a report that raises (Cassandra down: its row spooled) does not stop
    the next one, and the query's own failure is what is raised."""
    from pyspark.errors import StreamingQueryException

    events = generate(30, seed=3, span_hours=1.0)
    thirds = [events[:10], events[10:20], events[20:]]
    write_record_files(tmp_path / "in", thirds)
    spark = local_session()
    records = spark.readStream.schema(RECORD_SCHEMA).option("maxFilesPerTrigger", 1).json(
        str(tmp_path / "in"))

    def router(batch, batch_id):
        batch.count()  # a micro-batch's input is counted only if its plan runs
        if batch_id == 2:
            raise ConnectionError("Cassandra is down")

    reported = []

    def report(p):
        reported.append((p["batchId"], p["numInputRows"]))
        raise ConnectionError("the quality row cannot be written either")

    query = stream.start_query(records, router, tmp_path / "ckpt", None, WATERMARK)
    try:
        with pytest.raises(StreamingQueryException, match="Cassandra is down"):
            stream.follow_query(query, report, poll_seconds=600)
    finally:
        query.stop()
    assert reported == [(0, len(thirds[0])), (1, len(thirds[1]))]


def test_processor_quality_rows_that_cannot_be_written_are_spooled_then_retried(tmp_path):
    """A quality row belongs to a committed micro-batch (no replay brings it back): when
    Cassandra refuses it, it is kept beside the checkpoint and written at the next start."""
    progress = {"timestamp": "2026-01-01T10:00:05.000Z", "runId": "r1", "batchId": 7,
                "numInputRows": 42, "stateOperators": [
                    {"operatorName": "dedupe", "numRowsDroppedByWatermark": 3,
                     "customMetrics": {"numDroppedDuplicateRows": 2}}]}
    spool = tmp_path / "ckpt.quality-pending"

    def down(row):
        raise ConnectionError("Cassandra is down")

    router = stream.Router(MemorySink())
    with pytest.raises(ConnectionError):
        stream.QualityListener(down, router, spool=spool).on_progress(progress)
    assert spool.exists()

    rows = []
    assert stream.QualityListener(rows.append, router, spool=spool).retry_spooled() == 1
    assert rows == [{"day": dt.date(2026, 1, 1), "run_id": "r1", "batch_id": 7,
                     "finished_at": dt.datetime(2026, 1, 1, 10, 0, 5, tzinfo=dt.UTC),
                     "input_rows": 42, "invalid": 0, "late_dropped": 3,
                     "duplicates_dropped": 2}]
    assert not spool.exists()
    assert stream.QualityListener(rows.append, router, spool=spool).retry_spooled() == 0


def test_processor_stream_plan_aggregates_by_hash_never_by_sort(tmp_path):
    """Pins the plan shape the job's speed rests on: the one stateful groupBy over tagged
    rows is a code-generated HashAggregate. A string buffer (`max` of a string, a
    `collect_set`) would make it an interpreted ObjectHashAggregate or a SortAggregate."""
    spark = local_session()
    write_record_files(tmp_path / "in", [generate(5, seed=3)])
    records = spark.readStream.schema(RECORD_SCHEMA).json(str(tmp_path / "in"))
    q = stream.start_query(records, memory_router(spark, MemorySink()), tmp_path / "ckpt",
                           None, WATERMARK)
    try:
        q.processAllAvailable()
        plan = q._jsq.explainInternal(False)  # what `q.explain()` prints
    finally:
        q.stop()
    assert "StreamingDeduplicate" in plan and "StateStoreSave" in plan, plan
    assert "HashAggregate" in plan, plan
    assert "ObjectHashAggregate" not in plan and "SortAggregate" not in plan, plan


def test_processor_stream_empty_micro_batch_writes_nothing():
    """An empty micro-batch costs one small job, no table write."""
    spark = local_session()
    sink = MemorySink()
    router = stream.Router(sink)
    empty = stream.build_query_frame(
        spark.createDataFrame([], RECORD_SCHEMA), WATERMARK)
    router(empty, 0)
    assert sink.tables == {}
    assert router.invalid_by_batch == {0: 0} and router.batches == 1


def test_processor_stream_hung_or_failed_write_fails_the_micro_batch():
    """A Cassandra write that never returns (the connector waiting on a lost node) fails
    the micro-batch after the write deadline, as a failed write does at once: the job
    exits loudly and resumably instead of hanging."""
    import threading
    import time

    from shared.events import encode

    spark = local_session()
    records = spark.createDataFrame(
        [(encode(e).decode(), 0, i, dt.datetime(2026, 1, 1), "t")
         for i, e in enumerate(generate(3, seed=4))], RECORD_SCHEMA)
    batch = stream.build_query_frame(records, WATERMARK)
    release = threading.Event()
    class Hung(MemorySink):
        def __call__(self, name, df):
            release.wait()

    hung = stream.Router(Hung(), write_timeout=1.0)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError, match="did not finish in 1 s"):
        hung(batch, 0)
    assert time.monotonic() - t0 < 30
    release.set()

    class Down(MemorySink):
        def __call__(self, name, df):
            raise ConnectionError(f"{name}: no host")

    with pytest.raises(ConnectionError, match="no host"):
        stream.Router(Down())(batch, 1)


def test_processor_parse_and_batch_check_keep_every_rule():
    """The stream's parse and the batch job's check render the shared rule list (REQUIRED,
    ALLOWED, and each version's own): an event breaking any one rule -- an unknown
    schema_version among them, or a v2 amount that is not whole cents -- is invalid with a
    reason naming its field, and the unbroken events (v1 and v2) are valid."""
    import json

    from pyspark.sql import functions as F

    from services.processor.batch import invalid_rows_marked
    from shared.events import SPARK_TIMESTAMP_FORMAT, WIRE_FIELDS, format_ts, spark_schema

    def payload(ev: dict) -> str:  # the producer's JSON, with a null wherever a rule wants
        return json.dumps({k: format_ts(v) if k in ("timestamp", "sent_at") and v is not None
                           else v for k, v in ev.items()})

    breaks = ([(name, event(**{name: bad})) for name, bad in rule_breaks()]
              + version_rule_breaks())
    payloads = [payload(event()), payload(event_v2())] + [payload(ev) for _, ev in breaks]
    spark = local_session()
    records = spark.createDataFrame(
        [(p, 0, i, dt.datetime(2026, 1, 1), "t") for i, p in enumerate(payloads)], RECORD_SCHEMA)
    parsed = stream.parse(records).orderBy("offset")
    streamed = [r["reason"] for r in parsed.select("reason").collect()]
    # the batch job checks the columns as read (a CSV day of every version's columns)
    rows = records.orderBy("offset").select(F.from_json(
        "payload", spark_schema(WIRE_FIELDS), {"timestampFormat": SPARK_TIMESTAMP_FORMAT})
        .alias("w")).select("w.*")
    batch = [r["reason"] for r in invalid_rows_marked(rows).collect()]
    for reasons in (streamed, batch):
        assert reasons[:2] == [None, None]
        for (name, _), reason in zip(breaks, reasons[2:], strict=True):
            assert reason is not None and name in reason, (name, reason)


def test_state_summary_tells_each_operators_rows_and_removal_time():
    """The -v line per micro-batch says where a stateful operator's time went (its removals
    are a scan of the whole store below the watermark)."""
    progress = {"stateOperators": [
        {"operatorName": "dedupe", "numRowsTotal": 1_200_000, "numRowsUpdated": 20_000,
         "numRowsRemoved": 19_000, "allUpdatesTimeMs": 310, "allRemovalsTimeMs": 1_840,
         "commitTimeMs": 150},
        {"operatorName": "stateStoreSave", "numRowsTotal": 9_000, "allRemovalsTimeMs": 12},
    ]}
    summary = stream.state_summary(progress)
    dedupe, save = summary.split("; ")
    assert dedupe.startswith("dedupe +20,000 -19,000 of 1,200,000 rows, ")
    assert "removal 1840 ms" in dedupe and "update 310 ms" in dedupe
    assert save.startswith("stateStoreSave +0 -0 of 9,000 rows") and "removal 12 ms" in save
    untracked = {"stateOperators": [{"operatorName": "dedupe", "numRowsTotal": 0}]}
    assert stream.state_summary(untracked).startswith("dedupe +0 -0 rows, ")
    assert stream.state_summary({"stateOperators": []}) == "none"
