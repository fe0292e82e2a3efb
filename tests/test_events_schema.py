"""One declaration, every representation: JSON, Spark, Polars and CSV agree with FIELDS."""

from __future__ import annotations

import pytest

from shared import events
from shared.events import FIELD_NAMES, FIELDS, InvalidEvent


def event(**over) -> dict:
    base = {
        "schema_version": 1, "event_id": "e-1", "timestamp": 1_764_237_300_123,
        "sent_at": 1_764_237_300_500, "user_id": "u-1", "session_id": "s-1", "page": "product",
        "action": "view", "page_url": "/p/42", "product_id": "p-42", "category": "shoes",
        "element_id": None, "position_x": None, "position_y": None, "referrer": None,
        "utm_source": None, "utm_medium": None, "utm_campaign": None, "device_type": "mobile",
        "os": "iOS", "browser": "Safari", "language": "en-GB", "ip_address": "81.2.69.160",
        "geo_country": "GB", "geo_city": "London", "geo_region": "ENG",
        "page_duration_ms": 12_345, "scroll_depth_percent": 40, "ab_test_variant": "A",
        "is_logged_in": False, "price_cents": 4_999, "quantity": None, "order_id": None,
        "revenue_cents": None,
    }
    base.update(over)
    return base


def test_events_timestamp_format_is_iso_ms_z():
    assert events.format_ts(1_764_237_300_123) == "2025-11-27T09:55:00.123Z"
    assert events.format_ts(0) == "1970-01-01T00:00:00.000Z"
    assert events.parse_ts("2025-11-27T09:55:00.123Z") == 1_764_237_300_123


@pytest.mark.parametrize("bad", ["2025-11-27 09:55:00.123Z", "2025-11-27T09:55:00Z",
                                 "2025-11-27T09:55:00.123+00:00", "yesterday", ""])
def test_events_parse_ts_rejects_other_formats(bad):
    with pytest.raises(ValueError):
        events.parse_ts(bad)


def test_events_json_round_trip_keeps_every_field_in_order():
    ev = event()
    payload = events.encode(ev)
    assert payload.startswith(b'{"schema_version":1,"event_id":"e-1","timestamp":"2025-11-27T09:55')
    assert events.decode(payload) == ev


@pytest.mark.parametrize("payload,reason", [
    (b"{not json", "not JSON"),
    (b"[1,2]", "not an object"),
    (b'{"event_id": "x"}', "missing fields"),
])
def test_events_decode_gives_a_reason_for_bad_payloads(payload, reason):
    with pytest.raises(InvalidEvent, match=reason):
        events.decode(payload)


@pytest.mark.parametrize("change,reason", [
    ({"page": "admin"}, "unknown page"),
    ({"action": "teleport"}, "unknown action"),
    ({"user_id": None}, "user_id is null"),
    ({"quantity": True}, "quantity should be int"),
    ({"position_x": 2**40}, "out of 32-bit range"),
    ({"extra": 1}, "unknown fields: extra"),
])
def test_events_validate_names_the_problem(change, reason):
    with pytest.raises(InvalidEvent, match=reason):
        events.validate(event(**change))


def test_events_decode_rejects_a_bad_timestamp():
    raw = events.encode(event()).replace(b".123Z", b".123")
    with pytest.raises(InvalidEvent, match="timestamp"):
        events.decode(raw)


def test_events_spark_schema_matches_fields():
    from pyspark.sql import types as t

    schema = events.spark_schema()
    assert schema.fieldNames() == list(FIELD_NAMES)
    by_kind = {events.Kind.STRING: t.StringType, events.Kind.INT: t.IntegerType,
               events.Kind.LONG: t.LongType, events.Kind.BOOL: t.BooleanType,
               events.Kind.TIMESTAMP: t.TimestampType}
    for f, sf in zip(FIELDS, schema.fields, strict=True):
        assert isinstance(sf.dataType, by_kind[f.kind]) and sf.nullable == f.nullable


