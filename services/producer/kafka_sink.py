"""The one long-lived Kafka producer: keyed by session id, batched, lz4-compressed,
acks=all with idempotence, and counted so that nothing is lost silently.

Records go out as whole batches per partition (`record_batches.BatchAppender`: a run of
records is encoded at once and queued on kafka-python's accumulator, one callback per
batch), or through `KafkaProducer.send()` one by one where that fast path is off (a custom
partitioner, or a client whose batches it cannot reproduce). Either way `acked` counts
broker acknowledgements and `failed` the records the client gave up on (after its own
retries, bounded by `delivery_timeout_ms`). `flush()` waits for what is in flight.
"""

from __future__ import annotations

import logging
import struct
import threading
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from services.producer import record_batches
from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

PRODUCER_CONFIG = {
    "acks": "all",
    "enable_idempotence": True,
    "compression_type": "lz4",
    "linger_ms": 50,  # wait for full batches: throughput over latency
    "batch_size": 512 * 1024,
    "max_in_flight_requests_per_connection": 5,  # the idempotent maximum: order is kept
    "delivery_timeout_ms": 30_000,  # then the record fails (and is counted), never hangs
    "request_timeout_ms": 10_000,
    "max_block_ms": 10_000,
}
CONNECT_ATTEMPTS = 3
CONNECT_WAIT_S = 2.0
BOOTSTRAP_TIMEOUT_MS = 4_000


_WORDS = [struct.Struct(f"<{n}I") for n in range(64)]


def murmur2(data: bytes) -> int:
    """kafka-python's `murmur2` (the Java client's), about three times faster: the key's
    4-byte words unpacked at once and fewer masks (a session's first event hashes its
    key: about 1 µs per event in the feeder with theirs)."""
    length = len(data)
    m = 0x5BD1E995
    h = 0x9747B28C ^ length
    n4 = length >> 2
    words = _WORDS[n4] if n4 < 64 else struct.Struct(f"<{n4}I")
    for k in words.unpack_from(data):
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> 24
        h = ((h * m) & 0xFFFFFFFF) ^ ((k * m) & 0xFFFFFFFF)
    extra = length & 3
    if extra:
        i = n4 << 2
        if extra == 3:
            h ^= data[i + 2] << 16
        if extra >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


def default_partition(key: bytes, partitions: list[int], n: int | None = None) -> int:
    """The partition kafka-python's DefaultPartitioner (and the Java client's) gives a key:
    murmur2 of the key bytes over the sorted partition ids."""
    return partitions[(murmur2(key) & 0x7FFFFFFF) % (n or len(partitions))]


@dataclass
class Counts:
    sent: int = 0
    acked: int = 0
    failed: int = 0
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked - self.failed


