"""Cassandra table specs: one declaration per table.

The CQL DDL (`Table.create_cql`), the processor's writes (column names and order) and the
dashboard's reads (`Table.select_range`) all derive from these specs.

Model (see docs in each spec): every analytics table is partitioned by the UTC day of its
window (`day`) and clustered by `window_start` (then its keys), so reading one metric over
a time range is one slice query per day partition -- no filtering query, no full scan:

    SELECT ... FROM ks.time_agg WHERE day = ? AND window_start >= ? AND window_start < ?

Metrics are exact integers (counts, sums of integer cents and integer milliseconds);
averages and rates are computed on read from a sum and a count (`Table.doc` says which).
Every analytics table `x` has a twin `x_batch` with the same columns, filled by the batch
job; the streaming job writes `x`. `TABLES` is what the schema step (`clickstream up`) creates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

DAY = "day"
WINDOW_START = "window_start"
#: the stored value of a key that the event did not have (Cassandra keys cannot be null)
NONE_KEY = "(none)"
#: `ingest_quality.run_id` of a batch run starts with it (a stream run's is Spark's run id)
BATCH_RUN_PREFIX = "batch-"


#: every CQL type the tables use -> (its Spark SQL type, its pandas dtype): the one map
#: the job (casts, schemas) and the dashboard (empty frames) read
ENGINE_TYPES: dict[str, tuple[str, str]] = {
    "bigint": ("bigint", "int64"), "int": ("int", "int64"), "text": ("string", "object"),
    "boolean": ("boolean", "bool"), "timestamp": ("timestamp", "datetime64[ns]"),
    "date": ("date", "object"),
}


@dataclass(frozen=True)
class Column:
    name: str
    cql_type: str

    def __post_init__(self):
        if self.cql_type not in ENGINE_TYPES:
            raise ValueError(f"{self.name}: CQL type {self.cql_type!r} has no engine types")

    @property
    def spark_type(self) -> str:
        return ENGINE_TYPES[self.cql_type][0]

    @property
    def pandas_dtype(self) -> str:
        return ENGINE_TYPES[self.cql_type][1]


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    partition_key: tuple[str, ...]
    clustering: tuple[tuple[str, str], ...] = ()  # (column, "ASC"|"DESC")
    doc: str = ""
    # --- what a reader needs (all derivable from the above, but named explicitly)
    time_column: str | None = WINDOW_START  # clustering column holding the time; None: day only
    window_seconds: int | None = None  # length of the tumbling window, if any
    keys: tuple[str, ...] = ()  # dimension columns (besides day/time)
    metrics: tuple[str, ...] = ()  # value columns
    # name -> how to compute it on read (averages and rates are never stored)
    derived: dict[str, str] = field(default_factory=dict, hash=False)
    mode: str = "stream"  # "stream" | "batch" | "any" (written by both, e.g. dead_letter)

    # ------------------------------------------------------------------ DDL
    def create_cql(self, keyspace: str) -> str:
        cols = ", ".join(f"{c.name} {c.cql_type}" for c in self.columns)
        pk = "(" + ", ".join(self.partition_key) + ")"
        key = ", ".join([pk, *(c for c, _ in self.clustering)])
        cql = f"CREATE TABLE IF NOT EXISTS {keyspace}.{self.name} ({cols}, PRIMARY KEY ({key}))"
        if self.clustering:
            order = ", ".join(f"{c} {o}" for c, o in self.clustering)
            cql += f" WITH CLUSTERING ORDER BY ({order})"
        return cql

    # ------------------------------------------------------------------ reads
    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> tuple[str, ...]:
        return (*self.partition_key, *(c for c, _ in self.clustering))

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")

    def cql_type(self, column: str) -> str:
        return self.column(column).cql_type

    def spark_schema(self) -> str:
        """The table's rows as a Spark DDL schema string."""
        return ", ".join(f"{c.name} {c.spark_type}" for c in self.columns)

    def select_range(self, keyspace: str, columns: tuple[str, ...] | None = None) -> str:
        """The parameterised range SELECT for ONE day partition.

        Parameters, in order: (day, start, end) -- start inclusive, end exclusive -- or just
        (day,) for a table without a time column. Use `range_params` for the values.
        """
        cols = ", ".join(columns or self.column_names)
        cql = f"SELECT {cols} FROM {keyspace}.{self.name} WHERE {DAY} = ?"
        if self.time_column:
            cql += f" AND {self.time_column} >= ? AND {self.time_column} < ?"
        return cql

    def range_params(self, start: dt.datetime, end: dt.datetime) -> list[tuple]:
        """One parameter tuple per UTC day partition covering [start, end)."""
        return [
            (day, start, end) if self.time_column else (day,) for day in days_between(start, end)
        ]

    def batch(self) -> Table:
        """The `_batch` twin: same columns and keys, filled by the batch job."""
        return replace(self, name=self.name + "_batch", mode="batch",
                       doc=self.doc + " (batch job)")


