"""The producer's unit of hand-over: a run of events as a few byte strings per partition.

The feeder process simulates and encodes; each `Chunk` it makes holds, per partition of
the topic (the one the default partitioner gives the event's key, the session id), the
keys and the values of its events in delivery order, each followed by a newline (JSON
text has no raw newline; a value that had one is refused). A chunk crosses processes as
two byte strings per partition instead of thousands of pickled tuples, and a sender turns
them back into lists with `bytes.split` (`unpack`).

Events come from the simulator's lines path (`Simulator.block_lines`: the wire bytes of
each event written as its session is walked, as `clickstream simulate` writes them), with
the key read back from the line's `"session_id":"..."`. Streams with malformed payloads
take the row path (`run.batches`), since a broken payload need not hold its session id.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from services.producer.kafka_sink import default_partition
from services.simulator.delivery import BLOCK_MS, in_time_order
from services.simulator.lines import line_encoder
from services.simulator.malformed import event_row
from services.simulator.model import SimConfig, Simulator
from services.simulator.noise import shuffle_some
from services.simulator.rows import SENT, SESSION_ID
from services.simulator.versions import DEFAULT_MODE, VersionedEncoder

KEY_MARK = b'"session_id":"'
KEY_LEN = len(KEY_MARK)
KEYS_CACHED = 200_000


@dataclass(slots=True)
class Chunk:
    count: int
    last_sent: int  # the collector time (sent_at) of its last event: for pacing
    # partition (None: not chosen) -> (keys, values), each followed by b"\n"
    parts: dict

    def pairs(self) -> list[tuple[bytes, bytes]]:
        """(key, value) of its events, partition after partition."""
        return [pair for data in self.parts.values() for pair in zip(*unpack(*data), strict=True)]


def unpack(keys: bytes, values: bytes) -> tuple[list[bytes], list[bytes]]:
    """A part's keys and values as lists (a part may hold them as lists already:
    `feeders.Feeders` merges them so)."""
    if isinstance(keys, list):
        return keys, values
    k, v = keys.split(b"\n"), values.split(b"\n")
    k.pop()
    v.pop()
    return k, v


def pack(pairs) -> tuple[bytes, bytes]:
    """(key, value) pairs as a part: (keys, values), each followed by a newline."""
    keys = [k for k, _ in pairs]
    values = [v for _, v in pairs]
    if any(b"\n" in k for k in keys) or any(b"\n" in v for v in values):
        raise ValueError("a record's key or value holds a newline: it cannot be packed")
    return b"\n".join(keys) + b"\n", b"\n".join(values) + b"\n"


def _lines(config: SimConfig, start_ms: int, schema_version: str) -> Iterator[list]:
    """(sent_at, line) lists in delivery order, as `clickstream simulate` writes them
    (`simulator.run.run_simulate`): the order and shuffle of `Simulator.rows`."""
    sim = Simulator(config)
    encoder = line_encoder(schema_version)
    ooo = config.noise.out_of_order_rate
    orng = random.Random(f"{config.seed}:{start_ms}:order") if ooo else None
    for ready in in_time_order(lambda b: sim.block_lines(b, encoder, start_ms),
                               start_ms // BLOCK_MS, 0):
        if ooo:
            shuffle_some(orng, ready, ooo)
        yield ready


def _rows(config: SimConfig, start_ms: int, schema_version: str) -> Iterator[list]:
    """The same from the rows (any stream, malformed payloads included), with keys."""
    encode = VersionedEncoder(schema_version)
    out = []
    for row in Simulator(config).rows(start_ms):
        value = encode(row)
        key = event_row(row)[SESSION_ID].encode()
        if b"\n" in value or b"\n" in key:
            raise ValueError(f"an event's bytes hold a newline: {value[:80]!r}")
        out.append((row[SENT], value + b"\n", key))
        if len(out) >= 1000:
            yield out
            out = []


def chunks(config: SimConfig, start_ms: int, limit: int | None, size: int,
           partitions: list[int] | None = None,
           schema_version: str = DEFAULT_MODE) -> Iterator[Chunk]:
    """`limit` events (None: for ever) in delivery order, `size` per chunk, each event in
    the version `schema_version` picks, split by the partition of its key among
    `partitions` (the topic's sorted ids; None: one part, key None)."""
    if limit == 0:
        return
    rows = bool(config.noise.malformed_rate)
    source = _rows(config, start_ms, schema_version) if rows else _lines(
        config, start_ms, schema_version)
    n_parts = len(partitions) if partitions else 0
    table: dict[bytes, int] = {}
    keys: dict = {}
    values: dict = {}
    n = 0
    last = 0

    def chunk() -> Chunk:
        parts = {p: (b"\n".join(keys[p]) + b"\n", b"".join(values[p])) for p in values}
        keys.clear()
        values.clear()
        return Chunk(count, last, parts)

    count = 0
    for ready in source:
        for item in ready:
            if rows:
                last, line, key = item
            else:
                last, line = item
                start = line.index(KEY_MARK) + KEY_LEN
                key = line[start:line.index(b'"', start)]
            if n_parts:
                p = table.get(key)
                if p is None:
                    if len(table) > KEYS_CACHED:
                        table.clear()
                    p = table[key] = default_partition(key, partitions, n_parts)
            else:
                p = None
            vs = values.get(p)
            if vs is None:
                vs, ks = values[p], keys[p] = [], []
            else:
                ks = keys[p]
            vs.append(line)
            ks.append(key)
            n += 1
            count += 1
            if count >= size or n == limit:
                yield chunk()
                count = 0
                if n == limit:
                    return
