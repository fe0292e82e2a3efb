"""A small micro-batch's rows projected in Python (`local_rows`, written from the driver)
are exactly the Spark projection's (`aggregates.table_rows`, written by the connector), for
every table; and a stream written only that way equals the Polars truth."""

import datetime as dt

import pytest
from test_processor_stream import BAD, WATERMARK, run_files
from test_truth_handmade import normalise

from services.processor import aggregates as ag
from services.processor import local_rows, stream
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


def mixed_attributes() -> list[dict]:
    """One session whose events disagree on its attributes, in two 5-minute pieces: the
    sessions row takes the greatest value of each (README, "The Spark job and the tables")."""
    base = dict(session_id="s-mixed", page="homepage", action="view")
    return [make_event("m1", "2026-03-01T23:00:00", **base, utm_campaign="b", utm_source="x"),
            make_event("m2", "2026-03-01T23:07:00", **base, utm_campaign="a", utm_source=None,
                       device_type="tablet", user_id="u9")]


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local-rows")
    events = generate(80, seed=11, span_hours=3.0) + mixed_attributes()
    write_record_files(folder, [events + BAD])
    spark = local_session()
    frame = stream.build_query_frame(spark.read.schema(RECORD_SCHEMA).json(str(folder)),
                                     WATERMARK).persist()
    yield frame
    frame.unpersist()


@pytest.mark.parametrize("name", [*ag.FIRST_LEVEL, *ag.FOLDED, tb.DEAD_LETTER.name])
def test_local_rows_equal_the_spark_projection(reduced, name):
    spark_sink, local_sink = MemorySink(), MemorySink()
    collected = local_rows.collect_reduced(reduced)
    if name in ag.FOLDED:  # the fold of the pieces: `fold_sessions` and its Python twin
        source = ag.FOLDED[name]
        spark_sink(name, ag.fold_sessions(ag.table_rows(reduced, source)))
        local_sink.write_rows(name, local_rows.fold_sessions(
            local_rows.table_rows(collected, source)))
    elif name == tb.DEAD_LETTER.name:
        spark_sink(name, stream.dead_letter_rows(reduced))
        local_sink.write_rows(name, local_rows.dead_letter_rows(collected))
    else:
        spark_sink(name, ag.table_rows(reduced, name))
        local_sink.write_rows(name, local_rows.table_rows(collected, name))
    expected = normalise(spark_sink.rows(name))
    assert expected, f"{name}: no rows to compare"
    assert normalise(local_sink.rows(name)) == expected


def test_local_rows_sessions_take_each_attributes_greatest_value(reduced):
    pieces = local_rows.table_rows(local_rows.collect_reduced(reduced), "session_partials")
    assert len([r for r in pieces if r["session_id"] == "s-mixed"]) == 2
    rows = local_rows.fold_sessions(pieces)
    mixed = [r for r in rows if r["session_id"] == "s-mixed"]
    assert len(mixed) == 1 and mixed[0]["events"] == 2
    assert {k: mixed[0][k] for k in ("user_id", "utm_campaign", "utm_source", "device_type")} == {
        "user_id": "u9", "utm_campaign": "b", "utm_source": "x", "device_type": "tablet"}


def test_local_rows_session_cells_and_their_change_equal_spark(reduced):
    """The second level's cells of sessions rows, and their change from old rows to new
    ones (`second_level.change`, the driver's) are `aggregates.session_cells`' (Spark's,
    weighed +1/-1). The old rows are the sessions folded from their earlier pieces only."""
    from pyspark.sql import functions as F

    from services.processor import second_level

    pieces = ag.table_rows(reduced, "session_partials")
    cut = sorted(r["window_start"] for r in pieces.collect())[pieces.count() // 2]
    new, old = ag.fold_sessions(pieces), ag.fold_sessions(pieces.where(F.col("window_start") < cut))
    py_pieces = local_rows.table_rows(local_rows.collect_reduced(reduced), "session_partials")
    py_new = local_rows.fold_sessions(py_pieces)
    py_old = local_rows.fold_sessions([r for r in py_pieces if r["window_start"] <
                                       cut.astimezone(dt.UTC)])
    cells = second_level.collect_cells(ag.session_cells(new))
    assert len(cells) > 5 and second_level.change([], py_new) == cells
    signed = new.withColumn("_s", F.lit(1)).unionByName(old.withColumn("_s", F.lit(-1)))
    delta = second_level.collect_cells(ag.session_cells(signed, F.col("_s")))
    assert any(any(v) for v in delta.values()) and any(not any(v) for v in delta.values())
    assert second_level.change(py_old, py_new) == delta


class CountingSink(MemorySink):
    def __init__(self):
        super().__init__()
        self.frames, self.lists = [], []

    def __call__(self, name, df):
        self.frames.append(name)
        super().__call__(name, df)

    def write_rows(self, name, rows):
        self.lists.append(name)
        super().write_rows(name, rows)


def test_local_rows_stream_written_from_the_driver_equals_polars_truth(tmp_path):
    events = generate(120, seed=5, span_hours=3.0, late_ms=120_000)
    n = len(events)
    batches = [events[i * n // 4:(i + 1) * n // 4] for i in range(4)]
    batches[2] = batches[2] + BAD
    write_record_files(tmp_path / "in", batches)
    sink = CountingSink()
    router, _ = run_files(tmp_path / "in", tmp_path / "ckpt", sink, local_rows=10**9)
    # every table went through the driver's rows: the first level, the sessions folded from
    # their pieces, the second level's changed rows and the dead letters
    assert set(sink.lists) == {*ag.FIRST_LEVEL, *ag.FOLDED, *ag.SECOND_LEVEL,
                               tb.DEAD_LETTER.name}
    assert sink.frames == []
    expected = truth(polars_events(events))
    for t in tb.ANALYTICS:
        assert normalise(sink.rows(t.name)) == normalise(expected[t.name].rows()), t.name
    assert router.dead_letters == len(BAD)


def test_local_rows_failed_write_fails_the_micro_batch(reduced):
    """A CQL write that fails (Cassandra gone) fails the micro-batch, as a connector write
    does: the job exits loudly and the replay at restart writes the rows."""

    class Down(MemorySink):
        def write_rows(self, name, rows):
            raise ConnectionError(f"{name}: no host")

    with pytest.raises(ConnectionError, match="no host"):
        stream.Router(Down(), local_rows=10**9)(reduced, 0)


def test_a_bounded_collect_scans_every_partition_in_one_spark_job():
    """The live path's `limit(n).collect()` (`collect_reduced`) is one job over all the
    partitions (`session.SQL_CONF`): by default Spark scans partition 0 first and the rest
    in a second job, one after the other. Here partitions 0-2 are empty, so a scan of
    fewer than all of them cannot find the rows (no shuffle: nothing coalesces them)."""
    spark = local_session()
    sc = spark.sparkContext
    group = "test-bounded-collect"
    frame = spark.range(0, 400, 1, numPartitions=4).filter("id >= 300")
    sc.setJobGroup(group, "a bounded collect")
    try:
        rows = frame.limit(50).collect()
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
    assert len(rows) == 50
    assert len(sc.statusTracker().getJobIdsForGroup(group)) == 1