def days_between(start: dt.datetime, end: dt.datetime) -> Iterator[dt.date]:
    """UTC days whose partitions may hold rows in [start, end)."""
    start, end = _utc(start), _utc(end)
    day = start.date()
    while dt.datetime.combine(day, dt.time(), dt.UTC) < end:
        yield day
        day += dt.timedelta(days=1)


def _utc(t: dt.datetime) -> dt.datetime:
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


# ---------------------------------------------------------------------- builders
def _windowed(name: str, window_seconds: int, keys: tuple[tuple[str, str], ...],
              metrics: tuple[tuple[str, str], ...], doc: str,
              derived: dict[str, str] | None = None) -> Table:
    """day-partitioned, window_start-clustered table: PRIMARY KEY ((day), window_start, keys...)"""
    return Table(
        name=name,
        columns=(
            Column(DAY, "date"),
            Column(WINDOW_START, "timestamp"),
            *(Column(k, t) for k, t in keys),
            *(Column(m, t) for m, t in metrics),
        ),
        partition_key=(DAY,),
        clustering=((WINDOW_START, "ASC"), *((k, "ASC") for k, _ in keys)),
        doc=doc,
        time_column=WINDOW_START,
        window_seconds=window_seconds,
        keys=tuple(k for k, _ in keys),
        metrics=tuple(m for m, _ in metrics),
        derived=derived or {},
    )


MIN, HOUR, DAY_S = 60, 3600, 86400
TXT, BIG = "text", "bigint"

# --- the ten tables of the original shop (their meanings: each table's description and the
# README's table list)
TIME_AGG = _windowed("time_agg", MIN, (("page", TXT),), (("page_views", BIG),),
                     "page views (action = view) per page per minute")
CAMPAIGN_EVENTS = _windowed(
    "campaign_events", 5 * MIN, (("utm_campaign", TXT), ("utm_source", TXT)), (("events", BIG),),
    "events per campaign and source per 5 minutes; only events with a utm_campaign; "
    "a missing utm_source is '(none)'")
CAMPAIGN_ACTIONS = _windowed(
    "campaign_actions", HOUR, (("utm_campaign", TXT),),
    (("add_to_cart", BIG), ("purchases", BIG)),
    "add_to_cart and purchase actions per campaign per hour (events with a utm_campaign)")
PRODUCT_VIEWS = _windowed("product_views", HOUR, (("product_id", TXT),), (("views", BIG),),
                          "product detail views (page = product, action = view) per hour")
PRODUCT_ACTIONS = _windowed(
    "product_actions", HOUR, (("product_id", TXT),), (("views", BIG), ("add_to_cart", BIG)),
    "product detail views and add_to_cart actions per product per hour",
    {"add_to_cart_rate": "add_to_cart / views (views > 0)"})
AGG_DURATION = _windowed(
    "agg_duration", 10 * MIN, (("page", TXT),), (("duration_ms_sum", BIG), ("events", BIG)),
    "time spent on each page per 10 minutes: sum of page_duration_ms over its events",
    {"avg_duration_ms": "duration_ms_sum / events"})
PRODUCT_PURCHASES = _windowed(
    "product_purchases", HOUR, (("product_id", TXT),),
    (("purchases", BIG), ("units", BIG), ("revenue_cents", BIG)),
    "purchase actions, units and revenue (integer cents) per product per hour -- also the "
    "'revenue per product' table")
PRODUCT_CART_ADDITIONS = _windowed(
    "product_cart_additions", HOUR, (("product_id", TXT),),
    (("cart_additions", BIG), ("units", BIG)), "add_to_cart actions and units per product per hour")
WEBSITE_VIEWS = _windowed("website_views", HOUR, (), (("page_views", BIG),),
                          "page views (action = view) of the whole site per hour")
