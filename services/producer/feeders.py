"""Several feeder processes (`clickstream produce --feeders N`): the simulation on N cores,
each partition's events in the order one feeder gives them.

Each simulated minute (a *block*) is seeded by (seed, minute) alone, so feeder `i` of N
simulates and encodes the blocks `first + i`, `first + i + N`, ... on its own
(`Simulator.block_lines`, as one feeder does), sorts each block's lines stably by
`sent_at`, cuts them by delivery minute and splits each minute's share by the partition of
its key (the session id): per partition an array of `sent_at`s and two byte strings (keys,
values). The split is C loops over the block: keys found with one regular expression over
the block's lines, one partition look-up per key (`map` over a dict that computes a miss),
and `itertools.compress` per partition with a mask made by `bytes.translate`.

The main process reads the feeders' queues in turn (block after block: no reorder buffer
is needed, feeder `i` gives its blocks in order), keeps each delivery minute's shares in
block order, and once block `b` has come in, minute `b` is final (no later block delivers
before its own start). It then merges each partition's shares stably by `sent_at`, block
after block: ties keep block order and, within a block, generation order, which is the
list one feeder sorts (`delivery.in_time_order`). So each partition gets the same events
in the same order as with one feeder; only how the partitions interleave differs, which
no consumer can see. The minute is then cut by time into chunks of about `size` events
(paced runs send each when its last event is due). With `limit`, the minute holding the
limit is ordered across partitions once (its `sent_at`s and partition labels) to find how
many of each partition's events come before the limit.

Not for streams whose order is not per block: the out-of-order shuffle draws over the
whole stream, and malformed payloads take the row path; `run_produce` uses one feeder for
those.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import re
import signal
import time
from array import array
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from itertools import compress
from operator import itemgetter

from services.producer.chunks import Chunk, unpack
from services.producer.kafka_sink import default_partition
from services.simulator.delivery import BLOCK_MS
from services.simulator.lines import line_encoder
from services.simulator.model import SimConfig, Simulator
from services.simulator.versions import DEFAULT_MODE
from shared import signals
from shared.errors import ClickstreamError

QUEUE_ITEMS = 8  # minute shares waiting per feeder (a block at --rate 0 is ~60k events)
PIECE = 4_096  # lines per join for the key search: a few MB, reused heap memory (a fresh
# mapping's page faults cost ~4 us each on this VM: ~1 us per event for a block-sized join)
WAIT_S = 0.02
KEYS_CACHED = 200_000
KEY_RE = re.compile(rb'"session_id":"([^"\n]*)"')  # no newline: a match ends in its line
HEAD = 256  # bytes of each line searched for its key (the session id ends near byte 190 in
# v1 and v2 lines); a piece with a line whose key is further is searched whole. Half the
# cost of searching whole lines: 0.5 vs 1.0 µs per line (2026-12-04)
MAX_PARTITIONS = 255  # a partition's index is one byte of a minute's labels


def usable(config: SimConfig, partitions: list[int] | None) -> bool:
    """Whether a stream can be split by block (else one feeder makes it)."""
    noise = config.noise
    return bool(partitions) and len(partitions) <= MAX_PARTITIONS and not (
        noise.out_of_order_rate or noise.malformed_rate)


class _Index(dict):
    """key -> the index of its partition among `partitions`, computed on a miss."""

    def __init__(self, partitions: list[int]):
        super().__init__()
        self.partitions = partitions
        self.position = {p: i for i, p in enumerate(partitions)}

    def __missing__(self, key: bytes) -> int:
        if len(self) > KEYS_CACHED:
            self.clear()
        i = self[key] = self.position[default_partition(key, self.partitions,
                                                        len(self.partitions))]
        return i


# masks[i]: bytes.translate table turning the label i into 1 and any other into 0
_MASKS = [bytes(int(j == i) for j in range(256)) for i in range(MAX_PARTITIONS)]


def line_keys(lines: list[bytes]) -> list[bytes]:
    """Each JSON line's session id (its Kafka key), searched in pieces of PIECE lines."""
    keys: list[bytes] = []
    for i in range(0, len(lines), PIECE):
        piece = lines[i:i + PIECE]
        found = KEY_RE.findall(b"\n".join([line[:HEAD] for line in piece]))
        keys += found if len(found) == len(piece) else KEY_RE.findall(b"".join(piece))
    if len(keys) != len(lines):
        raise ValueError("a line without exactly one session_id: cannot split by partition")
    return keys


