"""Benchmark of the Spark batch job (services/processor/batch.py). Writes a JSON report.

    python bench/bench_processor.py batch --events 10000000            # all tables, Cassandra
    python bench/bench_processor.py batch --events 1000000 --runs 3    # three pairs
    python bench/bench_processor.py batch --events 1000000 --sink noop # compute only

CSV days from `clickstream generate` (cached under <data_dir>/bench/csv-<N>, 1% duplicates,
2% late) -> first the read+parse ceiling (the same files read with the shared schema,
FAILFAST, every column parsed, counted), then the batch runner, in one Spark session;
reports events/s and the ratio ceiling/job (targets: 10M events in <= 150 s, >= 0.5).
Cassandra comes from the settings (the running local stack). The streaming job's catch-up
benchmark is bench/bench_catchup.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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


def batch_ceiling(spark, files) -> tuple[float, float]:
    """(seconds, JVM CPU-seconds) to read the CSV days and parse every column with the
    shared schema (FAILFAST), counted: the batch job's own input cost."""
    from pyspark.sql import functions as F

    from bench.bench_catchup import _jvm_cpu
    from services.processor.batch import read_csv_days
    from shared.events import FIELD_NAMES

    c0, t0 = _jvm_cpu(), time.monotonic()
    read_csv_days(spark, files).select(F.hash(*FIELD_NAMES).alias("h")).agg(F.sum("h")).collect()
    return time.monotonic() - t0, _jvm_cpu() - c0


def bench_batch(args) -> dict:
    """The batch job into every `_batch` table, after its read+parse ceiling on the same
    files in the same Spark session (`--runs` pairs)."""
    from bench.bench_catchup import _jvm_cpu
    from services.processor import batch
    from services.processor.session import BATCH_DRIVER_MEMORY, build_session

    settings = get_settings()
    folder = csv_days(settings, args.events)
    if args.sink == "noop":
        batch.write_table = lambda df, ks, name: df.write.format("noop").mode("overwrite").save()
    spark = build_session(settings, "bench-batch", args.master, BATCH_DRIVER_MEMORY)
    pairs = []
    try:
        for _ in range(args.runs):
            c_s, c_cpu = batch_ceiling(spark, batch.resolve_inputs(folder))
            c0 = _jvm_cpu()
            r = batch.run_batch(settings, folder, spark=spark)
            j_cpu = _jvm_cpu() - c0
            pairs.append({"ceiling_s": round(c_s, 1), "job_s": round(r.seconds, 1),
                          "ratio": round(c_s / r.seconds, 3),
                          "cpu_ratio": round(c_cpu / j_cpu, 3),
                          "load1": round(os.getloadavg()[0], 1)})
            print(f"  ceiling {c_s:.1f}s, job {r.seconds:.1f}s, ratio {c_s / r.seconds:.2f}; "
                  f"JVM CPU {c_cpu:.1f}s vs {j_cpu:.1f}s, ratio {c_cpu / j_cpu:.2f}", flush=True)
    finally:
        spark.stop()
    seconds = statistics.median(p["job_s"] for p in pairs)
    return {"bench": "batch", "events": r.input_rows, "seconds": seconds,
            "events_per_second": round(r.input_rows / seconds), "tables": len(r.rows_written),
            "rows_written": sum(r.rows_written.values()), "sink": args.sink, "pairs": pairs,
            "ratio_median": statistics.median(p["ratio"] for p in pairs),
            "cpu_ratio_median": statistics.median(p["cpu_ratio"] for p in pairs),
            "target": "10M events in <= 150 s; >= 0.5 of the read+parse ceiling"}


def _events(n: int):
    """n encoded events from the simulator's CSV days, in delivery order."""
    import polars as pl

    from shared.events import FIELDS, Kind, encode
    from testing.truth import read_csv_days

    settings = get_settings()
    df = read_csv_days(csv_days(settings, n)).head(n)
    ts = [f.name for f in FIELDS if f.kind is Kind.TIMESTAMP]
    df = df.with_columns(pl.col(c).dt.epoch("ms") for c in ts).sort("sent_at")
    return [encode(e) for e in df.iter_rows(named=True)]


def run(quick: bool = False) -> list[dict]:
    """For `make bench`: the batch job over 1M events (200k with --quick) into Cassandra,
    one run (a 10M run takes minutes here; use the CLI above for it)."""
    events = 200_000 if quick else 1_000_000
    args = argparse.Namespace(events=events, master=get_settings().spark_master,
                              sink="cassandra", runs=1 if quick else 2)
    r = bench_batch(args)
    notes = (f"{r['events']} events, {r['tables']} tables, {r['rows_written']} rows; "
             f"pairs (ceiling s, job s): {[(p['ceiling_s'], p['job_s']) for p in r['pairs']]}")
    return [
        {"name": "processor_batch_events_per_s", "value": r["events_per_second"],
         "unit": "events/s", "runs": [round(r["events"] / p["job_s"]) for p in r["pairs"]],
         "target": round(10_000_000 / 150), "notes": notes + "; target = 10M events in 150 s"},
        {"name": "processor_batch_ratio_to_read_parse", "value": r["ratio_median"],
         "unit": "ratio", "runs": [p["ratio"] for p in r["pairs"]], "target": 0.5,
         "notes": "read+parse ceiling time / job time, measured in pairs in one session"},
        {"name": "processor_batch_cpu_ratio_to_read_parse", "value": r["cpu_ratio_median"],
         "unit": "ratio", "runs": [p["cpu_ratio"] for p in r["pairs"]],
         "notes": "the same in Spark JVM CPU-seconds: robust to a busy machine"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["batch"])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--master", default=get_settings().spark_master)
    ap.add_argument("--sink", choices=["cassandra", "noop"], default="cassandra")
    ap.add_argument("--runs", type=int, default=1, help="ceiling/job pairs")
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    result = bench_batch(args)
    report = args.report or get_settings().data_dir / "bench" / f"processor-{args.what}.json"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "micro_batches"}, default=str))


if __name__ == "__main__":
    main()
