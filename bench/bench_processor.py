"""Benchmarks of the Spark job (services/processor). Writes a JSON report.

    python bench/bench_processor.py batch --events 10000000            # all tables, Cassandra
    python bench/bench_processor.py batch --events 1000000 --sink noop # compute only
    python bench/bench_processor.py stream --events 3000000            # Kafka -> all tables
    python bench/bench_processor.py stream --events 1000000 --sink noop --source files

`batch`: CSV days from `clickstream generate` (cached under <data_dir>/bench/csv-<N>) ->
the batch runner; reports events/s (target: 10M events, every table, <= 180 s).
`stream`: N events produced to the topic (or written as Kafka-shaped JSON files) -> the
streaming query with availableNow; reports sustained events/s over the run and per
micro-batch (target >= 20k events/s). Kafka/Cassandra come from the settings (the running
local stack); with `--sink noop` nothing is written to Cassandra.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.settings import get_settings  # noqa: E402

EVENTS_PER_DAY = 1_000_000


def csv_days(settings, events: int) -> Path:
    out = settings.data_dir / "bench" / f"csv-{events}"
    if not (out / ".done").exists():
        days = max(1, events // EVENTS_PER_DAY)
        subprocess.run([sys.executable, "-m", "services.cli", "generate", "--days", str(days),
                        "--out", str(out), "--events-per-day", str(events // days),
                        "--seed", "1", "--duplicate-rate", "0.01", "--late-rate", "0.02",
                        "--late-median", "30", "--quiet"], check=True, cwd=REPO)
        (out / ".done").write_text("ok")
    return out


def bench_batch(args) -> dict:
    from services.processor import batch

    settings = get_settings()
    folder = csv_days(settings, args.events)
    if args.sink == "noop":
        batch.write_table = lambda df, ks, name: df.write.format("noop").mode("overwrite").save()
    r = batch.run_batch(settings, folder, master=args.master)
    return {"bench": "batch", "events": r.input_rows, "seconds": round(r.seconds, 1),
            "events_per_second": round(r.events_per_second), "tables": len(r.rows_written),
            "rows_written": sum(r.rows_written.values()), "sink": args.sink,
            "target": "10M events in <= 180 s"}


def _events(n: int):
    """n encoded events from the simulator's CSV days, in delivery order."""
    import polars as pl

    from shared.aggregates_truth import read_csv_days
    from shared.events import FIELDS, Kind, encode

    settings = get_settings()
    df = read_csv_days(csv_days(settings, n)).head(n)
    ts = [f.name for f in FIELDS if f.kind is Kind.TIMESTAMP]
    df = df.with_columns(pl.col(c).dt.epoch("ms") for c in ts).sort("sent_at")
    return [encode(e) for e in df.iter_rows(named=True)]


def bench_stream(args) -> dict:
    from services.processor import stream
    from services.processor.session import build_session

    settings = get_settings().model_copy(update={"processor_second_level_seconds": 60.0})
    payloads = _events(args.events)
    spark = build_session(settings, "bench-stream", args.master)
    stream.configure_state(spark)
    ckpt = settings.data_dir / "bench" / f"ckpt-{int(time.time())}"
    if args.source == "files":
        from services.processor.testing import RECORD_SCHEMA, write_record_files

        folder = settings.data_dir / "bench" / f"records-{args.events}"
        if not folder.exists():
            per = args.max_offsets
            write_record_files(folder, [[p.decode() for p in payloads[i:i + per]]
                                        for i in range(0, len(payloads), per)])
        records = spark.readStream.schema(RECORD_SCHEMA).option("maxFilesPerTrigger", 1)\
            .json(str(folder))
    else:
        from kafka import KafkaProducer

        settings = settings.model_copy(update={"kafka_topic": f"bench-{int(time.time())}"})
        prod = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, linger_ms=50,
                             batch_size=256 * 1024, compression_type="lz4")
        for i, p in enumerate(payloads):
            prod.send(settings.kafka_topic, p, partition=i % settings.kafka_partitions)
        prod.flush()
        records = stream.read_kafka(spark, settings, args.max_offsets)
    if args.sink == "noop":
        def sink(name, df):
            df.write.format("noop").mode("overwrite").save()
        router = stream.Router(sink)
    else:
        ks = settings.cassandra_keyspace
        router = stream.Router(stream.cassandra_sink(ks), second_level_seconds=60,
                               read_sessions=stream.cassandra_sessions_reader(spark, ks))
    t0 = time.monotonic()
    q = stream.start_query(records, router, ckpt, None, settings.processor_watermark_seconds,
                           available_now=True)
    q.awaitTermination()
    seconds = time.monotonic() - t0
    batches = [{"rows": p["numInputRows"], "ms": p["durationMs"].get("triggerExecution"),
                "rows_per_s": round(p.get("processedRowsPerSecond", 0))}
               for p in q.recentProgress]
    spark.stop()
    return {"bench": "stream", "events": len(payloads), "seconds": round(seconds, 1),
            "events_per_second": round(len(payloads) / seconds), "source": args.source,
            "sink": args.sink, "max_offsets_per_trigger": args.max_offsets,
            "micro_batches": batches, "target": ">= 20k events/s",
            "driver_python_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}


def run(quick: bool = False) -> list[dict]:
    """For `make bench`: the batch job over 1M events (200k with --quick) into Cassandra,
    one run (a 10M run takes minutes here; use the CLI above for it)."""
    events = 200_000 if quick else 1_000_000
    args = argparse.Namespace(events=events, master=get_settings().spark_master,
                              sink="cassandra")
    r = bench_batch(args)
    return [{
        "name": "processor_batch_events_per_s", "value": r["events_per_second"],
        "unit": "events/s", "runs": [r["events_per_second"]],
        "target": round(10_000_000 / 180),
        "notes": f"{r['events']} events, {r['tables']} tables, {r['rows_written']} rows in "
                 f"{r['seconds']} s, one run; target = 10M events in <= 180 s",
    }]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["batch", "stream"])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--master", default=get_settings().spark_master)
    ap.add_argument("--sink", choices=["cassandra", "noop"], default="cassandra")
    ap.add_argument("--source", choices=["kafka", "files"], default="kafka")
    ap.add_argument("--max-offsets", type=int, default=300_000)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    result = bench_batch(args) if args.what == "batch" else bench_stream(args)
    report = args.report or get_settings().data_dir / "bench" / f"processor-{args.what}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "micro_batches"}, default=str))


if __name__ == "__main__":
    main()
