"""Helpers for the processor's tests: a lean local Spark session, hand-made events,
and a small seeded event generator (for parity tests when the simulator is not needed).

Not used by the runners.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from functools import lru_cache

from shared.events import FIELD_NAMES, FIELDS, PAGES, SCHEMA_VERSION, Kind, format_ts


def ms(text: str) -> int:
    """'2026-01-01T10:00:10' (UTC) -> epoch ms."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def make_event(event_id: str, ts: str, session_id: str, page: str, action: str, **kw) -> dict:
    """A complete event dict (all FIELD_NAMES); `ts` like '2026-01-01T10:00:10'."""
    t = ms(ts)
    e = {
        "schema_version": SCHEMA_VERSION, "event_id": event_id, "timestamp": t, "sent_at": t + 50,
        "user_id": "u1", "session_id": session_id, "page": page, "action": action,
        "page_url": f"/{page}", "product_id": None, "category": None, "element_id": None,
        "position_x": None, "position_y": None, "referrer": None, "utm_source": None,
        "utm_medium": None, "utm_campaign": None, "device_type": "desktop", "os": "Windows",
        "browser": "Chrome", "language": "en-US", "ip_address": "10.0.0.1",
        "geo_country": "DE", "geo_city": "Berlin", "geo_region": "BE", "page_duration_ms": 0,
        "scroll_depth_percent": 0, "ab_test_variant": "A", "is_logged_in": False,
        "price_cents": None, "quantity": None, "order_id": None, "revenue_cents": None,
    }
    unknown = set(kw) - set(e)
    if unknown:
        raise KeyError(f"unknown fields {unknown}")
    e.update(kw)
    return e


@lru_cache(maxsize=1)
def local_session():
    """One lean local[2] session for unit tests (no connector jars, UTC, 2 partitions)."""
    from pyspark.sql import SparkSession

    from services.processor.session import SQL_CONF

    return (
        SparkSession.builder.master("local[2]").appName("clickstream-tests")
        .config(map=SQL_CONF)
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .getOrCreate()
    )


def to_spark_rows(events: list[dict]) -> list[tuple]:
    """Event dicts -> tuples in FIELD order with timestamps as aware datetimes."""
    ts_fields = {f.name for f in FIELDS if f.kind is Kind.TIMESTAMP}
    out = []
    for e in events:
        out.append(tuple(
            dt.datetime.fromtimestamp(e[n] / 1000, dt.UTC) if n in ts_fields else e[n]
            for n in FIELD_NAMES))
    return out


def spark_events(spark, events: list[dict]):
    from shared.events import spark_schema

    return spark.createDataFrame(to_spark_rows(events), spark_schema())


def polars_events(events: list[dict]):
    import polars as pl

    from shared.events import polars_schema

    schema = polars_schema()
    cols = {}
    for f in FIELDS:
        vals = [e[f.name] for e in events]
        if f.kind is Kind.TIMESTAMP:
            cols[f.name] = pl.Series(f.name, vals, dtype=pl.Int64).cast(pl.Datetime("ms", "UTC"))
        else:
            cols[f.name] = pl.Series(f.name, vals, dtype=schema[f.name])
    return pl.DataFrame(cols)


def csv_line_values(e: dict) -> list[str]:
    """Event -> CSV cell texts (header FIELD_NAMES), timestamps ISO ms Z, null as empty."""
    out = []
    for f in FIELDS:
        v = e[f.name]
        if v is None:
            out.append("")
        elif f.kind is Kind.TIMESTAMP:
            out.append(format_ts(v))
        elif f.kind is Kind.BOOL:
            out.append("true" if v else "false")
        else:
            out.append(str(v))
    return out


