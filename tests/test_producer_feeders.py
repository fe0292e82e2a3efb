"""`produce --feeders N`: each partition gets the events of one feeder, in its order."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.producer import feeders as feeders_mod
from services.producer.chunks import chunks, unpack
from services.producer.feeders import Feeders, split_block, usable
from services.producer.kafka_sink import Counts
from services.producer.run import default_feeders, density, run_produce
from services.simulator.delivery import BLOCK_MS
from services.simulator.lines import line_encoder
from services.simulator.model import Noise, SimConfig, Simulator
from shared.errors import ClickstreamError
from shared.settings import Settings

START = 1767571200000 + 12_345  # mid-minute: the first block is partial
PARTS = [0, 1, 2]


def by_partition(source) -> dict[int, list[tuple[bytes, bytes]]]:
    out: dict[int, list] = {}
    for chunk in source:
        n = 0
        for p, data in chunk.parts.items():
            keys, values = unpack(*data)
            assert len(keys) == len(values)
            out.setdefault(p, []).extend(zip(keys, values, strict=True))
            n += len(keys)
        assert n == chunk.count
    return out


def in_process(n: int, config: SimConfig, limit: int, size: int, version: str = "1"):
    """`Feeders` with its n feeders' blocks made in this process, in the order the queues
    give them (feeder k % n's next block)."""
    f = Feeders.__new__(Feeders)
    f.partitions, f.start_ms, f.limit, f.size = PARTS, START, limit, size
    f.queues = [None] * n
    sims = [Simulator(config) for _ in range(n)]
    indexes = [feeders_mod._Index(PARTS) for _ in range(n)]
    encoder = line_encoder(version)
    nxt = [START // BLOCK_MS + i for i in range(n)]

    def block(i):
        b = nxt[i]
        nxt[i] += n
        return split_block(sims[i], encoder, b, START, indexes[i])

    f._block = block
    f.last_block = SimpleNamespace(value=0)
    return f


@pytest.mark.parametrize("config, limit, size, version", [
    (SimConfig(seed=3, events_per_second=200), 40_000, 4_000, "1"),
    # late sends (minutes later), duplicates and bots: minutes merge shares of many blocks
    (SimConfig(seed=5, events_per_second=40,
               noise=Noise(late_rate=0.05, duplicate_rate=0.02, bot_rate=0.05)),
     15_000, 90, "1"),
    (SimConfig(seed=9, events_per_second=30), 7_777, 50, "mix"),
])
@pytest.mark.parametrize("n", [2, 3])
def test_each_partition_gets_one_feeders_events_in_its_order(config, limit, size, version, n):
    one = by_partition(chunks(config, START, limit, size, PARTS, version))
    many = by_partition(in_process(n, config, limit, size, version))
    assert sum(map(len, one.values())) == limit
    assert many.keys() == one.keys()
    for p in one:
        assert many[p] == one[p]  # the bytes and the order


def test_chunks_are_cut_by_time_and_size():
    config = SimConfig(seed=3, events_per_second=200)
    got = list(in_process(2, config, 30_000, 1_000))
    assert all(c.count <= 2_000 for c in got)  # about `size`: the minute cut by time
    lasts = [c.last_sent for c in got]
    assert lasts == sorted(lasts)  # pacing: chunks due one after another


def test_two_feeders_as_fast_as_possible_one_when_paced():
    assert default_feeders(0) == 2 and default_feeders(500) == 1


def test_streams_not_split_by_block_take_one_feeder():
    assert usable(SimConfig(), PARTS)
    assert not usable(SimConfig(), None)
    assert not usable(SimConfig(noise=Noise(out_of_order_rate=0.01)), PARTS)
    assert not usable(SimConfig(noise=Noise(malformed_rate=0.01)), PARTS)


def test_line_keys_finds_keys_past_a_lines_head_and_refuses_a_line_without_one():
    head = feeders_mod.HEAD
    lines = [b'{"a":"%s","session_id":"s%d"}\n' % (b"x" * pad, i)
             # keys well inside the head, ending just past it, cut by it, far beyond it
             for i, pad in enumerate([0, head - 28, head - 22, head - 16, 3 * head, 5])]
    assert feeders_mod.line_keys(lines) == [b"s%d" % i for i in range(len(lines))]
    assert feeders_mod.line_keys(lines[:1] + lines[-1:]) == [b"s0", b"s5"]
    # a head ending right after '"session_id":"' must not match into the next line
    assert feeders_mod.line_keys([lines[2], lines[0]]) == [b"s2", b"s0"]
    with pytest.raises(ValueError, match="session_id"):
        feeders_mod.line_keys([*lines, b'{"a":"no key"}\n'])


class PartitionedSink:
    """Acknowledges everything; records per partition, as the feeders split them."""

    def __init__(self, partitions=PARTS):
        self.counts = Counts()
        self.bootstrap = "fake:9092"
        self.partitions = list(partitions)
        self.records: dict[int, list] = {}

    def send_chunk(self, chunk):
        for p, data in chunk.parts.items():
            keys, values = unpack(*data)
            self.records.setdefault(p, []).extend(zip(keys, values, strict=True))
            self.counts.sent += len(keys)
            self.counts.acked += len(keys)

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        pass


def test_produce_with_feeder_processes_sends_what_one_feeder_sends():
    config = SimConfig(seed=2, events_per_second=density(0, 1))
    results, sinks = [], []
    for feeders in (1, 2):
        sink = PartitionedSink()
        results.append(run_produce(Settings(_env_file=None), config, START, rate=0,
                                   count=25_000, feeder=True, sink=sink, feeders=feeders,
                                   report=lambda line: None))
        sinks.append(sink)
    for r in results:
        assert r.sent == r.acked == 25_000 and r.failed == 0 and r.stopped_by == "count"
    assert sinks[0].records == sinks[1].records


def test_a_feeder_that_fails_is_an_error_not_a_short_run():
    # the encoder refuses the version in the feeder processes: their end is an error
    feeders = Feeders(2, SimConfig(seed=1, events_per_second=10.0), START, 100, PARTS,
                      schema_version="9")
    try:
        with pytest.raises(ClickstreamError, match="feeder process failed: ValueError"):
            for _ in feeders:
                pass
    finally:
        feeders.stop()


def test_a_feeder_that_dies_is_an_error_not_a_hang():
    feeders = Feeders(2, SimConfig(seed=1, events_per_second=10.0), START, None, PARTS)
    try:
        feeders.processes[0].kill()
        feeders.processes[0].join(5)
        with pytest.raises(ClickstreamError, match="feeder process 0 died"):
            for _ in feeders:
                pass
    finally:
        feeders.stop()
    assert not any(p.is_alive() for p in feeders.processes)
