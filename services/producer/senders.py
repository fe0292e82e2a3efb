"""Several sender processes behind one sink (`clickstream produce --senders N`).

kafka-python holds the GIL, so one process sends on one core. `ShardedSink` has the
interface of `KafkaSink` (`send_chunk`, `send_many`, `counts`, `flush`, `close`) and hands
each partition's part of a chunk to one of N processes, each with its own idempotent
producer: sender `i` owns the partitions at positions i, i + N, ... of the topic's sorted
partition ids, and a record goes to the sender owning the partition the default
partitioner gives its key. One producer per partition, fed in delivery order: a session's
events keep their order, as with one process.

Accounting: each sender counts its own sent / acknowledged / failed (as `KafkaSink` does)
into a shared array the parent sums for progress lines; on flush each sender sends what it
was handed, flushes, closes, and reports its final counts. Ctrl-C and SIGHUP reach the
parent only (senders ignore them): it stops handing out records and asks every sender to
flush. A sender that gets SIGTERM (a group kill, or the parent's death) flushes too.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time

from kafka.errors import KafkaTimeoutError

from services.producer.chunks import pack, unpack
from services.producer.kafka_sink import Counts, KafkaSink, default_partition
from shared import signals
from shared.errors import ClickstreamError
from shared.settings import Settings

QUEUE_BATCHES = 4  # batches waiting per sender: back-pressure, and little to send at a stop
READY_TIMEOUT_S = 90.0  # a sender's connection attempts (kafka_sink.CONNECT_*) fit in it
PUT_POLL_S = 1.0
KEYS_CACHED = 200_000


def _sender_main(index: int, settings: Settings, topic: str, overrides: dict, q, results,
                 totals, parent: int) -> None:
    for s in (signal.SIGINT, signal.SIGHUP):  # the parent decides when to stop...
        signal.signal(s, signal.SIG_IGN)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # ...or a kill: flush, then exit
    signals.die_with_parent(signal.SIGTERM, parent, respect_nohup=False)
    try:
        sink = KafkaSink(settings, topic=topic, **overrides)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        message = str(e) if isinstance(e, ClickstreamError) else f"{type(e).__name__}: {e}"
        results.put(("error", index, message))
        return
    results.put(("ready", index, sink.partitions))
    base = 3 * index

    def publish() -> None:
        c = sink.counts
        totals[base], totals[base + 1], totals[base + 2] = c.sent, c.acked, c.failed

    try:
        while not stop.is_set():
            try:
                records = q.get(timeout=0.2)
            except queue_mod.Empty:
                publish()
                continue
            if records is None:
                break
            if not sink.counts.failed:  # after a failure the parent stops: send no more
                sink.send_parts(records)
            publish()
    except KafkaTimeoutError:
        pass  # counted as failed by the sink; the parent sees it and stops
    finally:
        sink.flush(timeout=35.0)  # covers delivery_timeout_ms: each record acked or failed
        sink.close(timeout=5.0)
        publish()
        c = sink.counts
        results.put(("done", index, c.sent, c.acked, c.failed, c.last_error))


class ShardedSink:
    """`KafkaSink`'s interface over `senders` processes, each owning a set of partitions."""

    def __init__(self, settings: Settings, senders: int, topic: str | None = None,
                 **overrides):
        self.topic = topic or settings.kafka_topic
        self.bootstrap = settings.bootstrap_servers
        ctx = mp.get_context("spawn")  # kafka-python runs threads: no fork
        self._totals = ctx.RawArray("q", 3 * senders)  # sent, acked, failed per sender
        self._results = ctx.Queue()
        self._queues = [ctx.Queue(maxsize=QUEUE_BATCHES) for _ in range(senders)]
        self._procs = [
            ctx.Process(target=_sender_main, daemon=True,
                        args=(i, settings, self.topic, overrides, q, self._results,
                              self._totals, os.getpid()))
            for i, q in enumerate(self._queues)
        ]
        self._final: dict[int, tuple] = {}  # sender -> its counts after its flush
        self._ready: set[int] = set()
        self._flushed = False
        for p in self._procs:
            p.start()
        try:
            partitions = self._wait_ready()
        except BaseException:
            self._kill()  # nothing was sent: nothing to flush
            raise
        self._partitions = partitions
        # sender of each partition id
        self._owner = {p: i % senders for i, p in enumerate(partitions)}
        self._partition_of: dict[bytes, int] = {}

    def _wait_ready(self) -> list[int]:
        partitions = None
        deadline = time.monotonic() + READY_TIMEOUT_S
        for _ in self._procs:
            message = self._next_result(deadline, "to connect")
            if message[0] == "error":
                raise ClickstreamError(message[2])
            self._ready.add(message[1])
            partitions = message[2]
        if not partitions:
            raise ClickstreamError(f"Kafka at {self.bootstrap} gave no partitions for topic "
                                   f"{self.topic!r}")
        return partitions

    def _next_result(self, deadline: float, what: str) -> tuple:
        while True:
            try:
                return self._results.get(timeout=min(1.0, max(0.01, deadline - time.monotonic())))
            except queue_mod.Empty:
                dead = [p for p in self._procs if p.exitcode not in (None, 0)]
                if dead:
                    raise ClickstreamError(f"a sender process died (exit code "
                                           f"{dead[0].exitcode})") from None
                if time.monotonic() >= deadline:
                    raise ClickstreamError(f"the sender processes did not manage {what} "
                                           f"in time (Kafka at {self.bootstrap})") from None

    @property
    def counts(self) -> Counts:
        t = self._totals
        c = Counts(sent=sum(t[0::3]), acked=sum(t[1::3]), failed=sum(t[2::3]))
        errors = [f[3] for f in self._final.values() if f[3]]
        c.last_error = errors[0] if errors else None
        return c

    @property
    def partitions(self) -> list[int]:
        """The topic's partition ids at start-up, sorted (a feeder splits chunks by them)."""
        return list(self._partitions)

    def send_chunk(self, chunk) -> None:
        """Hand each part of a `chunks.Chunk` to the sender owning its partition."""
        shards: list[list] = [[] for _ in self._queues]
        for p, data in chunk.parts.items():
            if p is None:  # not split by partition: record by record
                self.send_many(zip(*unpack(*data), strict=True))
            else:
                if isinstance(data[0], list):  # merged by `feeders.Feeders`: bytes to pickle
                    data = (b"\n".join(data[0]) + b"\n", b"\n".join(data[1]) + b"\n")
                shards[self._owner[p]].append((p, data))
        for i, shard in enumerate(shards):
            if shard:
                self._put(i, shard)

    def send_many(self, pairs) -> None:
        table, parts, owner = self._partition_of, self._partitions, self._owner
        if len(table) > KEYS_CACHED:
            table.clear()
        n = len(parts)
        runs: dict[int, list] = {}
        for key, value in pairs:
            p = table.get(key)
            if p is None:
                p = table[key] = default_partition(key, parts, n)
            runs.setdefault(p, []).append((key, value))
        shards: list[list] = [[] for _ in self._queues]
        for p, run in runs.items():
            shards[owner[p]].append((p, pack(run)))
        for i, shard in enumerate(shards):
            if shard:
                self._put(i, shard)

    def _put(self, i: int, item) -> None:
        while True:
            try:
                self._queues[i].put(item, timeout=PUT_POLL_S)
                return
            except queue_mod.Full:
                if signals.received() is not None:
                    return  # stopping: a sender that got SIGTERM reads no more (not sent)
                if not self._procs[i].is_alive():  # never wait for ever on a dead sender
                    raise ClickstreamError(f"sender process {i} died (exit code "
                                           f"{self._procs[i].exitcode})") from None

    def flush(self, timeout: float | None = 35.0) -> None:
        """Every sender sends what it was handed, flushes, closes and reports its counts."""
        if self._flushed:
            return
        self._flushed = True
        deadline = time.monotonic() + (timeout or 35.0) + 10.0
        for i, q in enumerate(self._queues):
            if self._procs[i].is_alive():
                try:
                    q.put(None, timeout=max(0.01, deadline - time.monotonic()))
                except queue_mod.Full:
                    pass  # it stopped reading (SIGTERM): it flushes all the same
        while set(self._final) != self._ready:
            try:
                message = self._next_result(deadline, "to flush")
            except ClickstreamError:
                break  # reported below as events not acknowledged
            if message[0] == "done":
                self._final[message[1]] = message[2:]
        for i, (sent, acked, failed, _) in self._final.items():
            self._totals[3 * i: 3 * i + 3] = [sent, acked, failed]

    def close(self, timeout: float = 5.0) -> None:
        self.flush(timeout=35.0)
        for p in self._procs:
            p.join(timeout=timeout)
        self._kill()

    def _kill(self) -> None:
        for p in self._procs:
            if p.is_alive():
                p.terminate()
            p.join(timeout=5.0)
        for q in (*self._queues, self._results):
            q.cancel_join_thread()  # never hang at exit on data nobody will read