DEVICE_DISTRIBUTION = _windowed("device_distribution", HOUR, (("device_type", TXT),),
                                (("page_views", BIG),), "page views per device type per hour")

# --- beyond the original shop
REVENUE_HOURLY = _windowed(
    "revenue_hourly", HOUR, (), (("purchases", BIG), ("units", BIG), ("revenue_cents", BIG)),
    "purchase actions, units and revenue (integer cents) of the whole shop per hour",
    {"avg_purchase_cents": "revenue_cents / purchases"})
FUNNEL_HOURLY = _windowed(
    "funnel_hourly", HOUR, (),
    (("sessions", BIG), ("reached_product", BIG), ("reached_cart", BIG),
     ("reached_checkout", BIG), ("purchased", BIG)),
    "sessions by the hour of their start (within their UTC day, see sessions) and how many of "
    "them reached a product view, the cart (add_to_cart), checkout (begin_checkout), purchase",
    {"conversion_rate": "purchased / sessions",
     "cart_abandonment": "(reached_cart - purchased) / reached_cart"})
CAMPAIGN_CONVERSION = _windowed(
    "campaign_conversion", HOUR, (("utm_campaign", TXT), ("utm_source", TXT)),
    (("sessions", BIG), ("converted", BIG), ("revenue_cents", BIG)),
    "sessions by start hour and campaign/source ('(none)' for direct traffic), sessions with "
    "a purchase, their revenue in cents", {"conversion_rate": "converted / sessions"})
DATA_QUALITY = _windowed(
    "data_quality", MIN, (), (("raw_events", BIG), ("events", BIG), ("duplicates", BIG)),
    "per event-time minute: valid messages received (raw_events), distinct events counted "
    "(events) and duplicate deliveries of an event_id (duplicates = raw_events - events)")
SESSIONS = Table(
    name="sessions",
    columns=(
        Column(DAY, "date"),
        Column("session_id", TXT),
        Column("user_id", TXT),
        Column("start_ts", "timestamp"),
        Column("end_ts", "timestamp"),
        Column("duration_ms", BIG),
        Column("events", BIG),
        Column("pages", "int"),
        Column("reached_product", "boolean"),
        Column("reached_cart", "boolean"),
        Column("reached_checkout", "boolean"),
        Column("converted", "boolean"),
        Column("bounced", "boolean"),
        Column("revenue_cents", BIG),
        Column("utm_campaign", TXT),
        Column("utm_source", TXT),
        Column("device_type", TXT),
    ),
    partition_key=(DAY,),
    clustering=(("session_id", "ASC"),),
    doc="one row per session and UTC day of its events (a session crossing midnight has a row "
        "in each day): start/end/duration (ms), events, distinct pages, funnel flags, "
        "converted (has a purchase), bounced (one distinct page), revenue in cents; campaign, "
        "source and device are the session's (greatest non-null) values, '(none)' if absent",
    time_column=None,
    window_seconds=DAY_S,
    keys=("session_id",),
    metrics=("start_ts", "end_ts", "duration_ms", "events", "pages", "reached_product",
             "reached_cart", "reached_checkout", "converted", "bounced", "revenue_cents"),
)

# --- the streaming job's own (no batch twin, not shown)
SESSION_PARTIALS = Table(
    name="session_partials",
    columns=(
        Column(DAY, "date"),
        Column("session_id", TXT),
        Column(WINDOW_START, "timestamp"),
        Column("start_ts", "timestamp"),
        Column("end_ts", "timestamp"),
        Column("events", BIG),
        Column("revenue_cents", BIG),
        Column("bits", BIG),
        Column("user_id", TXT),
        Column("utm_campaign", TXT),
        Column("utm_source", TXT),
        Column("device_type", TXT),
    ),
    partition_key=(DAY,),
    clustering=(("session_id", "ASC"), (WINDOW_START, "ASC"), ("user_id", "ASC"),
                ("utm_campaign", "ASC"), ("utm_source", "ASC"), ("device_type", "ASC")),
    doc="the streaming job's 5-minute pieces of each session, one per user, campaign, "
        "source and device it had then ('(none)' if absent): first/last event, events, "
        "revenue in cents, pages and funnel stages as bits. Its state holds a session for 5 "
        "minutes plus the watermark, not a day; each micro-batch folds the touched "
        "sessions' pieces into their sessions row",
    time_column=None,
    window_seconds=5 * MIN,
    keys=("session_id", WINDOW_START, "user_id", "utm_campaign", "utm_source", "device_type"),
    metrics=("start_ts", "end_ts", "events", "revenue_cents", "bits"),
)

