"""The streaming job catching up on a preloaded topic, next to its own input ceiling.

    python -m bench.bench_catchup --events 1000000          # ceiling, job, ceiling, job
    python -m bench.bench_catchup --events 300000 --runs 1  # a quick look

One Spark session (the job's own `build_session`, `local[*]`) and one preloaded topic
(N simulator events with 1% duplicates and 2% late ones, 3 partitions, kept across runs):
- ceiling: a query that reads the topic and parses every record with the shared schema
  (`stream.parse`) into the `noop` sink -- the cost of the job's input alone;
- job: the real streaming job (`stream.start_query` with the Cassandra sink, a fresh
  keyspace per run) with availableNow;
- tiny: the same job fed 10 records per micro-batch on a second topic: the fixed cost of a
  micro-batch (and of an empty one), the floor of end-to-end latency; then again with every
  table written through the Spark connector (`processor_local_rows=0`), the baseline.
Ceiling and job alternate, so both see the same machine; the ratio is per pair.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.settings import Settings, get_settings  # noqa: E402

KEYSPACE = "clickstream_bench_catchup"


def _fill_topic(settings: Settings, n: int) -> str:
    """A topic holding exactly the first n events of the bench's CSV days (created once)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    from bench.bench_processor import _events
    from services.stack.kafka import ensure_topic

    topic = f"bench-catchup-{n}"
    ensure_topic(settings.bootstrap_servers, topic, 3, 1)
    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        end = sum(c.end_offsets([TopicPartition(topic, p) for p in range(3)]).values())
    finally:
        c.close()
    if end == n:
        return topic
    if end:
        raise SystemExit(f"topic {topic} holds {end} records, not {n}: delete it first")
    print(f"  filling {topic} with {n} events ...", flush=True)
    prod = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=50,
                         batch_size=256 * 1024, compression_type="lz4")
    for i, p in enumerate(_events(n)):
        prod.send(topic, p, partition=i % 3)
    prod.flush()
    prod.close()
    return topic


def _fresh_keyspace(settings: Settings) -> None:
    from bench.bench_stream import drop_keyspace
    from services.stack.schema import apply_cassandra_schema

    drop_keyspace(settings)
    apply_cassandra_schema(settings)


_LEFT: list[str] = []  # checkpoints to delete after the session stops (see measure)


@contextlib.contextmanager
def _checkpoint_dir(prefix: str):
    """A checkpoint folder deleted once Spark has stopped: the state store's maintenance
    thread may still list it after its query ended."""
    path = tempfile.mkdtemp(prefix=prefix)
    _LEFT.append(path)
    yield path


def _jvm_cpu() -> float:
    """CPU seconds used so far by this process's Spark JVM (local mode: driver + executors).
    A machine shared with other work stretches wall time; CPU time much less so."""
    import psutil

    jvm = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
    return sum(t.user + t.system for t in (p.cpu_times() for p in jvm))


def ceiling(spark, settings: Settings, n: int, max_offsets: int) -> tuple[float, float]:
    """(events/s, events per JVM CPU-second) of read + parse alone (the job's input cost)."""
    from services.processor import stream

    with _checkpoint_dir("ceiling-") as tmp:
        c0 = _jvm_cpu()
        t0 = time.monotonic()
        q = (stream.parse(stream.read_kafka(spark, settings, max_offsets))
             .writeStream.format("noop").option("checkpointLocation", tmp)
             .trigger(availableNow=True).start())
        q.awaitTermination()
        seconds = time.monotonic() - t0
        cpu = _jvm_cpu() - c0
        rows = sum(p["numInputRows"] for p in q.recentProgress)
    assert rows == n, (rows, n)
    return n / seconds, n / cpu


