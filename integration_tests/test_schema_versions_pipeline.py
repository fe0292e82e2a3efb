"""Schema versions end to end on real Kafka, Cassandra and Spark (issue 15): a stream of v1
and v2 events from `produce --schema-version mix` equals the Polars truth of the same
events; a message of version 3 is a dead letter, never counted; after the fix (here: its
payload corrected in dead_letter, the client having labelled v2 events 3)
`replay-dead-letters` sends it back and the job counts it exactly once -- also when it is
sent twice (a replay that died before marking it). Its own topic and keyspace: the other
tests' streaming jobs read the session's topic."""

from __future__ import annotations

import datetime as dt
import json
import subprocess

import polars as pl
import pytest

from integration_tests.helpers import CLI, REPO, assert_tables_equal_truth, read_table, run_cli
from services.stack.schema import apply_cassandra_schema, apply_kafka_schema
from shared import tables as tb
from shared.events import (
    WIRE_FIELDS,
    Kind,
    decode,
    decode_as_sent,
    encode,
    from_internal,
    polars_schema,
)
from shared.settings import settings_env
from testing.truth import normalise, truth

pytestmark = pytest.mark.integration

N = 4000
SIM = ["--seed", "15", "--start", "2026-01-05T12:00:00Z", "--duplicate-rate", "0.01",
       "--schema-version", "mix"]
WATERMARK = 600


@pytest.fixture(scope="module")
def settings(stack):
    s = stack.settings.model_copy(update={"kafka_topic": "schema_versions",
                                          "cassandra_keyspace": "schema_versions"})
    apply_kafka_schema(s)
    apply_cassandra_schema(s)
    return s


def wire_frame(events: list[dict]) -> pl.DataFrame:
    """Events as sent (any version) -> a Polars frame of every version's columns."""
    schema = polars_schema(WIRE_FIELDS)
    return pl.DataFrame({
        f.name: pl.Series([e.get(f.name) for e in events],
                          dtype=pl.Int64 if f.kind is Kind.TIMESTAMP else schema[f.name])
        for f in WIRE_FIELDS}).with_columns(
        pl.col(f.name).cast(pl.Datetime("ms", "UTC")) for f in WIRE_FIELDS
        if f.kind is Kind.TIMESTAMP)


def send(settings, payloads: list[bytes]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    for v in payloads:
        p.send(settings.kafka_topic, value=v)
    p.flush()
    p.close()


def run_job(settings, checkpoint) -> None:
    env = settings_env(settings)
    env.update(CLICKSTREAM_PROCESSOR_CHECKPOINT_DIR=str(checkpoint),
               CLICKSTREAM_PROCESSOR_WATERMARK_SECONDS=str(WATERMARK),
               CLICKSTREAM_SPARK_MASTER="local[2]", CLICKSTREAM_SPARK_SHUFFLE_PARTITIONS="2")
    r = subprocess.run([*CLI, "process", "--mode", "stream", "--available-now"], env=env,
                       cwd=REPO, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]


def replay(settings, since: str, *extra: str) -> str:
    r = run_cli(settings, "replay-dead-letters", "--reason", "unknown schema_version",
                "--since", since, *extra)
    assert r.returncode == 0, r.stderr
    return r.stdout


def cql(settings, statement: str, params=()) -> None:
    from shared.clients.cassandra import connect

    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        session.execute(statement, params)
    finally:
        cluster.shutdown()


def test_mixed_stream_and_an_unknown_version_replayed_count_exactly_once(settings, tmp_path):
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    r = run_cli(settings, "produce", "--rate", "0", "--count", str(N), *SIM, timeout=300)
    assert r.returncode == 0, r.stderr
    # the same events, as the producer sent them (its density at --rate 0 is 1000/s)
    r = run_cli(settings, "simulate", "--events", str(N), "--events-per-second", "1000",
                "--workers", "1", *SIM)
    assert r.returncode == 0, r.stderr
    sent = [decode_as_sent(line) for line in r.stdout.splitlines()]
    assert {e["schema_version"] for e in sent} == {1, 2} and len(sent) == N
    # a client that labels its v2 events 3, which this build does not read
    fixed = {**decode(encode(sent[-1])), "event_id": "labelled-v3"}
    wrong = {**from_internal(fixed, 2), "schema_version": 3}
    send(settings, [encode(wrong)])

    checkpoint = tmp_path / "ckpt"
    run_job(settings, checkpoint)
    received = normalise(wire_frame(sent))  # Polars, independently of the job
    assert_tables_equal_truth(settings, truth(received), "")
    dead = read_table(settings, "dead_letter")
    assert [(d[5], json.loads(d[6])["event_id"]) for d in dead] == [
        ("unknown schema_version", "labelled-v3")]

    # the fix: the dead letter's payload corrected (the same event in version 2)
    key = dict(zip(tb.DEAD_LETTER.column_names, dead[0], strict=True))
    cql(settings, "UPDATE dead_letter SET payload = %s WHERE day = %s AND received_at = %s "
                  "AND source = %s AND kafka_partition = %s AND kafka_offset = %s",
        (encode(from_internal(fixed, 2)).decode(), key["day"], key["received_at"],
         key["source"], key["kafka_partition"], key["kafka_offset"]))
    assert "would replay 1 dead letters" in replay(settings, since, "--dry-run")
    assert "replayed 1 dead letters" in replay(settings, since)
    assert "replayed 0 dead letters into schema_versions; 1 replayed before" in replay(
        settings, since)
    # a replay that died after sending, before marking: its rerun sends a second copy
    cql(settings, "TRUNCATE dead_letter_replays")
    assert "replayed 1 dead letters" in replay(settings, since)

    run_job(settings, checkpoint)
    # both copies were received (data_quality counts deliveries); the event counts once
    copies = normalise(wire_frame([from_internal(fixed, 2)] * 2))
    assert_tables_equal_truth(settings, truth(pl.concat([received, copies])), "")
    quality = read_table(settings, "ingest_quality")
    assert sum(q[5] for q in quality) == 1  # the one dead letter, never counted
    assert sum(q[6] for q in quality) == 0  # nothing late
    assert len(read_table(settings, "dead_letter")) == 1
