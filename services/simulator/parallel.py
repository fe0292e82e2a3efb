"""JSON lines from several processes, byte for byte those of one (`clickstream simulate
--workers N`).

Each simulated minute is seeded by (seed, minute) alone, so worker processes can simulate
and encode *chunks* of consecutive minutes independently (`Simulator.block_lines`: each
row as its (sent_at, line) pair). What one process does with the
rows (`delivery.in_time_order`) is: put each row in the bucket of its delivery minute, in
generation order, and hand a bucket out, stably sorted by `sent_at`, once its own minute has
been generated. Here a worker sorts its chunk's share of each bucket stably; the parent
concatenates the shares of a bucket in chunk order and sorts again (stable, so ties keep
generation order: the same list as one process). The out-of-order shuffle draws from one
generator over the whole stream, so the parent applies it, bucket after bucket, to the
encoded lines. No option needs a fallback.

Chunks are submitted a few at a time (bounded memory, unlike `Pool.imap` over an endless
stream), and the parent writes each bucket as soon as it is final. The workers are a
`ProcessPoolExecutor`, not a `multiprocessing.Pool`: `Pool.terminate()` with chunks still in
flight can deadlock (a worker blocked writing its result into a full pipe holds the result
queue's lock that `terminate` needs; seen in CI), while the executor's shutdown lets running
chunks finish, drops queued ones and keeps reading results until the workers exit.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
from array import array
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from itertools import count
from operator import itemgetter
from typing import BinaryIO

from services.simulator.delivery import BLOCK_MS
from services.simulator.lines import RowLines, SessionLines, line_encoder
from services.simulator.model import SimConfig, Simulator
from services.simulator.noise import shuffle_some
from services.simulator.versions import DEFAULT_MODE
from shared import signals

CHUNK_ROWS = 20_000  # rows per task: big enough to amortise a round trip, small in memory
IN_FLIGHT_PER_WORKER = 2

# the forked workers' state, set by the parent before the pool starts (inherited, so the
# population and catalogue are built once)
_sim: Simulator | None = None
_encoder: SessionLines | RowLines | None = None
_not_before = 0
_blocks_per_chunk = 1


def default_workers() -> int:
    return os.cpu_count() or 1


def _worker_init() -> None:
    # the parent alone handles Ctrl-C / SIGHUP and stops the pool; SIGTERM (from it, or
    # from the kernel when it dies) ends a worker at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signals.die_with_parent()


def _chunk(first_block: int) -> list[tuple[int, array, bytes]]:
    """(delivery minute, sent_at of each line, the lines) for the rows of the blocks of the
    chunk starting at `first_block`, minute after minute, each share stably sorted. The
    lines come as one newline-terminated blob: the parent mostly writes it as it is."""
    by_minute: dict[int, list] = {}
    for block in range(first_block, first_block + _blocks_per_chunk):
        for pair in _sim.block_lines(block, _encoder, _not_before):
            minute = pair[0] // BLOCK_MS
            share = by_minute.get(minute)
            if share is None:
                by_minute[minute] = [pair]
            else:
                share.append(pair)
    out = []
    for minute in sorted(by_minute):
        pairs = by_minute[minute]
        pairs.sort(key=itemgetter(0))
        blob = b"\n".join([line for _, line in pairs]) + b"\n"
        out.append((minute, array("q", [sent for sent, _ in pairs]), blob))
    return out


def _lines(blob: bytes) -> list[bytes]:
    return blob.split(b"\n")[:-1]  # no payload holds a newline (JSON, or cut JSON, or HTML)


def _final_lines(shares: list[tuple[array, bytes]]) -> list[bytes]:
    """One bucket's lines from the shares of successive chunks (in chunk order)."""
    if len(shares) == 1:
        return _lines(shares[0][1])
    pairs = [pair for sents, blob in shares for pair in zip(sents, _lines(blob), strict=True)]
    pairs.sort(key=itemgetter(0))  # stable: ties stay in generation order
    return [line for _, line in pairs]


def run_simulate_parallel(config: SimConfig, start_ms: int, n_events: int, out: BinaryIO,
                          workers: int, schema_version: str = DEFAULT_MODE) -> int:
    """`run.run_simulate` with `workers` processes; the same bytes."""
    global _sim, _encoder, _not_before, _blocks_per_chunk
    sim = Simulator(config)
    _ = (sim.population, sim.catalogue, sim._tables)  # built once, inherited by the workers
    _sim, _encoder, _not_before = sim, line_encoder(schema_version), start_ms
    _blocks_per_chunk = max(1, round(CHUNK_ROWS / (config.events_per_second * 60)))
    ooo = config.noise.out_of_order_rate
    orng = random.Random(f"{config.seed}:{start_ms}:order") if ooo else None

    first = start_ms // BLOCK_MS
    starts = count(first, _blocks_per_chunk)
    pending: dict[int, list] = {}  # delivery minute -> shares received so far
    next_minute = first
    written = 0
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_init)
    try:
        in_flight = deque(pool.submit(_chunk, next(starts))
                          for _ in range(workers * IN_FLIGHT_PER_WORKER))
        while written < n_events:
            chunk = in_flight.popleft().result()
            in_flight.append(pool.submit(_chunk, next(starts)))
            for minute, sents, blob in chunk:
                pending.setdefault(minute, []).append((sents, blob))
            # no later chunk delivers before its own first minute: the buckets before are final
            final_before = next_minute + _blocks_per_chunk
            for minute in range(next_minute, final_before):
                shares = pending.pop(minute, None)
                if not shares or written >= n_events:
                    continue
                if len(shares) == 1 and not ooo and len(shares[0][0]) <= n_events - written:
                    out.write(shares[0][1])  # the common case: as the worker wrote it
                    written += len(shares[0][0])
                    continue
                lines = _final_lines(shares)
                if ooo:
                    shuffle_some(orng, lines, ooo)
                lines = lines[: n_events - written]
                out.write(b"\n".join(lines) + b"\n")
                written += len(lines)
            next_minute = final_before
        out.flush()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return written