class KafkaSink:
    """Sends (key, value) byte pairs to one topic and counts their fate."""

    def __init__(self, settings: Settings, topic: str | None = None, **overrides):
        self.topic = topic or settings.kafka_topic
        self.bootstrap = settings.bootstrap_servers
        self.counts = Counts()
        config = {**PRODUCER_CONFIG, **overrides}
        self._producer = self._connect(config)
        self._on_ok = self._ok
        self._on_err = self._err
        # The default partitioner (murmur2 of the key, as the Java client) costs about a
        # fifth of kafka-python's send(); keys repeat (one per session), so choose the
        # same partition ourselves once per key and pass it explicitly.
        self._explicit_partitions = "partitioner" not in overrides
        self._partition_of: dict[bytes, int] = {}
        self._partitions: list[int] = []
        self._appender = self._batch_appender() if self._explicit_partitions else None

    def _batch_appender(self) -> record_batches.BatchAppender | None:
        """The whole-batch path, if this client builds the very batches it would build
        record by record (see `record_batches.check`)."""
        config = self._producer.config
        sample = [(b"s%d" % i, b'{"n":%d}' % i * (1 + i % 40)) for i in range(300)]
        if not record_batches.check(config["compression_attrs"], config["batch_size"], sample):
            log.warning("kafka-python builds batches unlike record_batches: send() per record")
            return None
        return record_batches.BatchAppender(self._producer, self.topic, self.counts)

    def _connect(self, config: dict) -> KafkaProducer:
        if not log.isEnabledFor(logging.INFO):
            # kafka-python logs every refused connection at ERROR; our own messages say
            # what matters, and -v brings the client's back
            logging.getLogger("kafka").setLevel(logging.CRITICAL)
        def attempt() -> KafkaProducer:
            producer = KafkaProducer(
                bootstrap_servers=self.bootstrap.split(","),
                client_id="clickstream-producer",
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                **config,
            )
            try:
                # metadata for the topic proves the broker answers (and creates the topic
                # where auto-creation is on)
                if producer.partitions_for(self.topic) is None:
                    raise ClickstreamError(
                        f"Kafka at {self.bootstrap} has no topic {self.topic!r}; create it "
                        "with 'clickstream schema' (or set CLICKSTREAM_KAFKA_TOPIC)"
                    )
            except BaseException:
                producer.close(timeout=1)
                raise
            return producer

        retrying = Retrying(
            stop=stop_after_attempt(CONNECT_ATTEMPTS),
            wait=wait_fixed(CONNECT_WAIT_S),
            retry=retry_if_exception_type(KafkaError),
            before_sleep=lambda rs: log.warning("Kafka not reachable yet (%s); retrying",
                                                rs.outcome.exception()),
        )
        try:
            return retrying(attempt)
        except RetryError as e:
            cause = e.last_attempt.exception()
            raise ClickstreamError(
                f"cannot reach Kafka at {self.bootstrap} after {CONNECT_ATTEMPTS} attempts "
                f"({cause}); is it running? ('clickstream status'; "
                "set CLICKSTREAM_KAFKA_BOOTSTRAP for another cluster)"
            ) from None

    def _ok(self, _metadata) -> None:
        with self.counts.lock:
            self.counts.acked += 1

    def _err(self, exc) -> None:
        with self.counts.lock:
            self.counts.failed += 1
            self.counts.last_error = f"{type(exc).__name__}: {exc}"

    def _partition_table(self) -> dict[bytes, int] | None:
        """key -> partition cache for the topic's current partitions (None: let the
        client's partitioner choose)."""
        if not self._explicit_partitions:
            return None
        parts = self._producer.partitions_for(self.topic)
        if not parts:
            return None
        parts = sorted(parts)
        if parts != self._partitions:
            self._partitions = parts
            self._partition_of = {}
        elif len(self._partition_of) > 200_000:
            self._partition_of = {}
        return self._partition_of

    def send_parts(self, parts) -> None:
        """Send the parts of a `chunks.Chunk`: (partition, (keys, values)) items, each
        a run of records for that partition (None: each record to its key's)."""
        from services.producer.chunks import unpack

        for partition, data in parts:
            keys, values = unpack(*data)
            if partition is None or self._appender is None:
                self.send_partitioned(zip(keys, values, [partition] * len(keys), strict=True))
            else:
                self._send_run(partition, keys, values)

    def send_chunk(self, chunk) -> None:
        self.send_parts(chunk.parts.items())

    def _send_run(self, partition: int, keys: list, values: list) -> None:
        try:
            self._appender.append(partition, keys, values)
        except KafkaTimeoutError as e:
            with self.counts.lock:
                self.counts.last_error = f"{type(e).__name__}: {e}"
            raise

    def send_many(self, pairs) -> None:
        """Send (key, value) pairs, each to its key's partition (the client's partitioner,
        or the cached table of the topic's partitions, see `_partition_table`)."""
        table = self._partition_table()
        if table is None:
            self.send_partitioned((key, value, None) for key, value in pairs)
            return
        parts = self._partitions
        n_parts = len(parts)

        def with_partition():
            get = table.get
            for key, value in pairs:
                p = get(key)
                if p is None:
                    p = table[key] = default_partition(key, parts, n_parts)
                yield key, value, p

        self.send_partitioned(with_partition())

    @property
    def partitions(self) -> list[int]:
        """The topic's partition ids, sorted."""
        return sorted(self._producer.partitions_for(self.topic) or ())

    def send_partitioned(self, records) -> None:
        """Send (key, value, partition) triples: the partition chosen by the caller (a
        sender process that owns it, see `senders.py`; None: the client's partitioner)."""
        if self._appender is not None:
            table = self._partition_table()
            if table is not None:
                self._send_grouped(records, table)
                return
        send = self._producer.send
        topic = self.topic
        ok, err = self._on_ok, self._on_err
        n = 0
        try:
            for key, value, p in records:
                send(topic, value=value, key=key, partition=p).add_callback(ok).add_errback(err)
                n += 1
        except KafkaTimeoutError as e:
            self._err(e)
            n += 1
            raise
        finally:
            self.counts.sent += n

    def _send_grouped(self, records, table: dict) -> None:
        """Triples as runs per partition (each partition's records in their order)."""
        parts, n_parts = self._partitions, len(self._partitions)
        runs: dict[int, tuple[list, list]] = {}
        for key, value, p in records:
            if p is None:
                p = table.get(key)
                if p is None:
                    p = table[key] = default_partition(key, parts, n_parts)
            run = runs.get(p)
            if run is None:
                run = runs[p] = ([], [])
            run[0].append(key)
            run[1].append(value)
        for p, (keys, values) in runs.items():
            self._send_run(p, keys, values)

    def flush(self, timeout: float | None = 30.0) -> None:
        try:
            self._producer.flush(timeout=timeout)
        except KafkaTimeoutError as e:
            with self.counts.lock:
                self.counts.last_error = f"flush timed out: {e}"

    def close(self, timeout: float = 30.0) -> None:
        self.flush(timeout)
        self._producer.close(timeout=timeout)
