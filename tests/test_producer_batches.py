"""The producer's whole-batch path (record_batches) and its chunks, without a broker:
the batches are checked against kafka-python's own builder and read back with its own
reader; the accounting through the client's own batch completion."""

from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from kafka.producer.record_accumulator import RecordAccumulator
from kafka.record.memory_records import MemoryRecords
from kafka.structs import TopicPartition

from services.producer import record_batches
from services.producer.chunks import Chunk, chunks, pack, unpack
from services.producer.kafka_sink import Counts, default_partition
from services.producer.run import batches, density
from services.simulator.model import Noise, SimConfig

START = 1767571200000 + 19 * 3_600_000
LZ4, NONE = 3, 0


def _pairs(rng: random.Random, n: int) -> list[tuple[bytes, bytes]]:
    sizes = [0, 1, 17, 127, 128, 800, 16_383, 16_384, 70_000]
    return [(rng.randbytes(rng.choice(sizes[:4])), rng.randbytes(rng.choice(sizes)))
            for _ in range(n)]


@pytest.mark.parametrize("compression", [NONE, LZ4])
@pytest.mark.parametrize("n", [1, 2, 64, 200])
def test_batches_are_byte_equal_to_kafka_python_appends(compression, n):
    # varints of 1-3 bytes in every field: empty and long keys, values around 128 and
    # 16,384 bytes (the table's end)
    pairs = _pairs(random.Random(n), n)
    assert record_batches.check(compression, 1 << 30, pairs)


def test_batches_beyond_the_varint_table_are_byte_equal():
    # offset deltas past 16,383 take kafka-python's own varint
    pairs = [(b"k%d" % i, b"v" * (i % 50)) for i in range(17_000)]
    assert record_batches.check(LZ4, 1 << 30, pairs)


def test_batch_check_sees_a_difference(monkeypatch):
    real = record_batches.encode_records

    def last_byte_wrong(keys, values, first_offset=0, out=None):
        out = real(keys, values, first_offset, out)
        out[-1] = 2
        return out

    monkeypatch.setattr(record_batches, "encode_records", last_byte_wrong)
    assert not record_batches.check(LZ4, 1 << 20, [(b"a", b"1"), (b"b", b"2")])


class _Sender:
    def __init__(self):
        self.wakeups = 0

    def wakeup(self):
        self.wakeups += 1


def _appender(batch_size: int, max_pending: int = 1000, wait_s: float = 35.0):
    accumulator = RecordAccumulator(batch_size=batch_size, compression_attrs=LZ4,
                                    linger_ms=50)
    producer = SimpleNamespace(_accumulator=accumulator, _sender=_Sender(),
                               config={"batch_size": batch_size, "compression_attrs": LZ4})
    counts = Counts()
    return record_batches.BatchAppender(producer, "t", counts, max_pending=max_pending,
                                        wait_s=wait_s), accumulator, counts


def _read(batch) -> list[tuple[bytes, bytes]]:
    batch.records.set_producer_state(1, 0, 0, False)
    batch.records.close()
    return [(r.key, r.value) for b in MemoryRecords(batch.records.buffer()) for r in b]


def test_appender_cuts_runs_into_batches_that_fit_and_keeps_their_order():
    pairs = [(b"s%d" % i, b"x" * (300 + i % 700)) for i in range(5000)]
    appender, accumulator, counts = _appender(batch_size=64 * 1024)
    appender.append(1, [k for k, _ in pairs[:3000]], [v for _, v in pairs[:3000]])
    appender.append(1, [k for k, _ in pairs[3000:]], [v for _, v in pairs[3000:]])
    queued = list(accumulator._batches[TopicPartition("t", 1)])
    assert len(queued) > 5  # 3.3 MB in 64 KiB batches
    for batch in queued:
        assert batch.records.size_in_bytes() <= 64 * 1024
    assert [pair for batch in queued for pair in _read(batch)] == pairs
    assert counts.sent == 5000 and counts.acked == counts.failed == 0


