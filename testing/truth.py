"""The truth: every analytics table computed independently with Polars from raw events.

Written from the table docs (`shared.tables`), NOT from the Spark code: nothing here imports
`services.processor`. The truth test compares every `_batch` (and streaming) table in
Cassandra with these frames, row for row, exactly.

Input: all received events (duplicates included), columns of `shared.events.polars_schema()`
(the internal shape: `normalise` turns received events of any schema version into it).
Output: table name -> DataFrame with exactly the table's columns, sorted by its primary key.

    from testing.truth import read_csv_days, truth
    frames = truth(read_csv_days("data/days"))
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shared import tables as tb
from shared.events import (
    CSV_TIMESTAMP_FORMAT,
    CURRENCY,
    FIELD_NAMES,
    RATES,
    SCHEMA_VERSION,
    SCHEMAS,
    WIRE_FIELDS,
    Kind,
    polars_schema,
)

NONE = tb.NONE_KEY


def read_csv_days(path: str | Path) -> pl.DataFrame:
    """All CSV files under `path` (a folder, a file or a glob), parsed with the shared schema
    of their header (one version's, or every version's) and normalised to the internal
    shape."""
    p = Path(path)
    files = sorted(p.glob("*.csv")) if p.is_dir() else sorted(Path().glob(str(path))) or [p]
    wire = polars_schema(WIRE_FIELDS)
    frames = []
    for f in files:
        with open(f, encoding="utf-8") as text:
            header = text.readline().rstrip("\r\n").split(",")
        read_as = {n: pl.String if wire[n] == pl.Datetime("ms", "UTC") else wire[n]
                   for n in header}
        frames.append(with_wire_columns(pl.read_csv(f, schema=read_as)))
    df = pl.concat(frames)
    return normalise(df.with_columns(
        pl.col(f.name).str.strptime(pl.Datetime("ms", "UTC"), CSV_TIMESTAMP_FORMAT, strict=True)
        for f in WIRE_FIELDS if f.kind is Kind.TIMESTAMP
    ))


def with_wire_columns(df: pl.DataFrame) -> pl.DataFrame:
    """`df` with every version's columns (WIRE_FIELDS order), those it lacks as nulls."""
    wire = polars_schema(WIRE_FIELDS)
    return df.with_columns(pl.lit(None, dtype=wire[n]).alias(n)
                           for n in wire.names() if n not in df.columns).select(wire.names())


def normalise(received: pl.DataFrame) -> pl.DataFrame:
    """Received events of any schema version (the columns of one version, or of all) ->
    the internal shape, as the job must see them: each version's name of a field mapped
    back, amounts in minor units of `currency` divided by its demo rate (exact for a valid
    event), the version's own fields dropped, schema_version the internal one. Written
    from the declaration in `shared.events` (SCHEMAS, RATES), not from the Spark code."""
    df = with_wire_columns(received)
    version = pl.col("schema_version")
    rate = pl.col(CURRENCY).replace_strict(RATES, default=None, return_dtype=pl.Int64)
    columns = []
    for name in FIELD_NAMES:
        if name == "schema_version":
            columns.append(pl.lit(SCHEMA_VERSION, dtype=pl.Int32).alias(name))
            continue
        expr = None
        for schema in SCHEMAS.values():
            if schema.source[name] == name and name not in schema.priced:
                continue  # read as it is
            value = pl.col(schema.source[name])
            if name in schema.priced:
                value = value // rate
            expr = (pl.when(version == schema.version) if expr is None
                    else expr.when(version == schema.version)).then(value)
        columns.append(pl.col(name) if expr is None
                       else expr.otherwise(pl.col(name)).alias(name))
    return df.select(columns).cast(dict(polars_schema()))


def _win(col: str, every: str) -> pl.Expr:
    return pl.col(col).dt.truncate(every)


def _day(col: str = "window_start") -> pl.Expr:
    return pl.col(col).dt.date().alias("day")


def _i(expr: pl.Expr) -> pl.Expr:
    return expr.cast(pl.Int64)


