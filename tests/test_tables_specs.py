"""The table specs: DDL shape, keys and reader helpers agree with the specs."""

import datetime as dt
import re

import pytest

from shared import tables as T

IDENT = re.compile(r"^[a-z][a-z0-9_]*$")


def test_tables_names_are_unique_and_identifiers():
    names = [t.name for t in T.TABLES]
    assert len(names) == len(set(names))
    assert all(IDENT.match(n) for n in names)


def test_tables_include_the_ten_originals_their_twins_and_dead_letter():
    names = {t.name for t in T.TABLES}
    originals = {"time_agg", "campaign_events", "campaign_actions", "product_views",
                 "product_actions", "agg_duration", "product_purchases",
                 "product_cart_additions", "website_views", "device_distribution"}
    beyond = {"revenue_hourly", "sessions", "funnel_hourly", "campaign_conversion",
              "data_quality"}
    for n in originals | beyond:
        assert n in names and n + "_batch" in names
    assert {"dead_letter", "ingest_quality"} <= names


@pytest.mark.parametrize("t", T.TABLES, ids=lambda t: t.name)
def test_tables_keys_and_roles_are_columns(t):
    cols = t.column_names
    assert len(cols) == len(set(cols))
    for c in (*t.partition_key, *(c for c, _ in t.clustering), *t.keys, *t.metrics):
        assert c in cols, c
    assert set(t.keys).isdisjoint(t.metrics)
    # every column is a key, the time column, the day, or a metric/attribute
    assert t.partition_key == ("day",)
    if t.time_column:
        assert t.clustering[0][0] == t.time_column
    for _, order in t.clustering:
        assert order in ("ASC", "DESC")


@pytest.mark.parametrize("t", T.ANALYTICS, ids=lambda t: t.name)
def test_tables_analytics_metrics_are_exact_types(t):
    # no floating averages: every metric is an integer, boolean or timestamp
    for m in t.metrics:
        assert t.cql_type(m) in ("bigint", "int", "boolean", "timestamp"), m


def test_tables_create_cql_time_agg_exact_text():
    assert T.TIME_AGG.create_cql("ks") == (
        "CREATE TABLE IF NOT EXISTS ks.time_agg (day date, window_start timestamp, page text, "
        "page_views bigint, PRIMARY KEY ((day), window_start, page)) "
        "WITH CLUSTERING ORDER BY (window_start ASC, page ASC)"
    )


@pytest.mark.parametrize("t", T.TABLES, ids=lambda t: t.name)
def test_tables_create_cql_lists_every_column_once(t):
    cql = t.create_cql("ks")
    assert cql.startswith(f"CREATE TABLE IF NOT EXISTS ks.{t.name} (")
    body = cql[cql.index("(") + 1: cql.index("PRIMARY KEY")]
    declared = [part.strip().split()[0] for part in body.split(",") if part.strip()]
    assert declared == list(t.column_names)
    assert "ALLOW FILTERING" not in cql


def test_tables_batch_twin_has_same_columns_and_key():
    twin = T.table("product_actions_batch")
    assert twin.columns == T.PRODUCT_ACTIONS.columns
    assert twin.primary_key == T.PRODUCT_ACTIONS.primary_key
    assert twin.mode == "batch"


def test_tables_select_range_is_a_partition_slice():
    cql = T.TIME_AGG.select_range("ks", ("window_start", "page", "page_views"))
    assert cql == ("SELECT window_start, page, page_views FROM ks.time_agg "
                   "WHERE day = ? AND window_start >= ? AND window_start < ?")
    assert T.SESSIONS.select_range("ks").endswith("FROM ks.sessions WHERE day = ?")


def test_tables_range_params_one_per_day():
    start = dt.datetime(2026, 1, 1, 22, tzinfo=dt.UTC)
    end = dt.datetime(2026, 1, 3, 0, tzinfo=dt.UTC)  # exclusive: Jan 3 not needed
    params = T.TIME_AGG.range_params(start, end)
    assert [p[0] for p in params] == [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
    assert params[0][1:] == (start, end)
    assert T.SESSIONS.range_params(start, end)[1] == (dt.date(2026, 1, 2),)


def test_tables_unknown_name_says_which_exist():
    with pytest.raises(KeyError, match="time_agg"):
        T.table("nope")


def test_tables_engine_types_are_declared_once_on_the_column():
    """Every CQL type maps to one Spark and one pandas type; an unknown one is refused."""
    assert T.SESSIONS.column("start_ts").spark_type == "timestamp"
    assert T.SESSIONS.column("events").pandas_dtype == "int64"
    assert T.INGEST_QUALITY.spark_schema().startswith("day date, ")
    with pytest.raises(ValueError, match="varint"):
        T.Column("x", "varint")