def test_appender_counts_acknowledged_and_failed_batches():
    appender, accumulator, counts = _appender(batch_size=1024)
    appender.append(0, [b"k"] * 30, [b"v" * 100] * 30)  # 30 records in 4 batches
    queued = list(accumulator._batches[TopicPartition("t", 0)])
    sizes = [b.record_count for b in queued]
    assert sum(sizes) == 30 and len(sizes) == 4
    queued[0].complete(0, -1)
    queued[1].complete_exceptionally(NotLeaderForPartitionError(),
                                     lambda i: NotLeaderForPartitionError())
    queued[2].abort(KafkaTimeoutError("expired"))
    assert (counts.sent, counts.acked, counts.failed) == (30, sizes[0], sizes[1] + sizes[2])
    assert "KafkaTimeoutError" in counts.last_error
    queued[3].complete(100, -1)
    assert counts.acked + counts.failed == counts.sent


def test_appender_waits_for_room_and_gives_up_loudly():
    appender, accumulator, counts = _appender(batch_size=1 << 20, max_pending=2, wait_s=0.01)
    appender.append(0, [b"a"], [b"1"])
    appender.append(0, [b"b"], [b"2"])
    with pytest.raises(KafkaTimeoutError):  # two batches unacknowledged: no room
        appender.append(0, [b"c"], [b"3"])
    first = accumulator._batches[TopicPartition("t", 0)][0]
    first.complete(0, -1)
    appender.append(0, [b"c"], [b"3"])  # room again
    assert counts.sent == 3 and counts.acked == 1


CLEAN = Noise()
NOISY = Noise(late_rate=0.05, out_of_order_rate=0.05, duplicate_rate=0.05, bot_rate=0.1)
MALFORMED = Noise(malformed_rate=0.05, duplicate_rate=0.02)  # the row path


@pytest.mark.parametrize("noise, mode", [(CLEAN, "1"), (CLEAN, "2"), (NOISY, "mix"),
                                         (MALFORMED, "mix")],
                         ids=["clean-v1", "clean-v2", "noisy-mix", "malformed-mix"])
def test_chunks_hold_the_events_and_keys_of_the_row_path(noise, mode):
    cfg = SimConfig(seed=4, events_per_second=200, noise=noise)
    expected = [pair for _, pairs in batches(cfg, START, 3000, mode) for pair in pairs]
    got = list(chunks(cfg, START, 3000, 700, None, mode))
    assert [c.count for c in got] == [700] * 4 + [200]
    assert [pair for c in got for pair in c.pairs()] == expected


def test_chunks_split_by_partition_keep_each_partitions_delivery_order():
    cfg = SimConfig(seed=5, events_per_second=density(0, 1))
    parts = [0, 1, 2, 5]
    expected = [pair for _, pairs in batches(cfg, START, 6000) for pair in pairs]
    got = list(chunks(cfg, START, 6000, 2500, parts))
    assert sum(c.count for c in got) == 6000
    for p in parts:
        mine = [pair for pair in expected if default_partition(pair[0], parts) == p]
        assert [pair for c in got for pair in zip(*unpack(*c.parts.get(p, (b"", b""))), strict=True)
                ] == mine


def test_pack_and_unpack_round_trip_and_refuse_newlines():
    pairs = [(b"a", b'{"x":1}'), (b"", b""), (b"c", b"z" * 1000)]
    assert list(zip(*unpack(*pack(pairs)), strict=True)) == pairs
    assert Chunk(3, 0, {7: pack(pairs)}).pairs() == pairs
    with pytest.raises(ValueError):
        pack([(b"a", b"two\nlines")])


def test_murmur2_is_kafka_pythons():
    from kafka.partitioner.default import murmur2 as theirs

    from services.producer.kafka_sink import murmur2

    rng = random.Random(9)
    keys = [rng.randbytes(n % 300) for n in range(3000)] + [b"\xff" * n for n in range(9)]
    assert [murmur2(k) for k in keys] == [theirs(k) for k in keys]
