"""The Spark job against real Kafka + Cassandra: the truth test (batch and streaming tables
equal the independent Polars computation, exactly), idempotent re-runs, dead letters, and a
SIGKILL mid-stream resumed from the checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from integration_tests.helpers import (
    CLI,
    REPO,
    assert_tables_equal_truth,
    read_table,
    run_cli,
    settings_env,
)
from shared import tables as tb
from shared.events import FIELDS, Kind, encode
from testing.truth import read_csv_days, truth

pytestmark = pytest.mark.integration

WATERMARK = 3600  # the generated late events are at most minutes late
BAD = [b"{not json", b'{"event_id": "x1"}', b'{"schema_version": "one"}']


# ------------------------------------------------------------------------------ helpers
def to_events(df: pl.DataFrame) -> list[dict]:
    """Polars rows -> event dicts (timestamps as epoch ms), in delivery (sent_at) order."""
    ts = [f.name for f in FIELDS if f.kind is Kind.TIMESTAMP]
    df = df.with_columns(pl.col(n).dt.epoch("ms") for n in ts).sort("sent_at", maintain_order=True)
    return df.to_dicts()


def produce(settings, payloads: list[bytes]) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=20)
    for i, v in enumerate(payloads):
        p.send(settings.kafka_topic, value=v, partition=i % settings.kafka_partitions)
    p.flush()
    p.close()


def stream_env(settings, checkpoint: Path) -> dict:
    env = settings_env(settings)
    env["CLICKSTREAM_PROCESSOR_CHECKPOINT_DIR"] = str(checkpoint)
    env["CLICKSTREAM_PROCESSOR_WATERMARK_SECONDS"] = str(WATERMARK)
    env["CLICKSTREAM_SPARK_MASTER"] = "local[2]"
    env["CLICKSTREAM_SPARK_SHUFFLE_PARTITIONS"] = "2"
    return env


def stream_job_past(args: list[str], env: dict, checkpoint: Path,
                    commits: int) -> subprocess.Popen:
    """Start the streaming CLI in a process group of its own and return it, still running,
    once `commits` micro-batches are committed in `checkpoint`."""
    job = subprocess.Popen(args, env=env, cwd=REPO, start_new_session=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    done = checkpoint / "commits"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and job.poll() is None:
        if done.exists() and len([p for p in done.iterdir() if p.name.isdigit()]) >= commits:
            return job
        time.sleep(0.5)
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGKILL)
    err = job.communicate(timeout=60)[1]
    raise AssertionError(f"fewer than {commits} micro-batches committed: {err[-3000:]}")


# ------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def days(stack, tmp_path_factory):
    """Two seeded CSV days with noise on (late, out-of-order, duplicate events)."""
    out = tmp_path_factory.mktemp("csv")
    r = run_cli(stack.settings, "generate", "--days", "2", "--out", str(out),
                "--events-per-day", "15000", "--seed", "42", "--late-rate", "0.03",
                "--late-median", "30", "--out-of-order-rate", "0.02",
                "--duplicate-rate", "0.01", "--quiet")
    assert r.returncode == 0, r.stderr
    raw = read_csv_days(out)
    lateness = (raw["sent_at"] - raw["timestamp"]).dt.total_seconds().max()
    assert lateness < WATERMARK / 2, lateness
    assert raw.height > raw["event_id"].n_unique()  # duplicates present
    return out, raw, truth(raw)


# ------------------------------------------------------------------------------ batch
def test_processor_batch_tables_equal_polars_truth(stack, days):
    folder, _, expected = days
    r = run_cli(stack.settings, "process", "--mode", "batch", "--input", str(folder),
                "--master", "local[2]", "--shuffle-partitions", "2", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_tables_equal_truth(stack.settings, expected, "_batch")

    # a re-run is an upsert of the same rows: nothing changes
    r = run_cli(stack.settings, "process", "--mode", "batch", "--input", str(folder),
                "--master", "local[2]", "--shuffle-partitions", "2", timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_tables_equal_truth(stack.settings, expected, "_batch")


def test_processor_batch_bad_input_is_one_line_error(stack, tmp_path):
    (tmp_path / "events-2026-01-01.csv").write_text("not,the,header\n1,2,3\n")
    r = run_cli(stack.settings, "process", "--mode", "batch", "--input", str(tmp_path),
                "--master", "local[1]", timeout=300)
    assert r.returncode == 1
    # Spark's own WARN log lines may precede it; our message is the last line
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "CSV" in last, last
    assert "Traceback" not in r.stderr


# ------------------------------------------------------------------------------ stream
def test_processor_stream_sigkill_then_restart_equals_polars_truth(stack, days, tmp_path):
    """Produce the same events (in delivery order) + malformed messages; SIGKILL the job
    mid-run; restart from the checkpoint; the streaming tables equal the truth exactly."""
    _, raw, expected = days
    events = to_events(raw)
    payloads = [encode(e) for e in events]
    cut = len(payloads) // 3
    payloads = payloads[:cut] + BAD + payloads[cut:]
    produce(stack.settings, payloads)

    checkpoint = tmp_path / "ckpt"
    env = stream_env(stack.settings, checkpoint)
    # every micro-batch through the Spark connector (one write job per table); the other
    # stream tests take the default, where a small micro-batch is written from the driver
    env["CLICKSTREAM_PROCESSOR_LOCAL_ROWS"] = "0"
    args = [*CLI, "process", "--mode", "stream", "--trigger", "1", "--max-offsets", "3000"]
    job = stream_job_past(args, env, checkpoint, commits=3)
    os.killpg(job.pid, signal.SIGKILL)  # the CLI and its Spark JVM, mid-batch
    job.wait()

    r = subprocess.run([*args, "--available-now"], env=env, cwd=REPO, capture_output=True,
                       text=True, timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_tables_equal_truth(stack.settings, expected, "")

    dead = read_table(stack.settings, "dead_letter")
    assert sorted(d[6] for d in dead) == sorted(b.decode() for b in BAD)
    assert all(d[2] == f"kafka:{stack.settings.kafka_topic}" and d[5] for d in dead)
    quality = read_table(stack.settings, "ingest_quality")
    assert sum(q[5] for q in quality) == len(BAD)
    assert sum(q[6] for q in quality) == 0  # nothing was later than the watermark


# ------------------------------------------------------------------------------ cluster
def truncate(settings, names) -> None:
    from shared.clients.cassandra import connect

    cluster, session = connect(settings, settings.cassandra_keyspace)
    try:
        for n in names:
            session.execute(f"TRUNCATE {n}")
    finally:
        cluster.shutdown()


def test_processor_batch_on_standalone_cluster_equals_polars_truth(spark_cluster, days):
    """The same job, unchanged, on the local stack's standalone master + worker."""
    folder, _, expected = days
    truncate(spark_cluster, [t.batch().name for t in tb.ANALYTICS])
    r = run_cli(spark_cluster, "process", "--mode", "batch", "--input", str(folder),
                "--master", spark_cluster.spark_standalone_url, "--shuffle-partitions", "2",
                timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_tables_equal_truth(spark_cluster, expected, "_batch")


# ------------------------------------------------------------------------------ outage
def test_processor_stream_cassandra_outage_fails_loudly_then_resumes_exactly(
        private_settings, tmp_path):
    """Policy under a Cassandra outage: the micro-batch that cannot write fails, the job
    exits 1 with one `error:` line naming the checkpoint (it does not hang or drop data);
    restarted once Cassandra is back, it replays the uncommitted offsets and every
    streaming table ends exact. Private servers: stopping the shared Cassandra would break
    the other tests."""
    from services.stack.stack import LocalStack
    from testing.spark import generate, polars_events

    s = private_settings
    stack = LocalStack(s, ["kafka", "cassandra"])
    stack.up()
    try:
        events = generate(300, seed=21, span_hours=2.0)
        half = len(events) // 2
        produce(s, [encode(e) for e in events[:half]])
        checkpoint = tmp_path / "ckpt"
        env = stream_env(s, checkpoint)
        # the connector may wait forever on the Cassandra it lost: the write deadline ends it
        env["CLICKSTREAM_PROCESSOR_WRITE_TIMEOUT_SECONDS"] = "30"
        args = [*CLI, "process", "--mode", "stream", "--trigger", "1", "--max-offsets", "300"]
        job = stream_job_past(args, env, checkpoint, commits=2)
        try:
            stack.servers(["cassandra"])[0].stop()  # Cassandra only; Kafka stays up
            produce(s, [encode(e) for e in events[half:]])  # work that needs Cassandra
            _, err = job.communicate(timeout=900)
        finally:
            if job.poll() is None:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait()
        (tmp_path / "outage.log").write_text(err)
        assert job.returncode == 1, err[-3000:]
        last = err.strip().splitlines()[-1]
        assert last.startswith("error: ") and str(checkpoint) in last, last
        assert "Traceback" not in err

        LocalStack(s, ["cassandra"]).up(schema=False)
        r = subprocess.run([*args, "--available-now"], env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, r.stderr[-3000:]
        assert_tables_equal_truth(s, truth(polars_events(events)), "")
        # one ingest_quality row per committed micro-batch, none lost in the outage
        quality = read_table(s, "ingest_quality")
        assert sum(q[4] for q in quality) == len(events)
    finally:
        stack.down()
