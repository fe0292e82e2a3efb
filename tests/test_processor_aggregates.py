"""The Spark aggregate definitions on hand-made events: every table equals the rows written
by hand in test_truth_handmade.py (never computed by the code under test)."""

import pytest
from test_truth_handmade import EVENTS, EXPECTED, normalise

from services.processor import aggregates
from services.processor.batch import batch_tables, distinct_events, invalid_rows_marked
from shared import tables as tb
from testing.spark import local_session, spark_events


def distinct(spark, events):
    """`distinct_events` as the batch job calls it: over rows with their rule check."""
    return distinct_events(invalid_rows_marked(spark_events(spark, events)))


@pytest.fixture(scope="session")
def spark():
    return local_session()


@pytest.fixture(scope="module")
def frames(spark):
    return batch_tables(spark_events(spark, EVENTS))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_processor_aggregate_equals_hand_written_rows(frames, name):
    df = frames[name]
    assert tuple(df.columns) == tb.table(name).column_names
    assert normalise([tuple(r) for r in df.collect()]) == normalise(EXPECTED[name])


def test_processor_aggregates_cover_every_analytics_table():
    names = set(aggregates.FIRST_LEVEL) | set(aggregates.FOLDED) | set(aggregates.SECOND_LEVEL)
    assert names == {t.name for t in (*tb.ANALYTICS, *tb.STREAM_INTERNAL)}


def test_processor_column_types_match_cql(frames):
    spark_of = {"bigint": "bigint", "int": "int", "text": "string", "boolean": "boolean",
                "timestamp": "timestamp", "date": "date"}
    for name, df in frames.items():
        t = tb.table(name)
        assert [(f.name, f.dataType.simpleString()) for f in df.schema.fields] == [
            (c.name, spark_of[c.cql_type]) for c in t.columns], name


def test_processor_distinct_events_counts_copies(spark):
    rows = distinct(spark, EVENTS).select("event_id", "_event", "_deliveries", "_invalid").collect()
    copies = {r.event_id: r._deliveries for r in rows}
    assert len(copies) == 17
    assert copies["e2"] == 2 and copies["e7"] == 2 and copies["e1"] == 1
    assert {r._event for r in rows} == {1} and {r._invalid for r in rows} == {0}


def test_processor_distinct_events_same_rows_over_more_partitions(spark):
    # the batch job splits a large input's shuffle into more partitions (dedup_partitions):
    # every copy of an event_id must still meet its others
    marked = invalid_rows_marked(spark_events(spark, EVENTS))
    rows = lambda df: sorted(map(tuple, df.collect()))  # noqa: E731
    split = distinct_events(marked, 7)
    assert split.rdd.getNumPartitions() == 7
    assert rows(split) == rows(distinct_events(marked))


def test_processor_dedup_partitions_bound_the_bytes_per_partition():
    from services.processor.batch import DEDUP_BYTES_PER_PARTITION as B
    from services.processor.batch import dedup_partitions

    assert dedup_partitions(0, 2) == 2  # never fewer than the session's
    assert dedup_partitions(2 * B, 2) == 2
    assert dedup_partitions(2 * B + 1, 2) == 4  # whole waves of tasks on the cores
    assert dedup_partitions(2 * B + 1, 3) == 3
    assert dedup_partitions(2_500_000_000, 2) == 20  # the 10.2M-event bench input


def test_processor_tag_rows_one_per_contributing_aggregate(spark):
    # e4 (product add_to_cart with campaign): one row for every aggregate
    one = [e for e in EVENTS if e["event_id"] == "e4"]
    events = distinct(spark, one)
    tags = sorted(r.agg for r in aggregates.tag_rows(events).collect())
    assert tags == sorted(a.name for a in aggregates.AGGREGATES)
    assert len(tags) == 9
    # e8 (no product, no campaign): no campaign or product rows
    one = [e for e in EVENTS if e["event_id"] == "e8"]
    tags = {r.agg for r in aggregates.tag_rows(distinct(spark, one))
            .collect()}
    assert tags == {"page_minute", "page_10min", "site_hourly", "device_hourly",
                    "quality_minute", "session_5min"}


def test_processor_batch_validate_counts_rule_breaking_rows(spark):
    from services.processor.batch import invalid_rows_marked, validate

    bad = [dict(EVENTS[0], event_id="z1", page="nowhere"), *EVENTS[1:4]]
    rows, invalid, example = validate(invalid_rows_marked(spark_events(spark, bad)))
    assert (rows, invalid, example) == (4, 1, "z1: unknown page")
    assert validate(invalid_rows_marked(spark_events(spark, EVENTS)))[1:] == (0, None)


def test_processor_check_events_counts_rows_copies_conflicts_and_invalid(spark):
    from services.processor.batch import check_events

    ids = len({e["event_id"] for e in EVENTS})
    assert check_events(distinct(spark, EVENTS)) == (len(EVENTS), 0, ids, 0, None)
    changed = dict(EVENTS[1], page_duration_ms=EVENTS[1]["page_duration_ms"] + 1)
    # the changed copy is one more distinct row, under an event_id already counted
    assert check_events(distinct(spark, [*EVENTS, changed])) == (
        len(EVENTS) + 1, 0, ids + 1, 1, EVENTS[1]["event_id"])
    bad = [dict(EVENTS[0], event_id="z1", page="nowhere"), *EVENTS[1:4]]
    assert check_events(distinct(spark, bad))[:2] == (4, 1)


def test_processor_session_attributes_are_the_greatest_of_its_events(spark):
    """A session's strings are keys of its pieces (`session_5min`), not buffers: a session
    whose events disagree still gets ONE row, with the greatest value of each attribute (as
    `max` would) and metrics over all its events."""
    one = list({e["event_id"]: e for e in EVENTS
                 if e["session_id"] == EVENTS[0]["session_id"]}.values())
    one = one[:3]
    assert len(one) == 3
    mixed = [dict(e, utm_campaign=c, device_type=d) for e, c, d in
             zip(one, ["spring", None, "autumn"], ["tablet", "mobile", "desktop"], strict=True)]
    rows = batch_tables(spark_events(spark, mixed))["sessions"].collect()
    assert len(rows) == 1
    s = rows[0]
    assert s.utm_campaign == max(e["utm_campaign"] for e in mixed if e["utm_campaign"])
    assert s.device_type == max(e["device_type"] for e in mixed)
    assert s.events == 3
