"""The dashboard's data layer: Cassandra rows in, pandas DataFrames out. No Panel here.

Two halves:

* `Reader` -- the only thing that talks to Cassandra. One per server process, one shared
  session, one prepared range SELECT per table (`Table.select_range`), one query per UTC
  day partition, run concurrently. Whole past days are cached (they no longer change);
  the partitions that can still change are read on every refresh. No filtering query,
  never a full scan.
* Pure functions `Snapshot -> DataFrame / dict` (`kpis`, `funnel`, `top_products`, ...)
  that the app renders and the unit tests check on hand-made frames.

Time-range semantics: a range is [start, end) with end = now. A window *overlaps* the range
when window_start > start - window_seconds, so a 15-minute range still shows the current
hour of an hourly table. "all" starts at the earliest UTC day with data within the last
`ALL_MAX_DAYS` days, found by a cheap `LIMIT 1` probe of each day partition of
`data_quality` (every event minute has a row there), cached for `EARLIEST_TTL` seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field

import pandas as pd

from services.errors import ClickstreamError
from shared import tables as tb
from shared.tables import Table

log = logging.getLogger(__name__)

MODES = ("stream", "batch")
#: label -> length of the range (None: "all")
RANGES: dict[str, dt.timedelta | None] = {
    "15 min": dt.timedelta(minutes=15),
    "1 hour": dt.timedelta(hours=1),
    "24 hours": dt.timedelta(hours=24),
    "7 days": dt.timedelta(days=7),
    "all": None,
}
DEFAULT_RANGE = "24 hours"
ALL_MAX_DAYS = 366  # "all" never looks back further than this
EARLIEST_TTL = 300.0  # seconds the earliest-day probe result is reused
# Windows that started more than SETTLE ago no longer change (longest window 1 h + the
# processor's watermark, 10 min by default, + sessions that run up to an hour)...
SETTLE = dt.timedelta(hours=3)
SETTLED_TTL = 300.0  # ...so they are cached, and re-read this often (a batch re-run shows)
SESSIONS_TTL = 30.0  # the sessions table has no time column: whole days, read at most this often
QUERY_TIMEOUT = 10.0
CONCURRENCY = 16

#: the tables the dashboard reads, by base name (the mode picks `x` or `x_batch`)
VIEW_TABLES: tuple[str, ...] = tuple(t.name for t in tb.ANALYTICS)
NO_DATA = "no data yet — run `make stream`"


class DataUnavailable(ClickstreamError):
    """Cassandra did not answer; the app shows a banner and retries on the next refresh."""


def table_for(base: str, mode: str) -> Table:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return tb.table(base if mode == "stream" else base + "_batch")


def utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def range_bounds(label: str, now: dt.datetime,
                 earliest_day: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a range label; "all" starts at `earliest_day` (today if None)."""
    if label not in RANGES:
        raise ValueError(f"time range must be one of {list(RANGES)}, got {label!r}")
    now = utc(now)
    span = RANGES[label]
    if span is not None:
        return now - span, now
    floor = (now - dt.timedelta(days=ALL_MAX_DAYS - 1)).date()
    day = max(earliest_day or now.date(), floor)
    return dt.datetime.combine(day, dt.time(), dt.UTC), now


def query_start(table: Table, start: dt.datetime) -> dt.datetime:
    """The earliest window_start whose window overlaps [start, ...)."""
    if not table.window_seconds or table.time_column is None:
        return start
    return start - dt.timedelta(seconds=table.window_seconds) + dt.timedelta(milliseconds=1)


def time_bucket(start: dt.datetime, end: dt.datetime) -> str:
    """A pandas frequency giving at most ~300 points over [start, end) for time series."""
    minutes = (end - start).total_seconds() / 60
    for freq, size in (("1min", 1), ("5min", 5), ("15min", 15), ("1h", 60), ("6h", 360)):
        if minutes / size <= 300:
            return freq
    return "1D"


def view_columns(table: Table) -> tuple[str, ...]:
    """Columns to read: `day` is redundant with the time column (and slow to decode)."""
    if table.time_column:
        return tuple(c for c in table.column_names if c != tb.DAY)
    return table.column_names


def empty_frame(table: Table) -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_dtype(table.cql_type(c)))
                         for c in view_columns(table)})


def _dtype(cql_type: str) -> str:
    return {"bigint": "int64", "int": "int64", "timestamp": "datetime64[ns]",
            "boolean": "bool", "date": "object"}.get(cql_type, "object")


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


