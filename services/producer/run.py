"""`clickstream produce`: simulated events into Kafka at a rate, with counts.

Pacing: event time runs `speed` times faster than wall time, and the model's traffic
density is `rate / speed` events per simulated second, so that on average `rate` events
leave per wall second (following the daily curve). `--rate 0` sends as fast as possible.
The stream starts cold -- no session is in progress at `--start` -- so the rate ramps up
over the first simulated minutes, as sessions accumulate.

Events travel in `chunks.Chunk`s: the feeder process (by default) simulates and encodes
them with the simulator's lines path and splits each chunk by the partition of its keys;
this process paces the chunks and hands them to the sink, which sends each partition's
run of records as whole batches (`record_batches`). `batches()` is the row path the
chunks are checked against.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from services.producer.chunks import chunks
from services.producer.feeders import Feeders, usable
from services.producer.kafka_sink import Counts, KafkaSink
from services.producer.senders import ShardedSink
from services.simulator.malformed import event_row
from services.simulator.model import SimConfig, Simulator
from services.simulator.rows import SENT, SESSION_ID
from services.simulator.versions import DEFAULT_MODE, VersionedEncoder
from shared import signals
from shared.errors import ClickstreamError
from shared.settings import Settings

BATCH = 4_000  # events per chunk when unthrottled (a batch or two per partition)
UNTHROTTLED_DENSITY = 1_000.0  # simulated events/s when --rate 0
# 2026-12-03, 2 cores, whole batches: 1 sender 59.4k events/s at 17.2 CPU-us per event, 2
# senders 58.4k at 19.6 (README): sending is no longer the bottleneck, the feeder is
DEFAULT_SENDERS = 1
# 2026-12-04 00:04-00:16 (bench_produce, load 1.5-4.1): --rate 0 with 2 feeders 68.6k
# events/s at 32.5 CPU-us per event, with 1 48.5k at 27.2 (README); a paced run needs one
DEFAULT_FEEDERS = 2  # with --rate 0; 1 with a rate


def default_feeders(rate: float) -> int:
    return DEFAULT_FEEDERS if rate <= 0 else 1


@dataclass
class ProduceResult:
    sent: int
    acked: int
    failed: int
    seconds: float
    stopped_by: str  # "count" | "duration" | "signal" | "error"
    last_error: str | None = None

    @property
    def rate(self) -> float:
        return self.acked / self.seconds if self.seconds else 0.0


def density(rate: float, speed: float) -> float:
    return rate / speed if rate > 0 else UNTHROTTLED_DENSITY


# ---------------------------------------------------------------- event batches
def batches(config: SimConfig, start_ms: int, limit: int | None,
            schema_version: str = DEFAULT_MODE) -> Iterator[tuple[list, list]]:
    """([sent_at, ...], [(key, value), ...]) in delivery order, BATCH events at a time,
    each event in the version `schema_version` picks (1, 2 or mix)."""
    if limit == 0:
        return
    encode = VersionedEncoder(schema_version)
    out: list[tuple[bytes, bytes]] = []
    times: list[int] = []
    n = 0
    for row in Simulator(config).rows(start_ms):
        # keyed by session, so a session's events (and its malformed payloads) share a
        # partition and keep their order
        out.append((event_row(row)[SESSION_ID].encode(), encode(row)))
        times.append(row[SENT])
        n += 1
        if len(out) >= BATCH or n == limit:
            yield times, out
            out, times = [], []
            if n == limit:
                return


def _feeder_main(config: SimConfig, start_ms: int, limit: int | None, q, parent: int,
                 schema_version: str = DEFAULT_MODE, size: int = BATCH,
                 partitions: list[int] | None = None) -> None:
    for s in (signal.SIGINT, signal.SIGHUP):  # the parent decides when to stop...
        signal.signal(s, signal.SIG_IGN)
    # ...unless it is gone: then nothing reads the queue and put() would block for ever
    signals.die_with_parent(signal.SIGKILL, parent, respect_nohup=False)
    try:
        for item in chunks(config, start_ms, limit, size, partitions, schema_version):
            q.put(item)
    except BaseException as e:
        q.put(f"{type(e).__name__}: {e}")  # the end, as an error: never a short run
        raise
    q.put(None)


class Feeder:
    """`chunks()` in a separate process, through a bounded queue (back-pressure)."""

    def __init__(self, config: SimConfig, start_ms: int, limit: int | None,
                 schema_version: str = DEFAULT_MODE, size: int = BATCH,
                 partitions: list[int] | None = None):
        ctx = mp.get_context("spawn")
        self.queue = ctx.Queue(maxsize=8)
        self.process = ctx.Process(
            target=_feeder_main,
            args=(config, start_ms, limit, self.queue, os.getpid(), schema_version, size,
                  partitions),
            daemon=True
        )
        self.process.start()

    def __iter__(self):
        get = self.queue.get
        while True:
            try:
                item = get(timeout=1.0)
            except queue_mod.Empty:
                # a feeder that died without its end marker must not hang the producer
                if not self.process.is_alive():
                    raise ClickstreamError(
                        f"the event feeder process died (exit code {self.process.exitcode})"
                    ) from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise ClickstreamError(f"the event feeder process failed: {item}")
            yield item

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(timeout=5)
        self.queue.cancel_join_thread()


# ---------------------------------------------------------------- the run
def run_produce(
    settings: Settings,
    config: SimConfig,
    start_ms: int,
    rate: float = 1000.0,
    speed: float = 1.0,
    duration: float | None = None,
    count: int | None = None,
    report_every: float = 5.0,
    feeder: bool = True,
    report=None,
    sink: KafkaSink | None = None,
    senders: int = 1,
    schema_version: str = DEFAULT_MODE,
    feeders: int | None = None,
) -> ProduceResult:
    """Produce until `count` events, `duration` seconds, or SIGINT/SIGTERM/SIGHUP; then
    flush.

    With `senders` > 1, that many processes send, each owning a set of partitions
    (`senders.ShardedSink`). With `feeders` > 1 (None: `default_feeders(rate)`), that
    many processes simulate (every feeders-th minute each, `feeders.Feeders`): each
    partition gets the events of one feeder, in its order; streams with out-of-order or
    malformed noise take one. Each event goes out in the version `schema_version` picks
    (1, 2, or mix: by its event_id). Raises ClickstreamError if any event was not
    acknowledged (after reporting counts).
    """
    report = report or (lambda line: print(line, file=sys.stderr, flush=True))
    if sink is None:
        sink = ShardedSink(settings, senders) if senders > 1 else KafkaSink(settings)
    stop = threading.Event()
    stopped_by = "count"
    previous = signals.install(on_stop=stop.set)
    # unthrottled: big chunks; paced: ~10 ms of traffic per chunk, each sent when due
    size = BATCH if rate <= 0 else max(1, min(BATCH, int(rate / 100)))
    partitions = getattr(sink, "partitions", None)  # the feeder splits chunks by them
    if feeders is None:
        feeders = default_feeders(rate)
    if feeder and feeders > 1 and usable(config, partitions):
        source = Feeders(feeders, config, start_ms, count, partitions, schema_version, size)
    elif feeder:
        source = Feeder(config, start_ms, count, schema_version, size, partitions)
    else:
        source = chunks(config, start_ms, count, size, partitions, schema_version)
    t0 = None  # the clock starts with the first chunk (after the simulator's set-up)
    last_report = last_acked = 0
    try:
        for chunk in source:
            now = time.monotonic()
            if t0 is None:
                t0 = last_report = now
            deadline = t0 + duration if duration is not None else None
            if rate > 0:
                # pace on simulated collector time: the chunk leaves when its last event is due
                due = t0 + (chunk.last_sent - start_ms) / 1000.0 / speed
                if deadline is not None:
                    due = min(due, deadline)
                wait = due - time.monotonic()
                if wait > 0:
                    stop.wait(wait)
            if stop.is_set():
                stopped_by = "signal"
                break
            if deadline is not None and time.monotonic() >= deadline:
                stopped_by = "duration"
                break
            sink.send_chunk(chunk)
            now = time.monotonic()
            if stop.is_set():
                stopped_by = "signal"
                break
            if sink.counts.failed:
                stopped_by = "error"
                break
            if deadline is not None and now >= deadline:
                stopped_by = "duration"
                break
            if now - last_report >= report_every:
                acked = sink.counts.acked
                report(_line(sink.counts, now - t0, (acked - last_acked) / (now - last_report)))
                last_report, last_acked = now, acked
    except KeyboardInterrupt:
        stopped_by = "signal"
    finally:
        if feeder:
            source.stop()
        sink.flush(timeout=35.0)  # covers delivery_timeout_ms: each record ends acked or failed
        elapsed = time.monotonic() - t0 if t0 is not None else 0.0
        sink.close(timeout=5.0)
        signals.restore(previous)
    c = sink.counts
    report(_line(c, elapsed, c.acked / elapsed if elapsed else 0.0, final=True))
    result = ProduceResult(c.sent, c.acked, c.failed, elapsed, stopped_by, c.last_error)
    lost = c.sent - c.acked
    if lost:
        raise ClickstreamError(
            f"{lost:,} of {c.sent:,} events were not acknowledged by Kafka at "
            f"{sink.bootstrap} ({c.failed:,} failed; last error: {c.last_error})"
        )
    return result


def _line(c: Counts, elapsed: float, rate: float, final: bool = False) -> str:
    head = "done" if final else f"{elapsed:7.1f}s"
    return (f"{head}  sent {c.sent:,}  acknowledged {c.acked:,}  failed {c.failed:,}  "
            f"in flight {c.in_flight:,}  {rate:,.0f} events/s")