# --- operational tables (no batch twin)
DEAD_LETTER = Table(
    name="dead_letter",
    columns=(
        Column(DAY, "date"),
        Column("received_at", "timestamp"),
        Column("source", TXT),
        Column("kafka_partition", "int"),
        Column("kafka_offset", BIG),
        Column("reason", TXT),
        Column("payload", TXT),
    ),
    partition_key=(DAY,),
    clustering=(("received_at", "DESC"), ("source", "ASC"), ("kafka_partition", "ASC"),
                ("kafka_offset", "ASC")),
    doc="malformed or schema-violating messages with the reason; day/received_at are the "
        "Kafka record timestamp, so a replay rewrites the same row",
    time_column="received_at",
    keys=("source", "kafka_partition", "kafka_offset"),
    metrics=("reason", "payload"),
    mode="any",
)
DEAD_LETTER_REPLAYS = Table(
    name="dead_letter_replays",
    columns=(
        # the primary key of the dead_letter row it replayed
        *(DEAD_LETTER.column(c) for c in DEAD_LETTER.primary_key),
        Column("replayed_at", "timestamp"),
        Column("replayed_to", TXT),
    ),
    partition_key=(DAY,),
    clustering=DEAD_LETTER.clustering,
    doc="the dead letters `clickstream replay-dead-letters` sent back (the key of their "
        "dead_letter row), when and to which topic: a second replay skips them",
    time_column="received_at",
    keys=("source", "kafka_partition", "kafka_offset"),
    metrics=("replayed_at", "replayed_to"),
    mode="any",
)
INGEST_QUALITY = Table(
    name="ingest_quality",
    columns=(
        Column(DAY, "date"),
        Column("run_id", TXT),
        Column("batch_id", BIG),
        Column("finished_at", "timestamp"),
        Column("input_rows", BIG),
        Column("invalid", BIG),
        Column("late_dropped", BIG),
        Column("duplicates_dropped", BIG),
    ),
    partition_key=(DAY,),
    clustering=(("finished_at", "ASC"), ("run_id", "ASC"), ("batch_id", "ASC")),
    doc="per streaming micro-batch (run_id = query id) or batch run (batch_id = 0): messages "
        "read, invalid (dead-lettered), late events dropped by the watermark (rows the dedup "
        "operator dropped as late, counted per event), duplicate deliveries dropped",
    time_column="finished_at",
    keys=("run_id", "batch_id"),
    metrics=("input_rows", "invalid", "late_dropped", "duplicates_dropped"),
    mode="any",
)

ORIGINAL_TABLES: tuple[Table, ...] = (
    TIME_AGG, CAMPAIGN_EVENTS, CAMPAIGN_ACTIONS, PRODUCT_VIEWS, PRODUCT_ACTIONS, AGG_DURATION,
    PRODUCT_PURCHASES, PRODUCT_CART_ADDITIONS, WEBSITE_VIEWS, DEVICE_DISTRIBUTION,
)
BEYOND_TABLES: tuple[Table, ...] = (
    REVENUE_HOURLY, SESSIONS, FUNNEL_HOURLY, CAMPAIGN_CONVERSION, DATA_QUALITY,
)
#: the analytics tables the streaming job writes; each has a `_batch` twin
ANALYTICS: tuple[Table, ...] = ORIGINAL_TABLES + BEYOND_TABLES
ANALYTICS_BATCH: tuple[Table, ...] = tuple(t.batch() for t in ANALYTICS)
OPERATIONAL: tuple[Table, ...] = (DEAD_LETTER, DEAD_LETTER_REPLAYS, INGEST_QUALITY)
#: tables only the streaming job reads and writes (the dashboard does not show them)
STREAM_INTERNAL: tuple[Table, ...] = (SESSION_PARTIALS,)

TABLES: tuple[Table, ...] = ANALYTICS + ANALYTICS_BATCH + OPERATIONAL + STREAM_INTERNAL
BY_NAME: dict[str, Table] = {t.name: t for t in TABLES}


def table(name: str) -> Table:
    """The spec of table `name` (e.g. 'time_agg' or 'time_agg_batch')."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"no table {name!r}; known: {', '.join(BY_NAME)}") from None