def job(spark, settings: Settings, n: int, max_offsets: int) -> tuple[float, float, list[dict]]:
    """(events/s, events per JVM CPU-second, micro-batches) of the streaming job, every
    table written."""
    from services.processor import stream

    _fresh_keyspace(settings)
    router = stream.cassandra_router(spark, settings)
    with _checkpoint_dir("catchup-") as tmp:
        c0 = _jvm_cpu()
        t0 = time.monotonic()
        q = stream.start_query(stream.read_kafka(spark, settings, max_offsets), router,
                               Path(tmp) / "ckpt", None, settings.processor_watermark_seconds,
                               available_now=True)
        q.awaitTermination()
        seconds = time.monotonic() - t0
        cpu = _jvm_cpu() - c0
        batches = [{"rows": p["numInputRows"], "ms": p["durationMs"].get("triggerExecution"),
                    "duration_ms": p["durationMs"],
                    "state": [{k: op.get(k) for k in ("operatorName", "numRowsUpdated",
                                                       "numRowsRemoved", "commitTimeMs")}
                              for op in p.get("stateOperators", [])]}
                   for p in q.recentProgress]
    router.sink.close()
    assert sum(b["rows"] for b in batches) == n
    return n / seconds, n / cpu, batches


def _first_records(settings: Settings, n: int) -> list[bytes]:
    """The first n records of the preloaded topic's partition 0 (simulator events)."""
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    try:
        tp = TopicPartition(settings.kafka_topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        out: list[bytes] = []
        while len(out) < n:
            for records in c.poll(timeout_ms=1000).values():
                out.extend(r.value for r in records)
        return out[:n]
    finally:
        c.close()


def tiny(spark, settings: Settings, batches: int = 8, per_batch: int = 10) -> dict:
    """Fixed cost of a micro-batch: the job fed `per_batch` records at a time."""
    import uuid

    from kafka import KafkaProducer

    from services.processor import stream
    from services.stack.kafka import ensure_topic

    topic = f"bench-tiny-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings.bootstrap_servers, topic, 3, 1)
    s = settings.model_copy(update={"kafka_topic": topic})
    _fresh_keyspace(s)
    payloads = _first_records(settings, batches * per_batch)
    router = stream.cassandra_router(spark, s)
    prod = KafkaProducer(bootstrap_servers=s.bootstrap_servers)
    with _checkpoint_dir("tiny-") as tmp:
        q = stream.start_query(stream.read_kafka(spark, s, 1000), router, Path(tmp) / "ckpt",
                               None, s.processor_watermark_seconds)
        try:
            done = 0
            assert len(payloads) == batches * per_batch
            for i in range(batches):
                for p in payloads[i * per_batch:(i + 1) * per_batch]:
                    prod.send(topic, p)
                prod.flush()
                deadline = time.monotonic() + 300
                while done < (i + 1) * per_batch and time.monotonic() < deadline:
                    time.sleep(0.05)
                    done = sum(p["numInputRows"] for p in q.recentProgress)
            time.sleep(3)  # let an empty (no-data) batch run, if Spark schedules one
            progress = q.recentProgress
        finally:
            q.stop()
            prod.close()
            router.sink.close()
    with_rows = [p["durationMs"] for p in progress if p["numInputRows"]]
    full = [d["triggerExecution"] for d in with_rows]
    empty = [p["durationMs"]["triggerExecution"] for p in progress if not p["numInputRows"]]
    # where a tiny batch's time goes, per Spark's own phases (addBatch = the plan + writes)
    phases = {k: statistics.median(d.get(k, 0) for d in with_rows[1:])
              for k in (with_rows[1] if len(with_rows) > 1 else {})}
    # the first batch pays query start-up (plan, state store open): report it apart
    return {"first_ms": full[0] if full else None,
            "tiny_ms_median": statistics.median(full[1:]) if len(full) > 1 else None,
            "tiny_ms": full[1:], "empty_ms": empty, "tiny_phases_ms": phases}


def measure(n: int, runs: int, max_offsets: int, with_tiny: bool = True) -> dict:
    from services.processor import stream
    from services.processor.session import build_session

    base = get_settings()
    topic = _fill_topic(base, n)
    settings = base.model_copy(update={"kafka_topic": topic, "cassandra_keyspace": KEYSPACE,
                                       "processor_starting_offsets": "earliest"})
    spark = build_session(settings, "bench-catchup")
    stream.configure_state(spark)
    pairs = []
    try:
        for i in range(runs):
            c, c_cpu = ceiling(spark, settings, n, max_offsets)
            j, j_cpu, batches = job(spark, settings, n, max_offsets)
            pairs.append({"ceiling": round(c), "job": round(j), "ratio": round(j / c, 3),
                          "ceiling_per_cpu_s": round(c_cpu), "job_per_cpu_s": round(j_cpu),
                          "cpu_ratio": round(j_cpu / c_cpu, 3),
                          "load1": round(os.getloadavg()[0], 1),
                          "batches": batches})
            print(f"  run {i + 1}: ceiling {c:,.0f}/s, job {j:,.0f}/s, ratio {j / c:.2f}; "
                  f"per JVM CPU-second: {c_cpu:,.0f} vs {j_cpu:,.0f}, ratio {j_cpu / c_cpu:.2f}",
                  flush=True)
        # the baseline in the same session: every micro-batch through the Spark connector
        small, connector = ({}, {}) if not with_tiny else (
            tiny(spark, settings),
            tiny(spark, settings.model_copy(update={"processor_local_rows": 0})))
    finally:
        spark.stop()
        for path in _LEFT:
            shutil.rmtree(path, ignore_errors=True)
    return {"events": n, "max_offsets_per_trigger": max_offsets, "pairs": pairs,
            "ceiling_median": statistics.median(p["ceiling"] for p in pairs),
            "job_median": statistics.median(p["job"] for p in pairs),
            "ratio_median": statistics.median(p["ratio"] for p in pairs),
            "cpu_ratio_median": statistics.median(p["cpu_ratio"] for p in pairs),
            "tiny": small, "tiny_connector": connector}


def run(quick: bool = False) -> list[dict]:
    """For `make bench`: 1M events (300k with --quick), two ceiling/job pairs."""
    r = measure(300_000 if quick else 1_000_000, 1 if quick else 2,
                get_settings().processor_max_offsets_per_trigger)
    notes = (f"{r['events']} events, 3 partitions, {r['max_offsets_per_trigger']} offsets "
             f"per trigger; pairs {[(p['ceiling'], p['job']) for p in r['pairs']]}")
    t, tc = r["tiny"], r["tiny_connector"]
    return [
        {"name": "stream_catchup_events_per_s", "value": r["job_median"], "unit": "events/s",
         "runs": [p["job"] for p in r["pairs"]], "baseline": r["ceiling_median"],
         "notes": notes},
        {"name": "stream_catchup_ratio_to_read_parse", "value": r["ratio_median"],
         "unit": "ratio", "target": 0.4, "runs": [p["ratio"] for p in r["pairs"]],
         "notes": "job / read+parse ceiling, measured in pairs in one Spark session"},
        {"name": "stream_catchup_cpu_ratio_to_read_parse", "value": r["cpu_ratio_median"],
         "unit": "ratio", "runs": [p["cpu_ratio"] for p in r["pairs"]],
         "notes": "the same in events per CPU-second of the Spark JVM: robust to a busy machine"
                  " (Kafka's and Cassandra's CPU not counted)"},
        {"name": "stream_tiny_batch_ms", "value": t.get("tiny_ms_median"), "unit": "ms",
         "target": 1500, "runs": t.get("tiny_ms"),
         "notes": f"10 records per micro-batch; first batch {t.get('first_ms')} ms, "
                  f"empty batches {t.get('empty_ms')} ms; median phases "
                  f"{t.get('tiny_phases_ms')}"},
        {"name": "stream_tiny_batch_connector_ms", "value": tc.get("tiny_ms_median"),
         "unit": "ms", "runs": tc.get("tiny_ms"),
         "notes": "the same, every table through the Spark connector (LOCAL_ROWS=0): the "
                  f"baseline of the driver writes; median phases {tc.get('tiny_phases_ms')}"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--max-offsets", type=int, default=None,
                    help="offsets per trigger (default: the job's setting)")
    ap.add_argument("--no-tiny", action="store_true")
    ap.add_argument("--report", type=Path, default=None)
    ap.add_argument("-v", action="store_true", help="the job's per-micro-batch log lines")
    args = ap.parse_args()
    if args.v:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    r = measure(args.events, args.runs,
                args.max_offsets or get_settings().processor_max_offsets_per_trigger,
                not args.no_tiny)
    report = args.report or REPO / "bench" / "results" / f"catchup-{args.events}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(r, indent=2))
    print(json.dumps(r))


if __name__ == "__main__":
    main()
