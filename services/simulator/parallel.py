"""JSON lines from several processes, byte for byte those of one (`clickstream simulate
--workers N`).

Each simulated minute is seeded by (seed, minute) alone, so worker processes can simulate
and encode *chunks* of consecutive minutes independently (`Simulator.block_lines`: each
row as its (sent_at, line) pair). What one process does with the rows
(`delivery.in_time_order`) is: put each row in the bucket of its delivery minute, in
generation order, and hand a bucket out, stably sorted by `sent_at`, once its own minute has
been generated. Here a worker sorts its chunk's share of each bucket stably; the parent
merges the shares of a bucket in chunk order (stable, so ties keep generation order: the
same list as one process). Most of a bucket is one chunk's share, so the parent splices the
few lines of the others into that share's blob (`_final_blob`) rather than sorting every
line again. The out-of-order shuffle draws from one generator over the whole stream, so
the parent applies it, bucket after bucket, to the encoded lines. No option needs a
fallback.

Chunks are submitted a few at a time (bounded memory, unlike `Pool.imap` over an endless
stream), and the parent writes each bucket as soon as it is final. Towards the end they
shrink to the minutes still needed (estimated from the lines per minute so far): chunks
already running when the last line is written are simulated for nothing. The lines
themselves do not go back through the result pipe (pickled, piped and unpickled: about
0.9 us per line of copies): each chunk in flight has a slot of an anonymous shared mapping
made before the workers fork, and the result says where its blobs are. The workers are a
`ProcessPoolExecutor`, not a `multiprocessing.Pool`: `Pool.terminate()` with chunks still in
flight can deadlock (a worker blocked writing its result into a full pipe holds the result
queue's lock that `terminate` needs; seen in CI), while the executor's shutdown lets running
chunks finish, drops queued ones and keeps reading results until the workers exit.
"""

from __future__ import annotations

import math
import mmap
import multiprocessing
import os
import random
import signal
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import accumulate
from operator import itemgetter
from typing import BinaryIO

from services.simulator.delivery import BLOCK_MS
from services.simulator.lines import RowLines, SessionLines, line_encoder
from services.simulator.model import SimConfig, Simulator
from services.simulator.noise import shuffle_some
from services.simulator.versions import DEFAULT_MODE
from shared import signals

CHUNK_ROWS = 10_000  # rows per task: amortises a round trip; smaller stays in the CPU caches
IN_FLIGHT_PER_WORKER = 2
SLOT_BYTES = 32 << 20  # shared memory per chunk in flight (10k lines take about 8 MiB)
END_MARGIN = 1.1  # blocks simulated at the end: those estimated needed, and 10% more

# the forked workers' state, set by the parent before the pool starts (inherited, so the
# population and catalogue are built once)
_sim: Simulator | None = None
_encoder: SessionLines | RowLines | None = None
_not_before = 0
_slots: mmap.mmap | None = None  # shared memory, a slot per chunk in flight


def default_workers() -> int:
    return os.cpu_count() or 1


def _worker_init() -> None:
    # the parent alone handles Ctrl-C / SIGHUP and stops the pool; SIGTERM (from it, or
    # from the kernel when it dies) ends a worker at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.die_with_parent()


def _chunk(first_block: int, blocks: int, slot: int) -> list[tuple[int, array, array, object]]:
    """(delivery minute, sent_at of each line, where each line ends, the lines) for the rows
    of `blocks` blocks from `first_block`, minute after minute, each share stably sorted.
    The lines of a share are one newline-terminated blob, which the parent mostly writes as
    it is; line j ends (newline included) at `ends[j]`. The blobs go into the shared
    memory `slot` (given as (offset, length) in it), or, if they do not fit, in the result."""
    pairs: list[tuple[int, bytes]] = []
    for block in range(first_block, first_block + blocks):
        pairs += _sim.block_lines(block, _encoder, _not_before)
    # one stable sort of the chunk by sent_at is each minute's share stably sorted, minute
    # after minute; then every step is a C loop over the chunk (bucketing line by line and
    # sorting each bucket cost 1.0 us per line, this 0.6)
    pairs.sort(key=itemgetter(0))
    sents = array("q", map(itemgetter(0), pairs))
    all_lines = list(map(itemgetter(1), pairs))
    out = []
    size = 0
    a = 0
    while a < len(sents):
        minute = sents[a] // BLOCK_MS
        b = bisect_left(sents, (minute + 1) * BLOCK_MS, a)
        lines = all_lines[a:b]
        ends = array("q", accumulate(map(len, lines)))
        out.append((minute, sents[a:b], ends, lines))
        size += ends[-1]
        a = b
    if size <= SLOT_BYTES:
        # the bytes through shared memory, not the result's pipe: that pickles and copies
        # each blob four times, a third of a microsecond per line in the worker and as
        # much in the parent
        at = slot * SLOT_BYTES
        for k, (minute, sents, ends, lines) in enumerate(out):
            _slots[at:at + ends[-1]] = b"".join(lines)
            out[k] = (minute, sents, ends, (at, ends[-1]))
            at += ends[-1]
    else:
        out = [(minute, sents, ends, b"".join(lines)) for minute, sents, ends, lines in out]
    return out


