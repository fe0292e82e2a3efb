"""The reader's cache: which parts of a table can still change, and frames kept until then.

Windows that started more than `SETTLE` before now no longer change (longest window 1 h +
the processor's watermark, 10 min by default, + sessions that run up to an hour), so each
day partition is split at the settle point: the settled segment is read once and kept for
`SETTLED_TTL` seconds (re-read then, so a batch re-run shows); the live segment is read on
every refresh. The `sessions` table has no time column: its days are whole partitions,
settled once the day is, and the live day is kept `SESSIONS_TTL` seconds.

    plan = plan_reads(table, q_start, end, now)   # pure: which segments, cached or not
    cache = FrameCache(clock=time.monotonic)
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import pandas as pd

from shared.tables import Table

SETTLE = dt.timedelta(hours=3)
SETTLED_TTL = 300.0
SESSIONS_TTL = 30.0
MAX_ENTRIES = 2000  # expired entries are dropped once the cache holds more than this


@dataclass(frozen=True)
class Segment:
    """One query's worth of a table: its parameters and its cache key (None: never cached)."""

    params: tuple
    key: Hashable | None
    ttl: float = 0.0

    @property
    def settled(self) -> bool:
        return self.key is not None and self.ttl == SETTLED_TTL


def plan_reads(table: Table, q_start: dt.datetime, end: dt.datetime,
               now: dt.datetime) -> list[Segment]:
    """The segments that cover [q_start, end) of `table`, oldest first."""
    cut = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
    out = []
    for params in table.range_params(q_start, end):
        day = params[0]
        d0 = dt.datetime.combine(day, dt.time(), dt.UTC)
        d1 = d0 + dt.timedelta(days=1)
        if table.time_column is None:  # whole day partitions (sessions)
            out.append(Segment((day,), (table.name, day, d1 <= cut),
                               SETTLED_TTL if d1 <= cut else SESSIONS_TTL))
            continue
        if d0 < cut:
            seg_end = min(d1, cut)
            out.append(Segment((day, d0, seg_end), (table.name, day, seg_end), SETTLED_TTL))
        if d1 > cut and end > max(d0, cut):
            out.append(Segment((day, max(d0, cut), min(d1, end)), None))
    return out


@dataclass
class _Entry:
    expires: float
    frame: pd.DataFrame


@dataclass
class FrameCache:
    """Frames by key until they expire (thread-safe; `clock` is injectable for tests)."""

    clock: Callable[[], float] = time.monotonic
    _entries: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: Hashable) -> pd.DataFrame | None:
        with self._lock:
            hit = self._entries.get(key)
        return hit.frame if hit is not None and hit.expires > self.clock() else None

    def put(self, key: Hashable, frame: pd.DataFrame, ttl: float) -> None:
        self.put_until(key, frame, self.clock() + ttl)

    def put_until(self, key: Hashable, frame: pd.DataFrame, expires: float) -> None:
        with self._lock:
            self._entries[key] = _Entry(expires, frame)
            if len(self._entries) > MAX_ENTRIES:
                t = self.clock()
                for k in [k for k, v in self._entries.items() if v.expires <= t]:
                    del self._entries[k]

    def expires(self, key: Hashable, default: float = 0.0) -> float:
        """When `key` expires (`default` if it was dropped meanwhile)."""
        with self._lock:
            hit = self._entries.get(key)
            return default if hit is None else hit.expires
