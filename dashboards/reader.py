"""The dashboard's only Cassandra client: rows of the asked tables in, pandas frames out.

One `Reader` per server process: one shared session, one prepared range SELECT per table
(`Table.select_range`), one query per UTC day partition, run concurrently. Closed windows
are kept by `dashboards.cache`; only the segments that can still change are read on every
refresh. No filtering query, never a full scan.

    reader = Reader(connect=lambda: connect(settings), keyspace="clickstream")
    snap = reader.snapshot("stream", "24 hours", tables={"time_agg", "sessions"})
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pandas as pd

from dashboards.cache import FrameCache, plan_reads
from dashboards.ranges import RANGES, query_start, range_bounds, table_for, utc
from shared import tables as tb
from shared.errors import ClickstreamError
from shared.tables import Table

log = logging.getLogger(__name__)

ALL_PROBE_TTL = 300.0  # seconds the "all" range's earliest-day probe result is reused
QUERY_TIMEOUT = 10.0
CONCURRENCY = 16

#: the tables the dashboard can show, by base name (the mode picks `x` or `x_batch`)
VIEW_TABLES: tuple[str, ...] = tuple(t.name for t in tb.ANALYTICS)
QUALITY = "ingest_quality"  # read with every snapshot's KPI tables when asked for


class DataUnavailable(ClickstreamError):
    """Cassandra did not answer; the app shows a banner and retries on the next refresh."""


def view_columns(table: Table) -> tuple[str, ...]:
    """Columns to read: `day` is redundant with the time column (and slow to decode)."""
    if table.time_column:
        return tuple(c for c in table.column_names if c != tb.DAY)
    return table.column_names


def empty_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=table.column(c).pandas_dtype)
                         for c in view_columns(table)})


def rows_to_frame(table: Table, rows: list[tuple]) -> pd.DataFrame:
    """Rows (tuples in `view_columns` order) -> a typed DataFrame; dates as `datetime.date`."""
    cols = view_columns(table)
    if not rows:
        return empty_frame(table)
    df = pd.DataFrame.from_records(rows, columns=list(cols))
    for c in cols:
        kind = table.cql_type(c)
        if kind == "date":  # the driver's cassandra.util.Date
            df[c] = [d.date() if hasattr(d, "date") else d for d in df[c]]
        elif kind == "timestamp":
            df[c] = pd.to_datetime(df[c])
        elif kind in ("bigint", "int"):
            df[c] = df[c].fillna(0).astype("int64")
    return df


@dataclass
class Snapshot:
    """What one refresh read: the asked tables' rows overlapping [start, end)."""

    mode: str
    range_label: str
    start: dt.datetime
    end: dt.datetime
    frames: dict[str, pd.DataFrame]  # base table name -> rows (ingest_quality: this mode's)
    read_seconds: float = 0.0
    queries: int = 0
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def frame(self, base: str) -> pd.DataFrame:
        try:
            return self.frames[base]
        except KeyError:
            raise KeyError(f"table {base!r} was not read for this snapshot "
                           f"(read: {sorted(self.frames)})") from None

    def has(self, tables: Iterable[str]) -> bool:
        return all(t in self.frames for t in tables)

    def memo(self, key: str, compute: Callable):
        """`compute()` once per snapshot (views that several charts and KPIs share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def empty(self) -> bool:
        return all(df.empty for name, df in self.frames.items() if name != QUALITY)


@dataclass
class Reader:
    """Reads snapshots through one shared session (connected lazily, rebuilt after an outage).

    `connect` is a zero-argument callable returning (cluster, session); thread-safe.
    """

    connect: Callable | None
    keyspace: str
    clock: Callable[[], float] = time.monotonic
    cache: FrameCache | None = None
    _cluster: object = None
    _session: object = None
    _prepared: dict = field(default_factory=dict)
    _earliest: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self):
        if self.cache is None:
            self.cache = FrameCache(clock=self.clock)

    # ------------------------------------------------------------------ session
    def session(self):
        with self._lock:
            if self._session is None:
                try:
                    self._cluster, self._session = self.connect()
                except Exception as e:  # noqa: BLE001 - any driver error means "not reachable"
                    raise DataUnavailable(f"Cassandra is not reachable: {_short(e)}") from e
                from cassandra.cluster import EXEC_PROFILE_DEFAULT
                from cassandra.query import tuple_factory

                # this session is ours alone: plain tuples (cheapest to build) and a timeout
                profile = self._session.get_execution_profile(EXEC_PROFILE_DEFAULT)
                profile.row_factory = tuple_factory
                profile.request_timeout = QUERY_TIMEOUT
                self._session.default_fetch_size = 20_000
                self._prepared.clear()
            return self._session

    def reset(self) -> None:
        """Drop the session after an outage: the next read reconnects from scratch."""
        with self._lock:
            cluster, self._cluster, self._session = self._cluster, None, None
            self._prepared.clear()
        if cluster is not None:
            threading.Thread(target=cluster.shutdown, daemon=True).start()

    def close(self) -> None:
        with self._lock:
            cluster, self._cluster, self._session = self._cluster, None, None
        if cluster is not None:
            cluster.shutdown()

    def _statement(self, session, key: str, cql: str):
        stmt = self._prepared.get(key)
        if stmt is None:
            try:
                stmt = self._prepared[key] = session.prepare(cql)
            except Exception as e:  # noqa: BLE001
                self.reset()
                raise DataUnavailable(f"Cassandra query failed: {_short(e)}") from e
        return stmt

    def _run(self, stmt, params: list[tuple]) -> list[list[tuple]]:
        from cassandra.concurrent import execute_concurrent_with_args

        if not params:
            return []
        session = self.session()
        try:
            results = execute_concurrent_with_args(session, stmt, params,
                                                   concurrency=CONCURRENCY,
                                                   raise_on_first_error=True)
            return [list(r) for _ok, r in results]
        except Exception as e:  # noqa: BLE001 - driver errors: NoHostAvailable, timeouts...
            self.reset()
            raise DataUnavailable(f"Cassandra query failed: {_short(e)}") from e

    # ------------------------------------------------------------------ reads
    def read(self, table: Table, start: dt.datetime, end: dt.datetime,
             now: dt.datetime | None = None) -> tuple[pd.DataFrame, int]:
        """Rows of `table` overlapping [start, end): (frame, number of queries run)."""
        start, end = utc(start), utc(end)
        now = utc(now or dt.datetime.now(dt.UTC))
        stmt = self._statement(self.session(), table.name,
                               table.select_range(self.keyspace, view_columns(table)))
        q_start = query_start(table, start)
        plan = plan_reads(table, q_start, end, now)
        settled = [s for s in plan if s.settled]
        # The settled segments are also kept joined: a 90-day range would otherwise
        # concatenate 90 cached frames per table on every refresh.
        join_key = (table.name, "joined", settled[0].key, settled[-1].key) if settled else None
        joined = self.cache.get(join_key) if join_key else None
        frames: list[pd.DataFrame] = [] if joined is None else [joined]
        todo = []
        # the segments' frames as found or read now: one found in the cache may expire
        # there while the queries run (seen at load 19), so the join never asks it again
        got: dict = {}
        for seg in plan:
            if seg.settled and joined is not None:
                continue
            hit = self.cache.get(seg.key) if seg.key is not None else None
            if hit is None:
                todo.append(seg)
            else:
                got[seg.key] = hit
                if not seg.settled:
                    frames.append(hit)
        results = self._run(stmt, [s.params for s in todo])
        for seg, rows in zip(todo, results, strict=True):
            frame = rows_to_frame(table, rows)
            if seg.key is not None:
                self.cache.put(seg.key, frame, seg.ttl)
                got[seg.key] = frame
            if not seg.settled:
                frames.append(frame)
        if settled and joined is None:
            parts = [got[s.key] for s in settled]
            nonempty = [f for f in parts if not f.empty]
            joined = pd.concat(nonempty, ignore_index=True) if nonempty else empty_frame(table)
            self.cache.put_until(join_key, joined, min(self.cache.expires(s.key, 0.0)
                                                       for s in settled))
            frames.insert(0, joined)
        frames = [f for f in frames if not f.empty]
        df = pd.concat(frames, ignore_index=True) if frames else empty_frame(table)
        if table.time_column and not df.empty:
            col = df[table.time_column]
            lo = pd.Timestamp(q_start.replace(tzinfo=None))
            hi = pd.Timestamp(end.replace(tzinfo=None))
            df = df[(col >= lo) & (col < hi)].reset_index(drop=True)
        return df, len(results)

    def earliest_day(self, mode: str, now: dt.datetime | None = None) -> dt.date | None:
        """The earliest UTC day (within ALL_MAX_DAYS) whose data_quality partition has a row."""
        from dashboards.ranges import ALL_MAX_DAYS

        now = utc(now or dt.datetime.now(dt.UTC))
        hit = self._earliest.get(mode)
        t = self.clock()
        if hit is not None and hit[0] > t:
            return hit[1]
        table = table_for("data_quality", mode)
        stmt = self._statement(
            self.session(), "probe:" + table.name,
            f"SELECT {tb.DAY} FROM {self.keyspace}.{table.name} WHERE {tb.DAY} = ? LIMIT 1")
        days = [now.date() - dt.timedelta(days=i) for i in range(ALL_MAX_DAYS)]
        results = self._run(stmt, [(d,) for d in days])
        found = [d for d, rows in zip(days, results, strict=True) if rows]
        earliest = min(found) if found else None
        self._earliest[mode] = (t + ALL_PROBE_TTL, earliest)
        return earliest

    def snapshot(self, mode: str, range_label: str, tables: Iterable[str] = VIEW_TABLES,
                 now: dt.datetime | None = None) -> Snapshot:
        """The `tables` (base names; `ingest_quality` gives this mode's runs) for a range
        ending now."""
        t0 = time.perf_counter()
        now = utc(now or dt.datetime.now(dt.UTC))
        earliest = self.earliest_day(mode, now) if RANGES.get(range_label, 0) is None else None
        start, end = range_bounds(range_label, now, earliest)
        frames, queries = {}, 0
        for base in sorted(set(tables)):
            if base == QUALITY:
                quality, n = self.read(tb.INGEST_QUALITY, start, end, now)
                is_batch = quality["run_id"].astype(str).str.startswith(tb.BATCH_RUN_PREFIX)
                frames[base] = quality[is_batch if mode == "batch" else ~is_batch] \
                    .reset_index(drop=True)
            else:
                frames[base], n = self.read(table_for(base, mode), start, end, now)
            queries += n
        return Snapshot(mode, range_label, start, end, frames, time.perf_counter() - t0,
                        queries)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (f"{type(e).__name__}: {text[0]}" if text else type(e).__name__)[:300]
