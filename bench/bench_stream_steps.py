"""Where a streaming micro-batch's time goes: the job's own plan, cut after each step.

    python -m bench.bench_stream_steps --events 300000 --rounds 2   # `make up` first

On the catch-up bench's preloaded topic, in one Spark session (the job's `build_session`),
each step runs with availableNow into the `noop` sink, so nothing but the step is paid:
  parse    read + parse (the ceiling of bench_catchup)
  dedup    + mark and deduplicate within the watermark
  reduce   + tag and the one stateful aggregation (update mode)
  job      the whole job, every table written to Cassandra (bench_catchup's `job`)
Rounds repeat the four so that later rounds run on a warm JVM; compare within a round.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from bench import bench_catchup as bc
from shared.settings import get_settings

STEPS = ("parse", "dedup", "reduce", "job")


def _frame(step: str, records, watermark: int):
    from services.processor import stream

    if step == "parse":
        return stream.parse(records), "append"
    if step == "dedup":
        return stream.mark_and_dedup(stream.parse(records), watermark), "append"
    return stream.build_query_frame(records, watermark), "update"


def measure(n: int, rounds: int, max_offsets: int) -> list[dict]:
    from services.processor import stream
    from services.processor.session import build_session

    base = get_settings()
    topic = bc._fill_topic(base, n)
    settings = base.model_copy(update={"kafka_topic": topic, "cassandra_keyspace": bc.KEYSPACE,
                                       "processor_starting_offsets": "earliest"})
    spark = build_session(settings, "bench-stream-steps")
    stream.configure_state(spark)
    out = []
    try:
        for r in range(rounds):
            for step in STEPS:
                if step == "job":
                    per_s, per_cpu_s, _ = bc.job(spark, settings, n, max_offsets)
                    seconds, cpu = n / per_s, n / per_cpu_s
                else:
                    with bc._checkpoint_dir("steps-") as tmp:
                        df, mode = _frame(step, stream.read_kafka(spark, settings, max_offsets),
                                          settings.processor_watermark_seconds)
                        c0, t0 = bc._jvm_cpu(), time.monotonic()
                        q = (df.writeStream.format("noop").outputMode(mode)
                             .option("checkpointLocation", tmp).trigger(availableNow=True)
                             .start())
                        q.awaitTermination()
                        seconds, cpu = time.monotonic() - t0, bc._jvm_cpu() - c0
                row = {"round": r + 1, "step": step, "seconds": round(seconds, 1),
                       "jvm_cpu_s": round(cpu, 1), "events_per_s": round(n / seconds)}
                print(json.dumps(row), flush=True)
                out.append(row)
    finally:
        spark.stop()
        for path in bc._LEFT:
            shutil.rmtree(path, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-offsets", type=int, default=300_000)
    a = ap.parse_args()
    measure(a.events, a.rounds, a.max_offsets)


if __name__ == "__main__":
    main()
