"""Every aggregate, defined once, as pure functions of a Spark DataFrame of events (no I/O).

Both runners use the same functions: the batch runner on a static read of the CSV days,
the stream runner on the Kafka stream (after watermark and dedup).

Shape (README, "The Spark job and the tables"): `tag_rows` turns each event into up to one
tagged row per aggregate -- (agg, window start/end, two key slots, metric slots) -- and `reduce`
folds all of them with ONE groupBy. Every metric is a sum, min, max or bit-or of a per-event
contribution, so the groupBy holds final running totals (replay-safe upserts, no merge on
read). `table_rows` projects one aggregate's rows onto its Cassandra table columns.

Input contract (`events`): the columns of `shared.events.FIELDS` (`timestamp` as a
timestamp) plus two weights:
  _event       1 if the row is a distinct event that counts, 0 for a delivery marker only
  _deliveries  how many received messages the row stands for (data-quality raw counts)
The batch runner sends one row per event_id with _event=1, _deliveries=copies; the stream
runner sends each deduplicated event (1, 0) plus one marker per received message (0, 1).

`sessions` is folded from `session_partials` (5-minute pieces of each session,
`fold_sessions`); two aggregates are second-level, folded from the sessions rows instead of
the events: `funnel_hourly` and `campaign_conversion` (`session_cells`, `from_cells`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from shared import tables as tb
from shared.events import PAGES

# --------------------------------------------------------------------------- slots
# The tagged rows of all aggregates share one struct type: a fixed set of metric slots per
# reduction. Each aggregate uses the first few slots of each kind.
#
# Every slot is FIXED-WIDTH, on purpose: Spark runs a groupBy whose buffers are all
# fixed-width as a code-generated HashAggregate. One string slot (a `max` of a string, or a
# `collect_set`) turns the one groupBy, for every aggregate, into an interpreted
# Object/SortAggregate: 300k events then cost 35 instead of 19 JVM CPU-seconds, and the
# query plans in 3.1 s instead of 0.8 s (`python -m bench.bench_stream_steps`, README "Benchmarks").
# Strings are therefore grouping KEYS: a dead letter's payload, reason and topic (one
# record per key), and the sessions' attributes (see `session_5min` below).
SUM, MIN_TS, MAX_TS, BITS = "sum", "min_ts", "max_ts", "bits"
SLOTS: dict[str, tuple[int, T.DataType, Callable[[str], Column]]] = {
    # kind: (number of slots, type, reducer)
    SUM: (6, T.LongType(), F.sum),
    MIN_TS: (1, T.TimestampType(), F.min),
    MAX_TS: (1, T.TimestampType(), F.max),
    BITS: (1, T.LongType(), F.bit_or),
}
N_KEYS = 5
NONE = tb.NONE_KEY

# bits of the sessions' bit-or: pages visited (0..6) and funnel stages reached (8..11)
PAGE_BIT = {p: 1 << i for i, p in enumerate(PAGES)}
STAGE_BITS = {"reached_product": 1 << 8, "reached_cart": 1 << 9,
              "reached_checkout": 1 << 10, "converted": 1 << 11}


def slot_names(kind: str) -> list[str]:
    return [f"{kind}{i}" for i in range(SLOTS[kind][0])]


ALL_SLOTS = [s for kind in SLOTS for s in slot_names(kind)]
TAG_FIELDS = ["agg", "wstart", "wend", *(f"k{i}" for i in range(N_KEYS)), *ALL_SLOTS]


# --------------------------------------------------------------------------- specs
@dataclass(frozen=True)
class Metric:
    name: str  # the column it becomes in the tables that take it
    kind: str  # one of SLOTS
    expr: Callable[[], Column]  # per-row contribution over `prepare`d columns


@dataclass(frozen=True)
class Output:
    """One table filled from an aggregate's rows: which metrics it takes, how to finish.

    `present`: count columns of the table of which one at least is > 0 where the table's
    event happened. Aggregates are shared by tables (fewer rows through the groupBy), so a
    product-hour with views only is a row of the shared aggregate, but no row of
    product_purchases: a table holds no all-zero rows (README, "No all-zero rows"). Empty:
    every row of the aggregate is a row of the table (its `where` already says so)."""
    table: tb.Table
    metrics: tuple[str, ...]
    finish: Callable[[], dict[str, Column]] | None = None  # more columns, over the metrics
    present: tuple[str, ...] = ()
    #: `finish` for one row as a dict (timestamps as microseconds): the small micro-batch's
    #: projection in Python (`local_rows`); a unit test pins it equal to `finish`
    finish_py: Callable[[dict], dict] | None = None


@dataclass(frozen=True)
class Aggregate:
    """One tagged row per contributing event: (window, keys) -> metrics. Tables with the
    same window, keys and filter share one aggregate (fewer rows through the groupBy)."""
    name: str
    window_seconds: int
    where: Callable[[], Column]  # which rows contribute
    keys: tuple[tuple[str, Callable[[], Column]], ...]
    metrics: tuple[Metric, ...]
    outputs: tuple[Output, ...]

    def slot_of(self) -> dict[str, str]:
        """metric name -> slot column (first free slot of its kind)."""
        used: dict[str, int] = {}
        out = {}
        for m in self.metrics:
            i = used.get(m.kind, 0)
            if i >= SLOTS[m.kind][0]:
                raise ValueError(f"{self.name}: more than {i} {m.kind} metrics")
            used[m.kind] = i + 1
            out[m.name] = f"{m.kind}{i}"
        return out


def c(name: str) -> Callable[[], Column]:
    return lambda: F.col(name)


def one() -> Column:
    return F.lit(1)


def is_event() -> Column:
    return F.col("_event") == 1


def with_campaign() -> Column:
    return is_event() & F.col("utm_campaign").isNotNull()


def with_product() -> Column:
    return is_event() & F.col("product_id").isNotNull()


def none_if_null(name: str) -> Callable[[], Column]:
    return lambda: F.coalesce(F.col(name), F.lit(NONE))


WINDOWS = (60, 300, 600, 3600, 86400)
#: the event columns the aggregates read (`prepare`); the runners keep only these after
#: validating an event (plus event_id, to deduplicate)
AGGREGATED_COLUMNS = ("event_id", "timestamp", "user_id", "session_id", "page", "action",
                      "product_id", "utm_source", "utm_campaign", "device_type",
                      "page_duration_ms", "quantity", "revenue_cents")


def prepare(events: DataFrame, extra: tuple[str, ...] = ()) -> DataFrame:
    """Per-event columns computed ONCE (windows, flags, amounts), so that the tagged rows
    only reference columns. `extra`: more columns to keep (the stream's dead-letter data)."""
    action, page = F.col("action"), F.col("page")
    flag = lambda cond: F.when(cond, 1).otherwise(0)  # noqa: E731
    buy = action == "purchase"
    atc = action == "add_to_cart"
    page_bit = F.coalesce(*(F.when(page == p, F.lit(b)) for p, b in PAGE_BIT.items()), F.lit(0))
    stage = (F.when((page == "product") & (action == "view"), STAGE_BITS["reached_product"])
             .when(atc, STAGE_BITS["reached_cart"])
             .when(action == "begin_checkout", STAGE_BITS["reached_checkout"])
             .when(buy, STAGE_BITS["converted"]).otherwise(0))
    cols = [
        "timestamp", "session_id", "user_id", "page", "product_id", "utm_campaign",
        "utm_source", "device_type", "page_duration_ms", "_event", "_deliveries",
        flag(action == "view").alias("is_view"),
        flag((page == "product") & (action == "view")).alias("is_pview"),
        flag(atc).alias("is_atc"),
        flag(buy).alias("is_buy"),
        F.when(buy, F.coalesce("quantity", F.lit(0))).otherwise(0).cast("long")
        .alias("buy_units"),
        F.when(buy, F.coalesce("revenue_cents", F.lit(0))).otherwise(0).cast("long")
        .alias("buy_cents"),
        F.when(atc, F.coalesce("quantity", F.lit(0))).otherwise(0).cast("long")
        .alias("cart_units"),
        page_bit.bitwiseOR(stage).cast("long").alias("sbits"),
        *extra,
    ]
    out = events.select(*cols)
    us = F.unix_micros("timestamp")
    for w in WINDOWS:
        start = us - F.pmod(us, F.lit(w * 1_000_000))
        out = out.withColumn(f"w{w}", F.timestamp_micros(start)).withColumn(
            f"we{w}", F.timestamp_micros(start + F.lit(w * 1_000_000)))
    return out


def _finish_data_quality() -> dict[str, Column]:
    return {"duplicates": F.col("raw_events") - F.col("events")}


def _finish_data_quality_py(r: dict) -> dict:
    return {"duplicates": r["raw_events"] - r["events"]}


def _finish_sessions() -> dict[str, Column]:
    bits = F.col("bits")
    pages = sum((bits.bitwiseAND(b) != 0).cast("int") for b in PAGE_BIT.values())
    return {
        "duration_ms": (F.unix_millis("end_ts") - F.unix_millis("start_ts")).cast("long"),
        "pages": pages.cast("int"),
        **{k: bits.bitwiseAND(b) != 0 for k, b in STAGE_BITS.items()},
        "bounced": pages == 1,
        "utm_campaign": F.coalesce("utm_campaign", F.lit(NONE)),
        "utm_source": F.coalesce("utm_source", F.lit(NONE)),
    }


def _finish_sessions_py(r: dict) -> dict:
    bits = r["bits"]
    pages = sum(1 for b in PAGE_BIT.values() if bits & b)
    return {
        "duration_ms": r["end_ts"] // 1000 - r["start_ts"] // 1000,  # unix_millis floors
        "pages": pages,
        **{k: bits & b != 0 for k, b in STAGE_BITS.items()},
        "bounced": pages == 1,
        "utm_campaign": NONE if r["utm_campaign"] is None else r["utm_campaign"],
        "utm_source": NONE if r["utm_source"] is None else r["utm_source"],
    }


W = tb  # short alias for the table specs below
HOUR = 3600
SESSION_PIECE = 300  # seconds: the sessions' pieces (see session_5min)
AGGREGATES: tuple[Aggregate, ...] = (
    Aggregate("page_minute", 60, is_event, (("page", c("page")),),
              (Metric("page_views", SUM, c("is_view")),),
              (Output(W.TIME_AGG, ("page_views",), present=("page_views",)),)),
    Aggregate("campaign_5min", 300, with_campaign,
              (("utm_campaign", c("utm_campaign")), ("utm_source", none_if_null("utm_source"))),
              (Metric("events", SUM, one),),
              (Output(W.CAMPAIGN_EVENTS, ("events",)),)),
    Aggregate("campaign_hourly", HOUR, with_campaign, (("utm_campaign", c("utm_campaign")),),
              (Metric("add_to_cart", SUM, c("is_atc")), Metric("purchases", SUM, c("is_buy"))),
              (Output(W.CAMPAIGN_ACTIONS, ("add_to_cart", "purchases"),
                      present=("add_to_cart", "purchases")),)),
    # product detail views are page=product & action=view (the original's were always 0)
    Aggregate("product_hourly", HOUR, with_product, (("product_id", c("product_id")),),
              (Metric("views", SUM, c("is_pview")), Metric("add_to_cart", SUM, c("is_atc")),
               Metric("purchases", SUM, c("is_buy")), Metric("buy_units", SUM, c("buy_units")),
               Metric("revenue_cents", SUM, c("buy_cents")),
               Metric("cart_units", SUM, c("cart_units"))),
              (Output(W.PRODUCT_VIEWS, ("views",), present=("views",)),
               Output(W.PRODUCT_ACTIONS, ("views", "add_to_cart"),
                      present=("views", "add_to_cart")),
               Output(W.PRODUCT_PURCHASES, ("purchases", "buy_units:units", "revenue_cents"),
                      present=("purchases",)),
               Output(W.PRODUCT_CART_ADDITIONS, ("add_to_cart:cart_additions",
                                                 "cart_units:units"),
                      present=("cart_additions",)))),
    Aggregate("page_10min", 600, is_event, (("page", c("page")),),
              (Metric("duration_ms_sum", SUM, c("page_duration_ms")), Metric("events", SUM, one)),
              (Output(W.AGG_DURATION, ("duration_ms_sum", "events")),)),
    Aggregate("site_hourly", HOUR, is_event, (),
              (Metric("page_views", SUM, c("is_view")), Metric("purchases", SUM, c("is_buy")),
               Metric("units", SUM, c("buy_units")),
               Metric("revenue_cents", SUM, c("buy_cents"))),
              (Output(W.WEBSITE_VIEWS, ("page_views",), present=("page_views",)),
               Output(W.REVENUE_HOURLY, ("purchases", "units", "revenue_cents"),
                      present=("purchases",)))),
    Aggregate("device_hourly", HOUR, is_event, (("device_type", c("device_type")),),
              (Metric("page_views", SUM, c("is_view")),),
              (Output(W.DEVICE_DISTRIBUTION, ("page_views",), present=("page_views",)),)),
    # every received message (_deliveries) vs every distinct event (_event)
    Aggregate("quality_minute", 60, lambda: (F.col("_event") + F.col("_deliveries")) > 0, (),
              (Metric("raw_events", SUM, c("_deliveries")), Metric("events", SUM, c("_event"))),
              (Output(W.DATA_QUALITY, ("raw_events", "events"), _finish_data_quality,
                      finish_py=_finish_data_quality_py),)),
    # Sessions in 5-minute pieces (`session_partials`), folded into one `sessions` row per
    # session and day (`fold_sessions`): the stream's state then holds a session for 5
    # minutes plus the watermark instead of all day -- with day windows every micro-batch's
    # eviction scan grew with the day's sessions until a day-long run could not keep up
    # (README, "Streaming latency, live"). Every metric folds with its own reducer.
    # A session's string attributes are KEYS (strings never enter a buffer, see SLOTS): one
    # piece per distinct (session, user, campaign, source, device) and 5 minutes -- exactly
    # one for the sessions a client writes, which stamps them on every event of a session;
    # the fold takes the greatest of each over all the session's pieces (as `max` would).
    Aggregate("session_5min", SESSION_PIECE, is_event,
              (("session_id", c("session_id")), ("user_id", c("user_id")),
               ("utm_campaign", none_if_null("utm_campaign")),
               ("utm_source", none_if_null("utm_source")), ("device_type", c("device_type"))),
              (Metric("start_ts", MIN_TS, c("timestamp")),
               Metric("end_ts", MAX_TS, c("timestamp")),
               Metric("events", SUM, one),
               Metric("revenue_cents", SUM, c("buy_cents")),
               Metric("bits", BITS, c("sbits"))),
              (Output(W.SESSION_PARTIALS, ("start_ts", "end_ts", "events", "revenue_cents",
                                           "bits")),)),
)
BY_NAME: dict[str, Aggregate] = {a.name: a for a in AGGREGATES}
#: table name -> (aggregate, output)
BY_TABLE: dict[str, tuple[Aggregate, Output]] = {
    o.table.name: (a, o) for a in AGGREGATES for o in a.outputs}
FIRST_LEVEL = tuple(BY_TABLE)
#: folded from the first level: table -> the table whose rows it folds (`fold_sessions`)
FOLDED = {"sessions": "session_partials"}
#: the second level's finest grain, a "cell": sessions by (day, start hour, campaign,
#: source) with these sums (`session_cells`). Its tables roll the cells up by their primary
#: key (a prefix of CELL_KEYS): table -> {its column: the cell sum it adds up}
CELL_KEYS = (tb.DAY, tb.WINDOW_START, "utm_campaign", "utm_source")
CELL_SUMS = ("sessions", "reached_product", "reached_cart", "reached_checkout", "converted",
             "revenue_cents")
SECOND_LEVEL: dict[str, dict[str, str]] = {
    "funnel_hourly": {"sessions": "sessions", "reached_product": "reached_product",
                      "reached_cart": "reached_cart", "reached_checkout": "reached_checkout",
                      "purchased": "converted"},
    "campaign_conversion": {"sessions": "sessions", "converted": "converted",
                            "revenue_cents": "revenue_cents"},
}


# --------------------------------------------------------------------------- windows
def window_start(ts: Column, seconds: int) -> Column:
    """Start of the tumbling window of `seconds` holding `ts` (aligned to the epoch, UTC)."""
    us = F.unix_micros(ts)
    return F.timestamp_micros(us - F.pmod(us, F.lit(seconds * 1_000_000)))


# --------------------------------------------------------------------------- tagging
def tag_struct(agg: str | Column, wstart: Column, wend: Column, keys: list[Column],
               slots: dict[str, Column]) -> Column:
    """A tagged row as a struct of TAG_FIELDS; unused keys and slots are null."""
    fields = [F.lit(agg).alias("agg") if isinstance(agg, str) else agg.alias("agg"),
              wstart.alias("wstart"), wend.alias("wend")]
    for i in range(N_KEYS):
        fields.append((keys[i] if i < len(keys) else F.lit(None)).cast("string").alias(f"k{i}"))
    for kind, (_, dtype, _) in SLOTS.items():
        for s in slot_names(kind):
            fields.append((slots[s] if s in slots else F.lit(None)).cast(dtype).alias(s))
    return F.struct(*fields)


def _tag(a: Aggregate) -> Column:
    slot_of = a.slot_of()
    slots = {slot_of[m.name]: m.expr() for m in a.metrics}
    row = tag_struct(a.name, F.col(f"w{a.window_seconds}"), F.col(f"we{a.window_seconds}"),
                     [k() for _, k in a.keys], slots)
    return F.when(a.where(), row)


def tag_rows(events: DataFrame, aggregates: tuple[Aggregate, ...] = AGGREGATES,
             extra: list[Column] = (), keep: tuple[str, ...] = ()) -> DataFrame:
    """Each event -> one tagged row per aggregate it contributes to (columns TAG_FIELDS).

    `extra`: more `tag_struct` columns (null when not applicable) over the `keep` columns,
    e.g. the stream's dead letters."""
    prepared = prepare(events, keep)
    structs = [*(_tag(a) for a in aggregates), *extra]
    tagged = prepared.select(F.explode(F.array(*structs)).alias("r"))
    return tagged.where(F.col("r").isNotNull()).select("r.*")


def reduce(tagged: DataFrame, wend: Column | None = None) -> DataFrame:
    """ONE groupBy over all tagged rows: (agg, window, keys) -> reduced slots.

    `wend` lets the stream runner pass the window end carrying the watermark marker.
    """
    aggs = [SLOTS[kind][2](s).alias(s) for kind in SLOTS for s in slot_names(kind)]
    if wend is not None:
        # a projection, not a grouping alias: the analyser strips aliases (and their
        # metadata) from grouping expressions
        tagged = tagged.select(*(wend if f == "wend" else F.col(f) for f in TAG_FIELDS))
    keys = ["agg", "wstart", "wend", *(f"k{i}" for i in range(N_KEYS))]
    return tagged.groupBy(*keys).agg(*aggs)


def reduce_one(prepared: DataFrame, a: Aggregate) -> DataFrame:
    """One aggregate's reduced rows (same columns as `reduce`'s rows of `a`) with its own
    groupBy over `prepare`d events: the batch runner's plan. Without a state store to share,
    a small hash aggregation per aggregate spares exploding every event into tagged structs
    (10.2M events into Cassandra: 298 s vs 345 s with the one groupBy, measured when string
    slots still existed, `python bench/bench_processor.py batch --events 10000000`)."""
    slot_of = a.slot_of()
    keys = [k().cast("string").alias(f"k{i}") for i, (_, k) in enumerate(a.keys)]
    metrics = [SLOTS[m.kind][2](m.expr().cast(SLOTS[m.kind][1])).alias(slot_of[m.name])
               for m in a.metrics]
    return (prepared.where(a.where())
            .groupBy(F.lit(a.name).alias("agg"), F.col(f"w{a.window_seconds}").alias("wstart"),
                     F.col(f"we{a.window_seconds}").alias("wend"), *keys)
            .agg(*metrics))


@dataclass(frozen=True)
class Projection:
    """How one table's rows come from the reduced rows: its Column expressions, built once.

    Columns do not depend on a DataFrame, so the stream runner builds these once and
    applies them to every micro-batch: rebuilding them took ~1,300 py4j round trips
    (1.1-2.7 s of driver time) per micro-batch for the 13 tables."""
    name: str
    rows: Column  # which reduced rows
    columns: list[Column]  # the table's columns before `finish`
    present: Column | None
    finish: dict[str, Column]
    typed: list[Column]  # exactly the table's columns, typed, in table order


def projection(name: str) -> Projection:
    a, out = BY_TABLE[name]
    slot_of = a.slot_of()
    cols = [F.to_date("wstart").alias(tb.DAY)]
    if tb.WINDOW_START in out.table.column_names:
        cols.append(F.col("wstart").alias(tb.WINDOW_START))
    cols += [F.col(f"k{i}").alias(k) for i, (k, _) in enumerate(a.keys)]
    for m in out.metrics:
        metric, _, column = m.partition(":")
        cols.append(F.col(slot_of[metric]).alias(column or metric))
    present = (F.greatest(*(F.col(p) for p in out.present), F.lit(0)) > 0
               if out.present else None)
    return Projection(name, F.col("agg") == a.name, cols, present,
                      out.finish() if out.finish else {},
                      [_typed(out.table, c) for c in out.table.column_names])


def table_rows(reduced: DataFrame, name: str, p: Projection | None = None) -> DataFrame:
    """The rows of table `name`, with exactly its columns (in table order). `p`: its
    `projection`, if already built."""
    p = p or projection(name)
    df = reduced.where(p.rows).select(*p.columns)
    if p.present is not None:
        df = df.where(p.present)
    if p.finish:
        df = df.withColumns(p.finish)
    return df.select(*p.typed)


def _session_folds() -> tuple[Aggregate, Output, list[str]]:
    """The pieces' aggregate, output and attributes (their keys after session_id)."""
    a, out = BY_TABLE[FOLDED["sessions"]]
    return a, out, [k for k, _ in a.keys[1:]]


def fold_sessions(partials: DataFrame) -> DataFrame:
    """`sessions` rows from `session_partials` rows (any subset of whole sessions): per
    (day, session), each metric folded with its own reducer (min of the starts, sum of the
    events, bit-or of the bits...), each attribute the greatest but '(none)', then
    `_finish_sessions`. `local_rows.fold_sessions` is its Python twin (a unit test pins
    them equal)."""
    a, out, attributes = _session_folds()
    kinds = {m.name: m.kind for m in a.metrics}
    # strings as buffers: a sort-based aggregate, but over the pieces, never the events
    df = partials.groupBy(tb.DAY, "session_id").agg(
        *(SLOTS[kinds[m]][2](m).alias(m) for m in out.metrics),
        *(F.max(F.when(F.col(k) != NONE, F.col(k))).alias(k) for k in attributes))
    return df.withColumns(_finish_sessions()).select(
        *(_typed(tb.SESSIONS, col) for col in tb.SESSIONS.column_names))


def session_cells(sessions: DataFrame, sign: Column | None = None) -> DataFrame:
    """The second level's cells (`CELL_KEYS` + `CELL_SUMS`) of `sessions` rows, each row
    weighed by `sign` (+1/-1: the cells' change from old rows to new ones), or 1.
    `local_rows.session_cell` is its Python twin (a unit test pins them equal)."""
    w = F.lit(1) if sign is None else sign
    value = {"sessions": F.lit(1), "revenue_cents": F.coalesce("revenue_cents", F.lit(0)),
             **{s: F.col(s).cast("long") for s in CELL_SUMS[1:-1]}}
    return sessions.groupBy(
        F.col(tb.DAY), window_start(F.col("start_ts"), HOUR).alias(tb.WINDOW_START),
        F.coalesce("utm_campaign", F.lit(NONE)).alias("utm_campaign"),
        F.coalesce("utm_source", F.lit(NONE)).alias("utm_source"),
    ).agg(*(F.sum((w * value[s]).cast("long")).alias(s) for s in CELL_SUMS))


def from_cells(cells: DataFrame, name: str) -> DataFrame:
    """Second-level table `name`'s rows: the cells rolled up by its primary key; a key with
    no sessions has no row."""
    table = tb.table(name)
    df = cells.groupBy(*table.primary_key).agg(
        *(F.sum(cell).alias(col) for col, cell in SECOND_LEVEL[name].items()))
    return df.where(F.col("sessions") > 0).select(
        *(_typed(table, col) for col in table.column_names))


def _typed(table: tb.Table, col: str) -> Column:
    return F.col(col).cast(table.column(col).spark_type).alias(col)


def all_tables(events: DataFrame, cache: Callable[[DataFrame], DataFrame] = lambda df: df,
               pieces: bool = False) -> dict[str, DataFrame]:
    """Every analytics table's rows, the batch way (`reduce_one` per aggregate): the batch
    runner's plan, and the unit tests'. `cache` is applied to each aggregate's reduced rows
    (the runner persists them: several tables and the second level read them). `pieces`:
    also the sessions' pieces (`session_partials`), which only a streaming job reads back:
    for rows written as the streaming job would have written them."""
    prepared = prepare(events)
    reduced = {a.name: cache(reduce_one(prepared, a)) for a in AGGREGATES}
    out = {}
    for a in AGGREGATES:
        for o in a.outputs:
            out[o.table.name] = table_rows(reduced[a.name], o.table.name)
    # the pieces are the stream's state made durable; a batch folds them at once
    for name, source in FOLDED.items():
        out[name] = fold_sessions(cache(out[source]) if pieces else out.pop(source))
    # the sessions rows are read twice: written, and rolled up into the second level's cells
    out["sessions"] = cache(out["sessions"])
    cells = cache(session_cells(out["sessions"]))  # both second-level tables roll them up
    for name in SECOND_LEVEL:
        out[name] = from_cells(cells, name)
    return out