def generate(n_sessions: int, seed: int = 7, start: str = "2026-03-01T22:30:00",
             span_hours: float = 3.0, dup_rate: float = 0.02, late_rate: float = 0.05,
             late_ms: int = 60_000) -> list[dict]:
    """A small, seeded, funnel-shaped data set with duplicates and late deliveries.

    Only for tests of the processor (the real simulator lives in services/simulator).
    Late events keep their event time and get `sent_at` up to `late_ms` later; duplicates
    repeat an event (same event_id, later sent_at). Returned in delivery (sent_at) order.
    """
    rnd = random.Random(seed)
    t0 = ms(start)
    products = [f"p{i:03d}" for i in range(40)]
    campaigns = [None, None, ("spring", "google"), ("spring", None), ("fall", "meta")]
    out: list[dict] = []
    eid = 0
    for s in range(n_sessions):
        user = f"u{rnd.randrange(n_sessions // 2 + 1)}"
        device = rnd.choice(["desktop", "mobile", "tablet"])
        camp = rnd.choice(campaigns)
        t = t0 + rnd.randrange(int(span_hours * 3600_000))
        path = [("homepage", "view")]
        while rnd.random() < 0.85 and len(path) < 14:
            last = path[-1][0]
            nxt = {
                "homepage": [("search", "search"), ("category", "view"), ("homepage", "scroll")],
                "search": [("product", "view"), ("category", "view")],
                "category": [("product", "view"), ("category", "click")],
                "product": [("product", "add_to_cart"), ("product", "scroll"),
                            ("product", "click"), ("category", "view")],
                "cart": [("checkout", "begin_checkout"), ("cart", "remove_from_cart"),
                         ("product", "view")],
                "checkout": [("confirmation", "purchase"), ("checkout", "view")],
                "confirmation": [("homepage", "view")],
            }[last]
            if path[-1][1] == "add_to_cart":
                nxt = [("cart", "view"), ("product", "view")]
            path.append(rnd.choice(nxt))
        product = rnd.choice(products)
        evs = []
        for i, (page, action) in enumerate(path):
            gap = rnd.randrange(500, 90_000)
            eid += 1
            kw = {}
            if page in ("product", "cart") or action in ("add_to_cart", "remove_from_cart",
                                                          "purchase"):
                if page == "product" and action == "view":
                    product = rnd.choice(products)
                kw.update(product_id=product, price_cents=100 * (1 + int(product[1:])))
            if action in ("add_to_cart", "remove_from_cart", "purchase"):
                kw["quantity"] = rnd.randint(1, 3)
            if action == "purchase":
                kw.update(order_id=f"o{eid}", revenue_cents=kw["price_cents"] * kw["quantity"])
            if camp:
                kw.update(utm_campaign=camp[0], utm_source=camp[1])
            e = make_event(f"e{seed}-{eid}", "2026-01-01T00:00:00", f"s{seed}-{s}", page, action,
                           user_id=user, device_type=device,
                           page_duration_ms=0 if i == len(path) - 1 else gap, **kw)
            e["timestamp"] = t
            e["sent_at"] = t + rnd.randrange(5, 500)
            if rnd.random() < late_rate:
                e["sent_at"] = t + rnd.randrange(late_ms // 2, late_ms)
            evs.append(e)
            t += gap
        out.extend(evs)
        for e in evs:
            if rnd.random() < dup_rate:
                d = dict(e)
                d["sent_at"] = e["sent_at"] + rnd.randrange(1, 5000)
                out.append(d)
    out.sort(key=lambda e: (e["sent_at"], e["event_id"]))
    assert all(e["page"] in PAGES for e in out)
    return out


# --------------------------------------------------------------------------- stream tests
RECORD_SCHEMA = "payload string, partition int, offset long, kafka_ts timestamp, topic string"


def write_record_files(folder, batches: list[list], topic: str = "clickstream",
                       start_ms: int | None = None) -> None:
    """Write Kafka-shaped records (one JSON-lines file per micro-batch) for a file stream.

    Each item of a batch is an event dict (encoded with the shared encoder) or a str/bytes
    payload sent as is (malformed messages). Offsets count up on partition 0.
    """
    import json
    from pathlib import Path

    from shared.events import encode

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    offset = 0
    now = start_ms or ms("2030-01-01T00:00:00")
    for i, batch in enumerate(batches):
        lines = []
        for item in batch:
            payload = encode(item) if isinstance(item, dict) else item
            if isinstance(payload, bytes):
                payload = payload.decode()
            lines.append(json.dumps({"payload": payload, "partition": 0, "offset": offset,
                                     "kafka_ts": format_ts(now + offset), "topic": topic}))
            offset += 1
        path = folder / f"batch-{i:04d}.json"
        path.write_text("\n".join(lines) + "\n")
        # the file source takes files in modification-time order: make it the batch order
        os.utime(path, (1_900_000_000 + i, 1_900_000_000 + i))


def _naive_utc(v):
    """Datetimes as naive UTC, whichever path wrote them: PySpark collects naive local
    times, the driver's rows (`write_rows`) are aware UTC."""
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.UTC).replace(tzinfo=None)
    return v


class MemorySink:
    """An upserting in-memory 'Cassandra': table -> primary key -> row (table column order)."""

    def __init__(self):
        self.tables: dict[str, dict[tuple, tuple]] = {}

    def __call__(self, name: str, df) -> None:
        from shared import tables as tb

        t = tb.table(name)
        rows = self.tables.setdefault(name, {})
        for r in df.collect():
            d = {k: _naive_utc(v) for k, v in r.asDict().items()}
            rows[tuple(d[k] for k in t.primary_key)] = tuple(d[c] for c in t.column_names)

    def write_rows(self, name: str, rows: list[dict]) -> None:
        """A small micro-batch's rows, projected in Python (`Router(local_rows=...)`)."""
        from shared import tables as tb

        t = tb.table(name)
        table = self.tables.setdefault(name, {})
        for d in rows:
            if set(d) != set(t.column_names):
                raise ValueError(f"{name}: columns {sorted(d)} are not the table's")
            d = {k: _naive_utc(v) for k, v in d.items()}
            table[tuple(d[k] for k in t.primary_key)] = tuple(d[c] for c in t.column_names)

    def delete_rows(self, name: str, keys: list[dict]) -> None:
        from shared import tables as tb

        t = tb.table(name)
        table = self.tables.setdefault(name, {})
        for d in keys:
            table.pop(tuple(_naive_utc(d[k]) for k in t.primary_key), None)

    def read_rows(self, name: str, keys: set[tuple]) -> list[dict]:
        """`CassandraSink.read_rows`: the rows under (day, first clustering column) keys,
        timestamps as aware UTC datetimes."""
        from shared import tables as tb

        t = tb.table(name)
        column = t.column_names.index(t.clustering[0][0])
        out = []
        for r in self.rows(name):
            if (r[0], r[column]) in keys:
                out.append({c: v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v
                            for c, v in zip(t.column_names, r, strict=True)})
        return out

    def rows(self, name: str) -> list[tuple]:
        return list(self.tables.get(name, {}).values())

    def day_reader(self, spark, name: str = "session_partials"):
        """`stream.cassandra_day_reader` over this sink's rows."""
        from shared import tables as tb

        schema = tb.table(name).spark_schema()

        def read(days):
            rows = [r for r in self.rows(name) if r[0] in set(days)]
            return spark.createDataFrame(rows, schema)

        return read
