"""End to end, as a user runs it: `clickstream produce` -> Kafka -> `clickstream process`
-> Cassandra -> the dashboard's data layer, equal to an independent Polars computation over
the same raw events. The batch path likewise: `clickstream generate` -> CSV -> batch job.

Each test gets its own topic and keyspace, so nothing else in the session can touch its rows.
"""

from __future__ import annotations

import datetime as dt
import math
import uuid

import pandas as pd
import polars as pl
import pytest
from kafka import KafkaConsumer

from dashboards.reader import Reader, view_columns
from integration_tests.helpers import run_cli
from services.stack.schema import apply_cassandra_schema, apply_kafka_schema
from shared import tables as tb
from shared.clients.cassandra import connect
from shared.events import InvalidEvent, decode, polars_schema
from testing.truth import read_csv_days, truth

START = "2026-01-05T18:00:00Z"  # an evening: busy enough, far from UTC midnight
RANGE = (dt.datetime(2026, 1, 4, tzinfo=dt.UTC), dt.datetime(2026, 1, 8, tzinfo=dt.UTC))
SPARK = ["--master", "local[2]", "--shuffle-partitions", "2"]


@pytest.fixture
def private(stack):
    """The shared servers, with a topic and keyspace of this test's own."""
    tag = uuid.uuid4().hex[:8]
    s = stack.settings.model_copy(update={"kafka_topic": f"e2e-{tag}",
                                          "cassandra_keyspace": f"e2e_{tag}"})
    apply_kafka_schema(s)
    apply_cassandra_schema(s)
    yield s
    cluster, session = connect(s)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {s.cassandra_keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def _consume_everything(settings) -> list[bytes]:
    consumer = KafkaConsumer(settings.kafka_topic, bootstrap_servers=settings.bootstrap_servers,
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=10_000)
    try:
        return [r.value for r in consumer]
    finally:
        consumer.close()


def _norm(v):
    """One comparable Python value for Polars, pandas and driver values."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp):
        v = v.to_pydatetime()
    if isinstance(v, dt.datetime):
        return (v if v.tzinfo else v.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(v, dt.date):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return v


def _rows(frame, columns) -> list[tuple]:
    if isinstance(frame, pl.DataFrame):
        records = frame.select(columns).rows()
    else:
        records = list(frame[list(columns)].itertuples(index=False, name=None))
    return sorted((tuple(_norm(v) for v in r) for r in records), key=repr)


def _assert_dashboard_reads_equal_truth(settings, expected: dict, suffix: str) -> int:
    reader = Reader(connect=lambda: connect(settings), keyspace=settings.cassandra_keyspace)
    compared = 0
    try:
        for spec in tb.ANALYTICS:
            table = tb.table(spec.name + suffix)
            got, _ = reader.read(table, *RANGE, now=RANGE[1])
            want = expected[spec.name]
            cols = view_columns(table)
            assert _rows(got, cols) == _rows(want, cols), f"{table.name} differs from the truth"
            compared += len(want)
    finally:
        reader.close()
    return compared


def test_e2e_stream_producer_to_dashboard_equals_polars_truth(private, tmp_path):
    s = private
    produced = run_cli(s, "produce", "--count", "12000", "--rate", "0", "--seed", "11",
                       "--start", START, "--late-rate", "0.02", "--late-median", "20",
                       "--duplicate-rate", "0.01", "--malformed-rate", "0.002", timeout=600)
    assert produced.returncode == 0, produced.stderr[-2000:]

    # the truth: everything the topic holds, parsed independently of the Spark job
    valid, malformed = [], 0
    for payload in _consume_everything(s):
        try:
            valid.append(decode(payload))
        except InvalidEvent:
            malformed += 1
    assert malformed > 0 and len(valid) + malformed == 12000  # --count counts every message
    raw = pl.DataFrame(valid, schema={**polars_schema(), "timestamp": pl.Int64,
                                      "sent_at": pl.Int64}, orient="row")
    raw = raw.with_columns(pl.col("timestamp", "sent_at").cast(pl.Datetime("ms", "UTC")))
    expected = truth(raw)

    job = run_cli(s, "process", "--mode", "stream", "--available-now", "--trigger", "1",
                  "--checkpoint", str(tmp_path / "ckpt"), *SPARK, timeout=1500)
    assert job.returncode == 0, job.stderr[-3000:]

    assert _assert_dashboard_reads_equal_truth(s, expected, "") > 0
    cluster, session = connect(s, keyspace=s.cassandra_keyspace)
    try:
        dead = list(session.execute("SELECT reason FROM dead_letter"))
    finally:
        cluster.shutdown()
    assert len(dead) == malformed and all(r.reason for r in dead)


def test_e2e_batch_generate_to_dashboard_equals_polars_truth(private, tmp_path):
    s = private
    out = tmp_path / "csv"
    gen = run_cli(s, "generate", "--days", "2", "--events-per-day", "8000", "--seed", "3",
                  "--out", str(out), "--duplicate-rate", "0.01", "--quiet", timeout=600)
    assert gen.returncode == 0, gen.stderr[-2000:]
    job = run_cli(s, "process", "--mode", "batch", "--input", str(out), *SPARK, timeout=1500)
    assert job.returncode == 0, job.stderr[-3000:]
    assert _assert_dashboard_reads_equal_truth(s, truth(read_csv_days(out)), "_batch") > 0