# --------------------------------------------------------------------------- snapshot
@dataclass
class Snapshot:
    """What one refresh read: every view table's rows overlapping [start, end)."""

    mode: str
    range_label: str
    start: dt.datetime
    end: dt.datetime
    frames: dict[str, pd.DataFrame]  # base table name -> rows
    quality: pd.DataFrame  # ingest_quality rows of this mode
    read_seconds: float = 0.0
    queries: int = 0
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def frame(self, base: str) -> pd.DataFrame:
        return self.frames[base]

    def memo(self, key: str, compute):
        """`compute()` once per snapshot (views that several charts and KPIs share)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    @property
    def empty(self) -> bool:
        return all(df.empty for df in self.frames.values())


@dataclass
class _Cached:
    expires: float
    frame: pd.DataFrame


@dataclass
class Reader:
    """Reads snapshots through one shared session (connected lazily, rebuilt after an outage).

    `connect` is a zero-argument callable returning (cluster, session); thread-safe.
    """

    connect: object
    keyspace: str
    clock: object = time.monotonic
    _cluster: object = None
    _session: object = None
    _prepared: dict = field(default_factory=dict)
    _cache: dict = field(default_factory=dict)
    _earliest: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
            stmt = self._prepared[key] = session.prepare(cql)
        return stmt

    # ------------------------------------------------------------------ raw reads
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

    def read(self, table: Table, start: dt.datetime, end: dt.datetime,
             now: dt.datetime | None = None) -> tuple[pd.DataFrame, int]:
        """Rows of `table` overlapping [start, end): (frame, number of queries run).

        Each day partition is read in two parts: windows older than the settle point
        (`SETTLE` before now, floored to the hour) are cached for `SETTLED_TTL` seconds;
        only the newer windows are read on every refresh.
        """
        start, end = utc(start), utc(end)
        now = utc(now or dt.datetime.now(dt.UTC))
        session = self.session()
        try:
            stmt = self._statement(session, table.name,
                                   table.select_range(self.keyspace, view_columns(table)))
        except Exception as e:  # noqa: BLE001
            self.reset()
            raise DataUnavailable(f"Cassandra query failed: {_short(e)}") from e
        q_start = query_start(table, start)
        cut = (now - SETTLE).replace(minute=0, second=0, microsecond=0)
        frames: list[pd.DataFrame] = []
        todo: list[tuple[tuple, object]] = []  # (params, cache key or None)
        settled: list[tuple[tuple, tuple]] = []  # (params, cache key) of settled segments
        t = self.clock()
        for params in table.range_params(q_start, end):
            day = params[0]
            d0 = dt.datetime.combine(day, dt.time(), dt.UTC)
            d1 = d0 + dt.timedelta(days=1)
            if table.time_column is None:  # whole day partitions (sessions)
                if d1 <= cut:
                    settled.append(((day,), (table.name, day, True)))
                    continue
                key = (table.name, day, False)  # a day that can still change
                hit = self._cache.get(key)
                if hit is not None and hit.expires > t:
                    frames.append(hit.frame)
                else:
                    todo.append(((day,), key))
                continue
            if d0 < cut:
                seg_end = min(d1, cut)
                settled.append(((day, d0, seg_end), (table.name, day, seg_end)))
            if d1 > cut and end > max(d0, cut):
                todo.append(((day, max(d0, cut), min(d1, end)), None))
        # The settled segments are also kept joined: a 90-day range would otherwise
        # concatenate 90 cached frames per table on every refresh.
        join_key = None
        if settled:
            join_key = (table.name, "joined", settled[0][1], settled[-1][1])
            joined = self._cache.get(join_key)
            if joined is not None and joined.expires > t:
                frames.append(joined.frame)
                join_key = None
            else:
                for params, key in settled:
                    hit = self._cache.get(key)
                    if hit is None or hit.expires <= t:
                        todo.append((params, key))
        results = self._run(stmt, [p for p, _ in todo])
        settled_keys = {key for _, key in settled}
        for (_params, key), rows in zip(todo, results, strict=True):
            frame = rows_to_frame(table, rows)
            if key not in settled_keys:  # settled ones are in the joined frame
                frames.append(frame)
            if key is not None:
                ttl = SETTLED_TTL if key[2] is not False else SESSIONS_TTL
                self._cache[key] = _Cached(t + ttl, frame)
        if join_key is not None:
            parts = [self._cache[key] for _, key in settled]
            nonempty = [c.frame for c in parts if not c.frame.empty]
            joined_frame = (pd.concat(nonempty, ignore_index=True) if nonempty
                            else empty_frame(table))
            self._cache[join_key] = _Cached(min(c.expires for c in parts), joined_frame)
            frames.append(joined_frame)
        frames = [f for f in frames if not f.empty]
        df = pd.concat(frames, ignore_index=True) if frames else empty_frame(table)
        if table.time_column and not df.empty:
            col = df[table.time_column]
            lo = pd.Timestamp(q_start.replace(tzinfo=None))
            hi = pd.Timestamp(end.replace(tzinfo=None))
            df = df[(col >= lo) & (col < hi)].reset_index(drop=True)
        self._evict(t)
        return df, len(results)

    def _evict(self, t: float) -> None:
        if len(self._cache) > 4 * len(tb.TABLES) * 8:
            for key in [k for k, v in self._cache.items() if v.expires <= t]:
                self._cache.pop(key, None)

    def earliest_day(self, mode: str, now: dt.datetime | None = None) -> dt.date | None:
        """The earliest UTC day (within ALL_MAX_DAYS) whose data_quality partition has a row."""
        now = utc(now or dt.datetime.now(dt.UTC))
        hit = self._earliest.get(mode)
        t = self.clock()
        if hit is not None and hit[0] > t:
            return hit[1]
        table = table_for("data_quality", mode)
        session = self.session()
        try:
            stmt = self._statement(
                session, "probe:" + table.name,
                f"SELECT {tb.DAY} FROM {self.keyspace}.{table.name} WHERE {tb.DAY} = ? LIMIT 1")
        except Exception as e:  # noqa: BLE001
            self.reset()
            raise DataUnavailable(f"Cassandra query failed: {_short(e)}") from e
        days = [now.date() - dt.timedelta(days=i) for i in range(ALL_MAX_DAYS)]
        results = self._run(stmt, [(d,) for d in days])
        found = [d for d, rows in zip(days, results, strict=True) if rows]
        earliest = min(found) if found else None
        self._earliest[mode] = (t + EARLIEST_TTL, earliest)
        return earliest

    def snapshot(self, mode: str, range_label: str,
                 now: dt.datetime | None = None) -> Snapshot:
        """Every view table (and this mode's ingest_quality rows) for a range ending now."""
        t0 = time.perf_counter()
        now = utc(now or dt.datetime.now(dt.UTC))
        earliest = self.earliest_day(mode, now) if RANGES.get(range_label, 0) is None else None
        start, end = range_bounds(range_label, now, earliest)
        frames, queries = {}, 0
        for base in VIEW_TABLES:
            frames[base], n = self.read(table_for(base, mode), start, end, now)
            queries += n
        quality, n = self.read(tb.INGEST_QUALITY, start, end, now)
        queries += n
        is_batch = quality["run_id"].astype(str).str.startswith("batch-")
        quality = quality[is_batch if mode == "batch" else ~is_batch].reset_index(drop=True)
        return Snapshot(mode, range_label, start, end, frames, quality,
                        time.perf_counter() - t0, queries)


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()
    return (f"{type(e).__name__}: {text[0]}" if text else type(e).__name__)[:300]


# --------------------------------------------------------------------------- views (pure)
def kpis(snap: Snapshot) -> dict[str, float | int | None]:
    """Header numbers for a snapshot.

    events_per_minute: distinct events / minutes with data (data_quality), so a stream
      that stopped still shows the rate it ran at; active_sessions: sessions whose
      [start_ts, end_ts] overlaps the range; conversion_rate: the share of those sessions
      with a purchase -- both from `sessions_merged`, so a session crossing UTC midnight
      (a row in each day partition) counts once; revenue: dollars (revenue_hourly);
      invalid / late / duplicates: this mode's ingest_quality rows.
    """
    dq = snap.frame("data_quality")
    minutes = dq.loc[dq["events"] > 0, "window_start"].nunique()
    events = int(dq["events"].sum())
    s = sessions_merged(snap)
    q = snap.quality
    return {
        "events": events,
        "events_per_minute": events / minutes if minutes else None,
        "active_sessions": len(s),
        "conversion_rate": float(s["converted"].mean()) if len(s) else None,
        "revenue": int(snap.frame("revenue_hourly")["revenue_cents"].sum()) / 100,
        "invalid": int(q["invalid"].sum()),
        "late": int(q["late_dropped"].sum()),
        "duplicates": int(q["duplicates_dropped"].sum()),
    }


SESSION_MERGE = {"start_ts": "min", "end_ts": "max", "events": "sum", "bounced": "all",
                 "reached_product": "any", "reached_cart": "any", "reached_checkout": "any",
                 "converted": "any", "revenue_cents": "sum"}


def sessions_merged(snap: Snapshot) -> pd.DataFrame:
    """One row per session_id whose merged [start_ts, end_ts] overlaps the range.

    The sessions table has a row per session *and UTC day*: a session crossing midnight
    has two, in two day partitions. They are merged here (earliest start, latest end,
    summed events and revenue, a flag set if set on either day; bounced only if both
    bounced), so every session-level number counts such a session once.
    """
    return snap.memo("sessions_merged", lambda: _merge_sessions(snap))


def _merge_sessions(snap: Snapshot) -> pd.DataFrame:
    s = snap.frame("sessions")
    cols = ["session_id", *SESSION_MERGE]
    if s.empty:
        return s[cols].reset_index(drop=True)
    g = s.groupby("session_id", as_index=False, sort=False).agg(SESSION_MERGE)
    start = pd.Timestamp(snap.start.replace(tzinfo=None))
    end = pd.Timestamp(snap.end.replace(tzinfo=None))
    return g[(g["end_ts"] >= start) & (g["start_ts"] < end)].reset_index(drop=True)


FUNNEL_STAGES = (("sessions", "Sessions"), ("reached_product", "Product view"),
                 ("reached_cart", "Added to cart"), ("reached_checkout", "Checkout"),
                 ("purchased", "Purchase"))


def funnel(snap: Snapshot) -> pd.DataFrame:
    """stage, sessions, share of all sessions (`sessions_merged`: a session crossing
    midnight counts once, which the per-day funnel_hourly rows cannot do)."""
    s = sessions_merged(snap)
    counts = [len(s), *(int(s[c].sum()) for c in
                        ("reached_product", "reached_cart", "reached_checkout", "converted"))]
    top = counts[0] or 1
    return pd.DataFrame({"stage": [label for _, label in FUNNEL_STAGES], "sessions": counts,
                         "share": [c / top for c in counts]})


def page_views_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, page, page_views (time_agg) bucketed to at most ~300 points."""
    df = snap.frame("time_agg")
    if df.empty:
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns]"),
                             "page": pd.Series(dtype=object),
                             "page_views": pd.Series(dtype="int64")})
    freq = time_bucket(snap.start, snap.end)
    out = (df.assign(time=df["window_start"].dt.floor(freq))
           .groupby(["time", "page"], as_index=False)["page_views"].sum())
    return out


def page_views_wide(snap: Snapshot) -> pd.DataFrame:
    """time + one column per page (every page of `PAGES`, 0 when absent): a fixed set of
    series, so a chart can update in place."""
    from shared.events import PAGES

    df = page_views_over_time(snap)
    wide = df.pivot_table(index="time", columns="page", values="page_views", aggfunc="sum",
                          fill_value=0)
    wide = wide.reindex(columns=list(PAGES), fill_value=0).astype("int64")
    wide.columns.name = None
    return wide.reset_index()


def site_views_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, page_views (website_views, hourly)."""
    df = snap.frame("website_views")
    return (df.rename(columns={"window_start": "time"})[["time", "page_views"]]
            .groupby("time", as_index=False).sum())


def page_views_per_page(snap: Snapshot) -> pd.DataFrame:
    df = snap.frame("time_agg")
    return (df.groupby("page", as_index=False)["page_views"].sum()
            .sort_values("page_views", ascending=False, ignore_index=True))


def top_products(snap: Snapshot, n: int = 10) -> dict[str, pd.DataFrame]:
    """Top-n products by views, cart additions, purchases and revenue, one frame each."""
    def top(base: str, metric: str, name: str | None = None) -> pd.DataFrame:
        df = snap.frame(base)
        out = df.groupby("product_id", as_index=False)[metric].sum()
        out = out[out[metric] > 0].sort_values([metric, "product_id"], ascending=[False, True])
        return out.head(n).rename(columns={metric: name or metric}).reset_index(drop=True)

    rev = top("product_purchases", "revenue_cents")
    rev = rev.assign(revenue=rev["revenue_cents"] / 100).drop(columns="revenue_cents")
    return {
        "views": top("product_views", "views"),
        "cart_additions": top("product_cart_additions", "cart_additions"),
        "purchases": top("product_purchases", "purchases"),
        "revenue": rev,
    }


def product_add_to_cart_rate(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, views, add_to_cart, add_to_cart_rate for the n most viewed (product_actions)."""
    df = snap.frame("product_actions").groupby("product_id", as_index=False)[
        ["views", "add_to_cart"]].sum()
    df = df[df["views"] > 0].sort_values(["views", "product_id"], ascending=[False, True]).head(n)
    return df.assign(add_to_cart_rate=df["add_to_cart"] / df["views"]).reset_index(drop=True)


def device_distribution(snap: Snapshot) -> pd.DataFrame:
    df = snap.frame("device_distribution")
    return (df.groupby("device_type", as_index=False)["page_views"].sum()
            .sort_values("page_views", ascending=False, ignore_index=True))


def campaign_performance(snap: Snapshot) -> pd.DataFrame:
    """Per campaign: events (campaign_events), add_to_cart and purchases (campaign_actions),
    sessions, converted, revenue and conversion rate (campaign_conversion, no direct traffic)."""
    ev = snap.frame("campaign_events").groupby("utm_campaign")["events"].sum()
    act = snap.frame("campaign_actions").groupby("utm_campaign")[["add_to_cart", "purchases"]].sum()
    cc = snap.frame("campaign_conversion")
    cc = cc[cc["utm_campaign"] != "(none)"].groupby("utm_campaign")[
        ["sessions", "converted", "revenue_cents"]].sum()
    out = pd.concat([ev, act, cc], axis=1).fillna(0).astype("int64")
    for c in ("events", "add_to_cart", "purchases", "sessions", "converted", "revenue_cents"):
        if c not in out:
            out[c] = pd.Series(dtype="int64")
    out["conversion_rate"] = (out["converted"] / out["sessions"].where(out["sessions"] > 0))
    out.index.name = "utm_campaign"
    return out.reset_index().sort_values(["events", "utm_campaign"], ascending=[False, True],
                                         ignore_index=True)


def campaign_sources(snap: Snapshot) -> pd.DataFrame:
    """utm_campaign, utm_source, events (campaign_events)."""
    return (snap.frame("campaign_events").groupby(["utm_campaign", "utm_source"], as_index=False)
            ["events"].sum().sort_values("events", ascending=False, ignore_index=True))


def avg_duration_per_page(snap: Snapshot) -> pd.DataFrame:
    """page, avg_duration_s = sum(duration_ms_sum) / sum(events) / 1000 (agg_duration)."""
    df = snap.frame("agg_duration").groupby("page", as_index=False)[
        ["duration_ms_sum", "events"]].sum()
    df = df[df["events"] > 0]
    return (df.assign(avg_duration_s=df["duration_ms_sum"] / df["events"] / 1000)
            .sort_values("avg_duration_s", ascending=False, ignore_index=True))


def revenue_over_time(snap: Snapshot) -> pd.DataFrame:
    df = snap.frame("revenue_hourly")
    return pd.DataFrame({"time": df["window_start"], "revenue": df["revenue_cents"] / 100,
                         "purchases": df["purchases"]}).sort_values("time", ignore_index=True)


def quality_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, events, duplicates (data_quality) bucketed like page views."""
    df = snap.frame("data_quality")
    freq = time_bucket(snap.start, snap.end)
    return (df.assign(time=df["window_start"].dt.floor(freq))
            .groupby("time", as_index=False)[["events", "duplicates"]].sum())


def session_stats(snap: Snapshot) -> dict[str, float | int | None]:
    """Sessions overlapping the range (`sessions_merged`): count, averages, rates."""
    g = sessions_merged(snap)
    if g.empty:
        return {"sessions": 0, "avg_duration_s": None, "avg_events": None, "bounce_rate": None,
                "cart_abandonment": None, "conversion_rate": None}
    duration = (g["end_ts"] - g["start_ts"]).dt.total_seconds()
    cart = g["reached_cart"].astype(bool)
    converted = g["converted"].astype(bool)
    carts = int(cart.sum())
    return {
        "sessions": len(g),
        "avg_duration_s": float(duration.mean()),
        "avg_events": float(g["events"].mean()),
        "bounce_rate": float(g["bounced"].mean()),
        "cart_abandonment": float((cart & ~converted).sum() / carts) if carts else None,
        "conversion_rate": float(converted.mean()),
    }


def session_event_histogram(snap: Snapshot) -> pd.DataFrame:
    """events per session (capped at 30+) -> number of sessions."""
    per = sessions_merged(snap)["events"].clip(upper=30)
    return (per.value_counts().sort_index().rename_axis("events").reset_index(name="sessions")
            .astype("int64"))


def table_view(snap: Snapshot, base: str) -> pd.DataFrame:
    """The raw rows of one table (for the tabular view and its CSV), newest first."""
    df = snap.frame(base)
    if "window_start" in df.columns:
        df = df.sort_values("window_start", ascending=False, kind="stable", ignore_index=True)
    return df