def test_events_polars_schema_and_csv_header_match_fields():
    import polars as pl

    schema = events.polars_schema()
    assert list(schema.names()) == list(FIELD_NAMES) == list(events.CSV_HEADER)
    assert schema["timestamp"] == pl.Datetime("ms", "UTC")
    assert schema["price_cents"] == pl.Int64 and schema["position_x"] == pl.Int32


def test_events_polars_csv_round_trip_uses_the_wire_timestamp_format(tmp_path):
    import polars as pl

    ev = event()
    df = pl.DataFrame([ev], schema={**events.polars_schema(),
                                    "timestamp": pl.Int64, "sent_at": pl.Int64})
    df = df.with_columns(pl.col("timestamp", "sent_at").cast(pl.Datetime("ms", "UTC")))
    path = tmp_path / "e.csv"
    df.write_csv(path, datetime_format=events.CSV_TIMESTAMP_FORMAT)
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(FIELD_NAMES)
    assert "2025-11-27T09:55:00.123Z" in text
    back = pl.read_csv(path, schema=events.polars_schema())
    assert back.row(0, named=True)["timestamp"].isoformat() == "2025-11-27T09:55:00.123000+00:00"


def rule_breaks() -> list[tuple[str, object]]:
    """One event change per rule of events.REQUIRED / events.ALLOWED: (field, bad value)."""
    return ([(name, None) for name in events.REQUIRED]
            + [(name, max(values) + 1 if isinstance(values[0], int) else "no-such-" + name)
               for name, values in events.ALLOWED.items()])


def event_v2(**over) -> dict:
    """`event()` sent as version 2 (from India: prices in INR), with `over` applied."""
    return {**events.from_internal(event(geo_country="IN", geo_city="Mumbai",
                                         geo_region="MH"), 2), **over}


def version_rule_breaks() -> list[tuple[str, dict]]:
    """One whole event per rule of the versions beyond REQUIRED / ALLOWED: each rule of
    version 2 broken on a v2 event, and a field of the other version set on each:
    (field named by the reason, event)."""
    v2 = events.V2
    out = [(name, event_v2(**{name: None})) for name in v2.required]
    out += [(name, event_v2(**{name: "no-such-" + name})) for name in v2.allowed]
    out += [(name, event_v2(**{name: 83 * 7 + 1})) for name in v2.priced_names]  # INR
    out += [("page_duration_ms", event_v2(page_duration_ms=5)),
            ("currency", event(currency="USD"))]
    return out


def test_events_rules_are_the_non_nullable_fields_and_the_closed_vocabularies():
    assert events.REQUIRED == tuple(f.name for f in FIELDS if not f.nullable)
    assert events.ALLOWED == {"schema_version": (1, 2), "page": events.PAGES,
                              "action": events.ACTIONS}
    assert events.SCHEMA_VERSION in events.SCHEMA_VERSIONS  # the producer's is readable


@pytest.mark.parametrize("name,bad", rule_breaks())
def test_events_every_rule_is_kept_by_python_and_by_the_polars_reader(tmp_path, name, bad):
    """The Python validator and the CSV reader render the same rule list: each broken
    rule is an error naming its field in both."""
    import polars as pl

    from shared.errors import ClickstreamError
    from testing.csv_reader import read_events

    with pytest.raises(InvalidEvent, match=name):
        events.validate(event(**{name: bad}))
    ev = event(**{name: bad})
    schema = {**events.polars_schema(), "timestamp": pl.Int64, "sent_at": pl.Int64}
    df = pl.DataFrame([ev], schema=schema).with_columns(
        pl.col("timestamp", "sent_at").cast(pl.Datetime("ms", "UTC")))
    path = tmp_path / "2025-11-27.csv"
    df.write_csv(path, datetime_format=events.CSV_TIMESTAMP_FORMAT)
    with pytest.raises(ClickstreamError, match=name):
        read_events(path)