def split_block(sim: Simulator, encoder, block: int, not_before: int,
                index: _Index) -> Iterator[tuple]:
    """One block's lines sorted stably by sent_at, cut by delivery minute, split by
    partition: (minute, sents, labels, {partition index: (sents, keys, values)}) for each
    minute, where `sents` / `labels` are the minute's share in order (sent_at, partition
    index) and keys and values are byte strings of newline-terminated items."""
    pairs = sim.block_lines(block, encoder, not_before)
    if not pairs:
        return
    pairs.sort(key=itemgetter(0))
    sents = array("q", map(itemgetter(0), pairs))
    lines = list(map(itemgetter(1), pairs))
    del pairs
    keys = line_keys(lines)
    labels = bytes(map(index.__getitem__, keys))
    a, n = 0, len(sents)
    while a < n:
        minute = sents[a] // BLOCK_MS
        b = bisect_left(sents, (minute + 1) * BLOCK_MS, a)
        s, seg_labels, ks, vs = sents[a:b], labels[a:b], keys[a:b], lines[a:b]
        parts = {}
        for i in sorted(set(seg_labels)):
            mask = seg_labels.translate(_MASKS[i])
            parts[i] = (array("q", compress(s, mask)),
                        b"\n".join(compress(ks, mask)) + b"\n",
                        b"".join(compress(vs, mask)))
        yield minute, s, seg_labels, parts
        a = b


def _feeder_main(index: int, n: int, config: SimConfig, start_ms: int, q, last, parent: int,
                 schema_version: str, partitions: list[int]) -> None:
    for s in (signal.SIGINT, signal.SIGHUP):  # the parent decides when to stop...
        signal.signal(s, signal.SIG_IGN)
    # ...unless it is gone: then nothing reads the queue and put() would block for ever
    signals.die_with_parent(signal.SIGKILL, parent, respect_nohup=False)
    try:
        sim = Simulator(config)
        encoder = line_encoder(schema_version)
        keys = _Index(partitions)
        block = start_ms // BLOCK_MS + index
        while True:
            while block > last.value:  # not needed (yet): with --count, the end is near
                time.sleep(WAIT_S)
            for share in split_block(sim, encoder, block, start_ms, keys):
                q.put(share)
            q.put(block)  # the block's end
            block += n
    except BaseException as e:
        q.put(f"{type(e).__name__}: {e}")  # the end, as an error: never a short run
        raise


def _merge(shares: list[tuple]) -> tuple:
    """One partition's shares of a minute (block order) as (sents, keys, values) lists,
    stably by sent_at: ties keep block order."""
    if len(shares) == 1:
        s, kb, vb = shares[0]
        return (s, *unpack(kb, vb))
    sents = array("q")
    keys: list[bytes] = []
    values: list[bytes] = []
    for s, kb, vb in shares:
        k, v = unpack(kb, vb)
        sents += s
        keys += k
        values += v
    order = sorted(range(len(sents)), key=sents.__getitem__)
    pick = itemgetter(*order)
    return array("q", pick(sents)), list(pick(keys)), list(pick(values))


def _counts_before(shares: list[tuple], limit: int) -> Counter:
    """Events of each partition index among the first `limit` of a minute (one feeder's
    order: stable by sent_at over the shares in block order)."""
    pairs = [pair for _, s, labels, _ in shares for pair in zip(s, labels, strict=True)]
    pairs.sort(key=itemgetter(0))
    return Counter(label for _, label in pairs[:limit])


