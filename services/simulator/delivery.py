"""Rows generated block by block -> rows in time order, a minute at a time.

A block's sessions have events (and deliveries) at and after the block's start, spread over
later blocks. So rows wait in buckets by the block of their time; once block `b` has been
generated no later session can add to bucket `b`, which is final: sorted, it is handed
out. The same bucketing serves delivery order (by `sent_at`) and event-time order (by
`timestamp`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from operator import itemgetter

BLOCK_MS = 60_000  # one simulated minute per independently seeded block


def in_time_order(rows_of_block: Callable[[int], list], first_block: int, time_pos: int,
                  end_ms: int | None = None, drain: bool = True) -> Iterator[list]:
    """Lists of rows sorted by `row[time_pos]`, one per block of that time, in order.

    Generates `rows_of_block(b)` for b = `first_block`, ... while b starts before `end_ms`
    (for ever without). With `drain`, the buckets still waiting after the last generated
    block follow (deliveries after the end); without, they are dropped.
    """
    by_time = itemgetter(time_pos)
    buckets: dict[int, list] = {}
    block = first_block
    while end_ms is None or block * BLOCK_MS < end_ms or (drain and buckets):
        if end_ms is None or block * BLOCK_MS < end_ms:
            for row in rows_of_block(block):
                b = row[time_pos] // BLOCK_MS
                bucket = buckets.get(b)
                if bucket is None:
                    buckets[b] = [row]
                else:
                    bucket.append(row)
        ready = buckets.pop(block, None)
        block += 1
        if ready:
            ready.sort(key=by_time)
            yield ready
