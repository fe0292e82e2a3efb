"""The streaming job live, as users run it: `clickstream process --mode stream` against the
running local stack (`make up`), fed at a fixed rate, in a keyspace and topic of its own.

    python -m bench.bench_stream --rate 5000 --minutes 5 --trigger 5     # latency at 5k/s
    python -m bench.bench_stream --rate 20000 --minutes 5 --trigger 5    # sustained 20k/s
    python -m bench.bench_stream --rate 2000 --minutes 30 --trigger 5    # driver memory

While a paced producer sends simulator events stamped with the current time, it samples:
- end-to-end latency: for every 100th event, the time from its send to the first poll
  (every 0.2 s) at which its minute's `data_quality.raw_events` row in Cassandra counts
  it (the producer knows each event's rank in its minute); p50/p95 over the run;
- consumer lag: records in the topic minus the offsets of the job's last committed
  micro-batch (read from its checkpoint), every 5 s; "sustained" = lag not growing over
  the second half of the run;
- memory: resident set of the job's driver (the Python CLI and its Spark JVM), every 5 s;
  "flat" = the last third's median within 10% of the middle third's.
Writes a JSON report (bench/results/stream-<rate>-<minutes>m.json unless --report).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from services.stack.process import terminate  # noqa: E402
from shared.settings import Settings, get_settings, settings_env  # noqa: E402

KEYSPACE = "clickstream_bench"
SAMPLE_EVERY = 100
POLL_S = 0.2


def _event_pool(n: int) -> list[dict]:
    """n simulator events (realistic sessions, products, campaigns) to cycle through."""
    from services.simulator.model import SimConfig, Simulator

    out = []
    for e in Simulator(SimConfig(seed=1, events_per_second=500)).events(1767571200000):
        if isinstance(e, dict):
            out.append(e)
            if len(out) == n:
                return out
    return out


class Producer(threading.Thread):
    """Sends `rate` events/s in 10 ms ticks, each event re-stamped to now with a fresh id.
    Keeps (send time, minute, rank in minute) for every SAMPLE_EVERY-th event."""

    def __init__(self, settings: Settings, rate: float, seconds: float):
        super().__init__(daemon=True)
        from kafka import KafkaProducer

        from shared.events import encode

        self.encode = encode
        self.producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers,
                                      linger_ms=5, batch_size=256 * 1024,
                                      compression_type="lz4", acks=1)
        self.topic, self.rate, self.seconds = settings.kafka_topic, rate, seconds
        self.pool = _event_pool(200_000)
        self.samples: list[tuple[float, int, int]] = []
        self.per_minute: dict[int, int] = defaultdict(int)
        self.sent = 0
        self.behind_s = 0.0  # how far the producer fell behind its schedule at the end

    def run(self) -> None:
        t0 = time.monotonic()
        run_id = uuid.uuid4().hex[:8]
        pool, n_pool = self.pool, len(self.pool)
        while (elapsed := time.monotonic() - t0) < self.seconds:
            due = int(elapsed * self.rate) - self.sent
            if due <= 0:
                time.sleep(0.01)
                continue
            now_ms = int(time.time() * 1000)
            minute = now_ms // 60_000
            for _ in range(due):
                base = pool[self.sent % n_pool]
                cycle = self.sent // n_pool  # new sessions each cycle: state grows as in life
                e = dict(base, event_id=f"{run_id}-{self.sent}",
                         session_id=f"{base['session_id']}-{cycle}",
                         timestamp=now_ms, sent_at=now_ms)
                self.producer.send(self.topic, self.encode(e))
                self.per_minute[minute] += 1
                self.sent += 1
                if self.sent % SAMPLE_EVERY == 0:
                    self.samples.append((time.time(), minute, self.per_minute[minute]))
        self.behind_s = max(0.0, (self.seconds * self.rate - self.sent) / self.rate)
        self.producer.flush()
        self.producer.close()


class Poller(threading.Thread):
    """Every POLL_S: the raw_events of the current and previous minute in data_quality."""

    def __init__(self, settings: Settings):
        super().__init__(daemon=True)
        from shared.clients.cassandra import connect

        self.cluster, self.session = connect(settings, KEYSPACE)
        self.stmt = self.session.prepare(
            "SELECT window_start, raw_events FROM data_quality WHERE day = ? AND "
            "window_start >= ?")
        self.seen: dict[int, list[tuple[float, int]]] = defaultdict(list)  # minute -> polls
        self.stop = threading.Event()

    def run(self) -> None:
        import datetime as dt

        while not self.stop.wait(POLL_S):
            now = dt.datetime.now(dt.UTC)
            since = (now - dt.timedelta(minutes=2)).replace(second=0, microsecond=0)
            t = time.time()
            try:
                days = {since.date(), now.date()}
                for day in days:
                    for r in self.session.execute(self.stmt, (day, since)):
                        ws = r.window_start.replace(tzinfo=dt.UTC)
                        self.seen[int(ws.timestamp()) // 60].append((t, r.raw_events))
            except Exception:  # noqa: BLE001 - a missed poll only coarsens the latency
                pass
        self.cluster.shutdown()


def latencies(samples, seen) -> list[float]:
    """Per sampled event: first poll time at which its minute counted its rank, minus its
    send time. Events never seen counted are left out (reported separately)."""
    out = []
    for sent_at, minute, rank in samples:
        for t, count in seen.get(minute, ()):
            if count >= rank and t >= sent_at:
                out.append(t - sent_at)
                break
    return out


def committed_offset(checkpoint: Path) -> int:
    """Sum of the offsets of the last committed micro-batch (its end offsets)."""
    commits = [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")]
    if not commits:
        return 0
    lines = (checkpoint / "offsets" / str(max(commits))).read_text().splitlines()
    offsets = json.loads(lines[-1])
    return sum(sum(parts.values()) for parts in offsets.values())


def topic_end(settings: Settings) -> int:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        parts = [TopicPartition(settings.kafka_topic, p)
                 for p in c.partitions_for_topic(settings.kafka_topic) or ()]
        return sum(c.end_offsets(parts).values())
    finally:
        c.close()


def driver_rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def drop_keyspace(settings: Settings) -> None:
    """Drop the settings' keyspace: a bench run must not re-read an earlier run's rows."""
    from shared.clients.cassandra import connect

    cluster, session = connect(settings)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.cassandra_keyspace}", timeout=120)
    finally:
        cluster.shutdown()


def live(rate: float, minutes: float, trigger: float, partitions: int = 3) -> dict:
    base = get_settings()
    topic = f"bench-stream-{uuid.uuid4().hex[:8]}"
    settings = base.model_copy(update={"kafka_topic": topic, "cassandra_keyspace": KEYSPACE,
                                       "kafka_partitions": partitions})
    env = settings_env(settings)
    cli = [sys.executable, "-m", "services.cli"]
    drop_keyspace(settings)  # a run must not re-read the sessions of earlier runs
    subprocess.run([*cli, "schema"], env=env, cwd=REPO, check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="bench-stream-", ignore_cleanup_errors=True) as tmp:
        checkpoint = Path(tmp) / "ckpt"
        log = open(Path(tmp) / "job.log", "w")
        job = subprocess.Popen([*cli, "-v", "process", "--mode", "stream",
                                "--trigger", str(trigger), "--checkpoint", str(checkpoint)],
                               env=dict(env, CLICKSTREAM_PROCESSOR_STARTING_OFFSETS="latest"),
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        driver = psutil.Process(job.pid)
        try:
            # wait for the first (empty) micro-batch: the job is up and at the end of the topic
            deadline = time.monotonic() + 300
            while not list((checkpoint / "commits").glob("[0-9]*")):
                if job.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the stream job did not start; see {log.name}")
                time.sleep(0.5)
            seconds = minutes * 60
            producer, poller = Producer(settings, rate, seconds), Poller(settings)
            poller.start()
            t0 = time.monotonic()
            producer.start()
            series = []
            while producer.is_alive():
                time.sleep(5)
                end, done = topic_end(settings), committed_offset(checkpoint)
                series.append({"t": round(time.monotonic() - t0, 1), "produced": end,
                               "processed": done, "lag": end - done,
                               "driver_rss_mb": round(driver_rss_mb(driver))})
                print(f"  t={series[-1]['t']:>6}s lag={end - done:>8} "
                      f"rss={series[-1]['driver_rss_mb']} MiB", flush=True)
            producer.join()
            # let the job catch up (bounded) so the last samples get their rows
            catch_up = time.monotonic() + 120
            while committed_offset(checkpoint) < producer.sent and time.monotonic() < catch_up:
                time.sleep(1)
            time.sleep(2 * POLL_S)
            poller.stop.set()
            poller.join()
        finally:
            terminate(driver, "stream job", timeout=60)  # the CLI and its Spark JVM
            job.wait()
            log.close()
            keep = REPO / "bench" / "results" / "stream-job.log"
            keep.parent.mkdir(exist_ok=True)
            keep.write_text((Path(tmp) / "job.log").read_text())
    return summarize(rate, minutes, trigger, producer, poller, series)


def summarize(rate, minutes, trigger, producer, poller, series) -> dict:
    lat = latencies(producer.samples, poller.seen)
    q = statistics.quantiles(lat, n=100) if len(lat) >= 2 else [float("nan")] * 99
    half = [s for s in series if s["t"] >= series[-1]["t"] / 2] if series else []
    lag_growth = (half[-1]["lag"] - half[0]["lag"]) / max(1, half[-1]["t"] - half[0]["t"]) \
        if len(half) >= 2 else None
    processed_rate = ((half[-1]["processed"] - half[0]["processed"])
                      / max(1, half[-1]["t"] - half[0]["t"])) if len(half) >= 2 else None
    rss = [s["driver_rss_mb"] for s in series]
    third = max(1, len(rss) // 3)
    mid, last = rss[third:2 * third] or rss, rss[-third:]
    return {
        "bench": "stream_live", "rate": rate, "minutes": minutes, "trigger_s": trigger,
        "sent": producer.sent, "producer_behind_s": round(producer.behind_s, 1),
        "latency_samples": len(producer.samples), "latency_measured": len(lat),
        "latency_p50_s": round(q[49], 2), "latency_p95_s": round(q[94], 2),
        "processed_per_s_second_half": round(processed_rate) if processed_rate else None,
        "lag_growth_per_s_second_half": round(lag_growth, 1) if lag_growth is not None else None,
        "lag_last": series[-1]["lag"] if series else None,
        "driver_rss_mb_middle_third_median": statistics.median(mid) if rss else None,
        "driver_rss_mb_last_third_median": statistics.median(last) if rss else None,
        "series": series,
    }


def run(quick: bool = False) -> list[dict]:
    """For `make bench`: latency at 5k/s with a 5 s trigger (2 min; 1 min with --quick)."""
    r = live(5000, 1 if quick else 2, 5.0)
    notes = (f"{r['sent']} events at {r['rate']}/s for {r['minutes']} min, trigger "
             f"{r['trigger_s']} s; {r['latency_measured']}/{r['latency_samples']} sampled "
             "events seen in data_quality")
    return [
        {"name": "stream_latency_p50_s", "value": r["latency_p50_s"], "unit": "s",
         "notes": notes},
        {"name": "stream_latency_p95_s", "value": r["latency_p95_s"], "unit": "s",
         "target": 10, "notes": notes},
        {"name": "stream_lag_growth_per_s", "value": r["lag_growth_per_s_second_half"],
         "unit": "events/s", "target": 0, "notes": "second half of the run; <= 0 = keeping up"},
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=5000)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--trigger", type=float, default=5.0)
    ap.add_argument("--report", type=Path, default=None)
    args = ap.parse_args()
    r = live(args.rate, args.minutes, args.trigger)
    report = args.report or REPO / "bench" / "results" / (
        f"stream-{int(args.rate)}-{args.minutes:g}m.json")
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(json.dumps(r, indent=2))
    print(json.dumps({k: v for k, v in r.items() if k != "series"}))


if __name__ == "__main__":
    main()