class Feeders:
    """`chunks.chunks()` from `n` processes, each simulating every n-th block; per
    partition the same events in the same order."""

    def __init__(self, n: int, config: SimConfig, start_ms: int, limit: int | None,
                 partitions: list[int], schema_version: str = DEFAULT_MODE,
                 size: int = 4_000):
        if not usable(config, partitions):
            raise ValueError("this stream cannot be split by block: use one feeder")
        self.partitions = list(partitions)
        self.start_ms, self.limit, self.size = start_ms, limit, max(1, size)
        ctx = mp.get_context("spawn")
        self.queues = [ctx.Queue(maxsize=QUEUE_ITEMS) for _ in range(n)]
        first = start_ms // BLOCK_MS
        # the last block the feeders may simulate: with a limit, the main process moves it
        # on as it learns how many events a minute holds (near the end, no feeder
        # simulates blocks that will not be sent)
        self.last_block = ctx.RawValue("q", first + 2 * n - 1 if limit else 2**62)
        self.processes = [
            ctx.Process(target=_feeder_main, daemon=True,
                        args=(i, n, config, start_ms, q, self.last_block, os.getpid(),
                              schema_version, self.partitions))
            for i, q in enumerate(self.queues)
        ]
        for p in self.processes:
            p.start()

    def _block(self, i: int) -> Iterator[tuple]:
        """The minute shares of feeder i's next block."""
        while not isinstance(item := self._get(i), int):
            yield item

    def _get(self, i: int):
        q, process = self.queues[i], self.processes[i]
        while True:
            try:
                item = q.get(timeout=1.0)
            except queue_mod.Empty:
                # a feeder that died without its end marker must not hang the producer
                if not process.is_alive():
                    raise ClickstreamError(f"feeder process {i} died (exit code "
                                           f"{process.exitcode})") from None
                continue
            if isinstance(item, str):
                raise ClickstreamError(f"the event feeder process failed: {item}")
            return item

    def __iter__(self):
        if self.limit == 0:
            return
        pending: dict[int, list] = {}  # delivery minute -> shares, in block order
        block = self.start_ms // BLOCK_MS
        sent = 0
        n = len(self.queues)
        k = 0
        while True:
            for minute, *share in self._block(k % n):
                pending.setdefault(minute, []).append(share)
            k += 1
            shares = pending.pop(block, None)  # final: no later block delivers in it
            minute_start = block * BLOCK_MS
            block += 1
            if not shares:
                continue
            total = sum(len(s[0]) for s in shares)
            last = self.limit is not None and sent + total >= self.limit
            keep = (_counts_before([(None, *s) for s in shares], self.limit - sent)
                    if last else None)
            parts = {}
            for i in sorted({i for s in shares for i in s[2]}):
                merged = _merge([s[2][i] for s in shares if i in s[2]])
                if keep is not None:
                    c = keep.get(i, 0)
                    merged = tuple(x[:c] for x in merged)
                if len(merged[0]):
                    parts[self.partitions[i]] = merged
            count = sum(keep.values()) if keep is not None else total
            yield from self._cut(parts, count, minute_start)
            sent += count
            if last:
                return
            if self.limit is not None:  # the blocks still needed, from this minute's events
                needed = (self.limit - sent) / max(count, 1) * 1.1 + 1
                self.last_block.value = block + min(int(needed) + 1, 2**40)

    def _cut(self, parts: dict, count: int, minute_start: int):
        """A minute's parts as chunks of about `size` events, by time."""
        pieces = max(1, -(-count // self.size))
        at = dict.fromkeys(parts, 0)
        for j in range(1, pieces + 1):
            out = {}
            n = 0
            last = minute_start
            for p, (sents, keys, values) in parts.items():
                a = at[p]
                b = len(sents) if j == pieces else bisect_left(
                    sents, minute_start + j * BLOCK_MS // pieces, a)
                if b > a:
                    out[p] = (keys[a:b], values[a:b])
                    n += b - a
                    last = max(last, sents[b - 1])
                    at[p] = b
            if n:
                yield Chunk(n, last, out)

    def stop(self) -> None:
        for p in self.processes:
            if p.is_alive():
                p.terminate()
        for p in self.processes:
            p.join(timeout=5)
        for q in self.queues:
            q.cancel_join_thread()