def _lines(blob) -> list[bytes]:
    # no payload holds a newline (JSON, or cut JSON, or HTML)
    return bytes(blob).split(b"\n")[:-1]


def _final_lines(shares: list[tuple[array, array, bytes]]) -> list[bytes]:
    """One bucket's lines from the shares of successive chunks (in chunk order)."""
    if len(shares) == 1:
        return _lines(shares[0][2])
    pairs = [pair for sents, _, blob in shares
             for pair in zip(sents, _lines(blob), strict=True)]
    pairs.sort(key=itemgetter(0))  # stable: ties stay in generation order
    return [line for _, line in pairs]


def _final_blob(shares: list[tuple[array, array, bytes]]) -> bytes:
    """`_final_lines` as one blob, made by splicing: most of a bucket comes from one chunk
    (its own minute's), the few lines of the others (sessions that started earlier, or
    late sends) go in between its lines, found by bisection. A line of an earlier chunk
    goes before the base's lines sent at the same time, one of a later chunk after them:
    generation order, as the stable sort keeps it."""
    if len(shares) == 1:
        return shares[0][2]
    base = max(range(len(shares)), key=lambda k: len(shares[k][0]))
    sents, ends, blob = shares[base]
    others = sorted(((sent, k, line) for k, (s, _, b) in enumerate(shares) if k != base
                     for sent, line in zip(s, _lines(b), strict=True)),
                    key=itemgetter(0, 1))  # stable: ties of a share in generation order
    pieces = []
    view = memoryview(blob)
    done = 0  # bytes of the base written so far
    for sent, k, line in others:
        at = bisect_left(sents, sent) if k < base else bisect_right(sents, sent)
        offset = ends[at - 1] if at else 0  # where the base's line `at` starts
        if offset > done:
            pieces.append(view[done:offset])
            done = offset
        pieces += (line, b"\n")
    pieces.append(view[done:])
    return b"".join(pieces)


def run_simulate_parallel(config: SimConfig, start_ms: int, n_events: int, out: BinaryIO,
                          workers: int, schema_version: str = DEFAULT_MODE) -> int:
    """`run.run_simulate` with `workers` processes; the same bytes."""
    global _sim, _encoder, _not_before, _slots
    sim = Simulator(config)
    _ = (sim.population, sim.catalogue, sim._tables)  # built once, inherited by the workers
    _sim, _encoder, _not_before = sim, line_encoder(schema_version), start_ms
    chunk_blocks = max(1, round(CHUNK_ROWS / (config.events_per_second * 60)))
    ooo = config.noise.out_of_order_rate
    orng = random.Random(f"{config.seed}:{start_ms}:order") if ooo else None

    pending: dict[int, list] = {}  # delivery minute -> shares received so far
    next_minute = next_block = start_ms // BLOCK_MS
    in_flight: deque = deque()  # (first block, blocks, slot, future), in block order
    seen_blocks = seen_lines = 0  # of the chunks received: lines per block, to plan the end
    written = 0
    in_flight_max = workers * IN_FLIGHT_PER_WORKER
    # anonymous and shared, inherited by the forked workers; freed when the last one exits
    _slots = mmap.mmap(-1, in_flight_max * SLOT_BYTES)
    slots = memoryview(_slots)
    free_slots = list(range(in_flight_max))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_init)

    def submit() -> bool:
        """Submit the next chunk, unless those in flight will do: near the end, chunks
        shrink to the blocks still needed (estimated, with a margin), so that the last
        ones are not simulated for nothing."""
        nonlocal next_block
        if len(in_flight) >= in_flight_max:
            return False
        blocks = chunk_blocks
        if seen_lines and in_flight:
            needed = (n_events - written) * seen_blocks / seen_lines * END_MARGIN + 1
            blocks = min(blocks, math.ceil(next_minute + needed - next_block))
            if blocks < 1:
                return False
        slot = free_slots.pop()
        in_flight.append((next_block, blocks, slot,
                          pool.submit(_chunk, next_block, blocks, slot)))
        next_block += blocks
        return True

    try:
        while submit():
            pass
        while written < n_events:
            first_block, blocks, slot, future = in_flight.popleft()
            # no later chunk delivers before its own first minute: the buckets before are final
            final_before = first_block + blocks
            for minute, sents, ends, blob in future.result():
                if isinstance(blob, tuple):  # in the slot, which the next chunk reuses
                    at, size = blob
                    blob = slots[at:at + size] if minute < final_before else _slots[at:at + size]
                pending.setdefault(minute, []).append((sents, ends, blob))
                seen_lines += len(sents)
            seen_blocks += blocks
            for minute in range(next_minute, final_before):
                shares = pending.pop(minute, None)
                if not shares or written >= n_events:
                    continue
                n = sum(len(share[0]) for share in shares)
                if not ooo and n <= n_events - written:
                    out.write(_final_blob(shares))  # mostly the worker's blob as it is
                    written += n
                    continue
                lines = _final_lines(shares)
                if ooo:
                    shuffle_some(orng, lines, ooo)
                lines = lines[: n_events - written]
                out.write(b"\n".join(lines) + b"\n")
                written += len(lines)
            next_minute = final_before
            free_slots.append(slot)
            while submit():
                pass
        out.flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _slots = None  # unmapped once the last view of it is gone
    return written