def truth(raw: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Every analytics table (stream/batch twins have the same rows) from raw deliveries."""
    ev = raw.unique(subset=["event_id"], keep="first", maintain_order=True)
    view = pl.col("action") == "view"
    pview = (pl.col("page") == "product") & view
    atc = pl.col("action") == "add_to_cart"
    buy = pl.col("action") == "purchase"
    qty = pl.col("quantity").fill_null(0)
    rev = pl.col("revenue_cents").fill_null(0)
    camp = ev.filter(pl.col("utm_campaign").is_not_null())
    prod = ev.filter(pl.col("product_id").is_not_null())
    hour = _win("timestamp", "1h").alias("window_start")

    # A row only for a key and window where the table's event happened (README, "No all-zero
    # rows"): each table groups the events it counts, so no row of all zeros can appear.
    views, buys, carts = ev.filter(view), ev.filter(buy), ev.filter(atc)
    out: dict[str, pl.DataFrame] = {}
    out["time_agg"] = views.group_by(_win("timestamp", "1m").alias("window_start"), "page").agg(
        pl.len().cast(pl.Int64).alias("page_views"))
    out["campaign_events"] = camp.group_by(
        _win("timestamp", "5m").alias("window_start"), "utm_campaign",
        pl.col("utm_source").fill_null(NONE)).agg(pl.len().cast(pl.Int64).alias("events"))
    out["campaign_actions"] = camp.filter(atc | buy).group_by(hour, "utm_campaign").agg(
        _i(atc.sum()).alias("add_to_cart"), _i(buy.sum()).alias("purchases"))
    out["product_views"] = prod.filter(pview).group_by(hour, "product_id").agg(
        pl.len().cast(pl.Int64).alias("views"))
    out["product_actions"] = prod.filter(pview | atc).group_by(hour, "product_id").agg(
        _i(pview.sum()).alias("views"), _i(atc.sum()).alias("add_to_cart"))
    out["agg_duration"] = ev.group_by(_win("timestamp", "10m").alias("window_start"), "page").agg(
        _i(pl.col("page_duration_ms").sum()).alias("duration_ms_sum"),
        pl.len().cast(pl.Int64).alias("events"))
    out["product_purchases"] = buys.filter(pl.col("product_id").is_not_null()).group_by(
        hour, "product_id").agg(pl.len().cast(pl.Int64).alias("purchases"),
                                _i(qty.sum()).alias("units"), _i(rev.sum()).alias("revenue_cents"))
    out["product_cart_additions"] = carts.filter(pl.col("product_id").is_not_null()).group_by(
        hour, "product_id").agg(pl.len().cast(pl.Int64).alias("cart_additions"),
                                _i(qty.sum()).alias("units"))
    out["website_views"] = views.group_by(hour).agg(pl.len().cast(pl.Int64).alias("page_views"))
    out["device_distribution"] = views.group_by(hour, "device_type").agg(
        pl.len().cast(pl.Int64).alias("page_views"))
    out["revenue_hourly"] = buys.group_by(hour).agg(
        pl.len().cast(pl.Int64).alias("purchases"), _i(qty.sum()).alias("units"),
        _i(rev.sum()).alias("revenue_cents"))

    # data quality: every received copy vs distinct event_ids, per event-time minute
    minute = _win("timestamp", "1m").alias("window_start")
    raw_n = raw.group_by(minute).agg(pl.len().cast(pl.Int64).alias("raw_events"))
    ev_n = ev.group_by(minute).agg(pl.len().cast(pl.Int64).alias("events"))
    out["data_quality"] = raw_n.join(ev_n, on="window_start", how="left").with_columns(
        pl.col("events").fill_null(0)).with_columns(
        (pl.col("raw_events") - pl.col("events")).alias("duplicates"))

    # sessions: per (UTC day, session_id)
    sess = ev.with_columns(pl.col("timestamp").dt.date().alias("day")).group_by(
        "day", "session_id").agg(
        pl.col("user_id").max(),
        pl.col("timestamp").min().alias("start_ts"),
        pl.col("timestamp").max().alias("end_ts"),
        pl.len().cast(pl.Int64).alias("events"),
        pl.col("page").n_unique().cast(pl.Int32).alias("pages"),
        pview.any().alias("reached_product"),
        atc.any().alias("reached_cart"),
        (pl.col("action") == "begin_checkout").any().alias("reached_checkout"),
        buy.any().alias("converted"),
        _i(pl.when(buy).then(rev).otherwise(0).sum()).alias("revenue_cents"),
        pl.col("utm_campaign").max().fill_null(NONE),
        pl.col("utm_source").max().fill_null(NONE),
        pl.col("device_type").max(),
    ).with_columns(
        (pl.col("end_ts") - pl.col("start_ts")).dt.total_milliseconds().cast(pl.Int64)
        .alias("duration_ms"),
        (pl.col("pages") == 1).alias("bounced"),
    )
    out["sessions"] = sess

    s_hour = _win("start_ts", "1h").alias("window_start")
    out["funnel_hourly"] = sess.group_by(s_hour).agg(
        pl.len().cast(pl.Int64).alias("sessions"),
        *(_i(pl.col(f).sum()).alias(f) for f in
          ("reached_product", "reached_cart", "reached_checkout")),
        _i(pl.col("converted").sum()).alias("purchased"))
    out["campaign_conversion"] = sess.group_by(s_hour, "utm_campaign", "utm_source").agg(
        pl.len().cast(pl.Int64).alias("sessions"), _i(pl.col("converted").sum()).alias("converted"),
        _i(pl.col("revenue_cents").sum()).alias("revenue_cents"))

    for name, df in out.items():
        t = tb.table(name)
        if "day" not in df.columns:
            df = df.with_columns(_day())
        out[name] = df.select(t.column_names).sort(t.primary_key)
    return out
