"""The clickstream event: declared once, every other representation derived.

`FIELDS` is the single declaration. From it come the JSON encoder/decoder used on
Kafka, the Spark `StructType`, the Polars schema and the CSV header. A unit test
asserts they agree.

In Python an event is a plain dict keyed by field name. Timestamps are held as
integer milliseconds since the epoch (UTC) -- cheap to generate and exact -- and
rendered as ISO-8601 with millisecond precision and a `Z` on the wire and in CSV.
Money is integer cents so that sums are exact.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import Enum

SCHEMA_VERSION = 1
#: the versions this build reads; an event of any other goes to the dead letters, uncounted
SCHEMA_VERSIONS: tuple[int, ...] = (SCHEMA_VERSION,)


class Kind(Enum):
    STRING = "string"
    INT = "int"  # 32-bit
    LONG = "long"  # 64-bit
    BOOL = "bool"
    TIMESTAMP = "timestamp"  # epoch ms in Python, ISO-8601 "...T...Z" on the wire


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    nullable: bool
    doc: str


S, I, L, B, T = Kind.STRING, Kind.INT, Kind.LONG, Kind.BOOL, Kind.TIMESTAMP  # noqa: E741

FIELDS: tuple[Field, ...] = (
    Field("schema_version", I, False, "version of this declaration"),
    Field("event_id", S, False, "unique per event; a duplicate send repeats it"),
    Field("timestamp", T, False, "event time on the device (UTC, ms)"),
    Field("sent_at", T, False, "time the collector received it; > timestamp for late events"),
    Field("user_id", S, False, "stable per visitor"),
    Field("session_id", S, False, "one visit"),
    Field("page", S, False, "one of PAGES"),
    Field("action", S, False, "one of ACTIONS"),
    Field("page_url", S, False, "path of the page"),
    Field("product_id", S, True, "set on product pages and cart actions"),
    Field("category", S, True, "category of the product or listing"),
    Field("element_id", S, True, "clicked element"),
    Field("position_x", I, True, "click position, px"),
    Field("position_y", I, True, "click position, px"),
    Field("referrer", S, True, "referring host; null for direct traffic"),
    Field("utm_source", S, True, "campaign source"),
    Field("utm_medium", S, True, "campaign medium"),
    Field("utm_campaign", S, True, "campaign name"),
    Field("device_type", S, False, "desktop | mobile | tablet"),
    Field("os", S, False, "consistent with device_type"),
    Field("browser", S, False, "browser family"),
    Field("language", S, False, "BCP-47 tag"),
    Field("ip_address", S, False, "stable per user"),
    Field("geo_country", S, False, "ISO country code, stable per user"),
    Field("geo_city", S, False, "stable per user"),
    Field("geo_region", S, False, "stable per user"),
    Field("page_duration_ms", L, False, "gap to the session's next event; 0 on the last"),
    Field("scroll_depth_percent", I, False, "0-100"),
    Field("ab_test_variant", S, False, "A | B"),
    Field("is_logged_in", B, False, "logged in at the time of the event"),
    Field("price_cents", L, True, "unit price on product and cart events"),
    Field("quantity", I, True, "units on cart and purchase events"),
    Field("order_id", S, True, "set on purchase events"),
    Field("revenue_cents", L, True, "price_cents * quantity on purchase events"),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
FIELDS_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
# Position of each field in an event tuple (FIELD_NAMES order), for code that holds events
# as tuples rather than dicts: `row[FIELD_INDEX["sent_at"]]`, never a hand-written 3.
FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(FIELD_NAMES)}

PAGES: tuple[str, ...] = (
    "homepage",
    "search",
    "category",
    "product",
    "cart",
    "checkout",
    "confirmation",
)
ACTIONS: tuple[str, ...] = (
    "view",
    "click",
    "scroll",
    "search",
    "add_to_cart",
    "remove_from_cart",
    "begin_checkout",
    "purchase",
)
DEVICE_TYPES: tuple[str, ...] = ("desktop", "mobile", "tablet")

_PY_TYPES = {S: str, I: int, L: int, B: bool, T: int}
_INT32 = (-(2**31), 2**31 - 1)


# ---------------------------------------------------------------- timestamps
def format_ts(epoch_ms: int) -> str:
    """Epoch ms -> '2026-11-27T10:15:00.123Z'."""
    secs, ms = divmod(epoch_ms, 1000)
    t = dt.datetime.fromtimestamp(secs, dt.UTC)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{ms:03d}Z"


def parse_ts(text: str) -> int:
    """'2026-11-27T10:15:00.123Z' -> epoch ms. Raises ValueError on anything else."""
    if not isinstance(text, str) or len(text) != 24 or text[-1] != "Z" or text[19] != ".":
        raise ValueError(f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SS.mmmZ")
    t = dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return int(t.timestamp()) * 1000 + int(text[20:23])


# ---------------------------------------------------------------- validation
#: The rules an event keeps beyond its field types, declared once and rendered per engine
#: (`validate` here, the Spark job's parse and batch check, the Polars CSV reader):
#: every non-nullable field is present and not null, and these fields take one of these
#: values. A broken rule's reason starts with the field's name.
REQUIRED: tuple[str, ...] = tuple(f.name for f in FIELDS if not f.nullable)
ALLOWED: dict[str, tuple] = {"schema_version": SCHEMA_VERSIONS, "page": PAGES,
                             "action": ACTIONS}


class InvalidEvent(ValueError):
    """An event that does not match FIELDS; the message is the dead-letter reason."""


def validate(event: dict) -> None:
    """Raise InvalidEvent with a one-line reason if `event` breaks the schema."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"not an object: {type(event).__name__}")
    missing = [n for n in FIELD_NAMES if n not in event]
    if missing:
        raise InvalidEvent(f"missing fields: {', '.join(missing)}")
    extra = [n for n in event if n not in FIELDS_BY_NAME]
    if extra:
        raise InvalidEvent(f"unknown fields: {', '.join(sorted(extra))}")
    for f in FIELDS:
        v = event[f.name]
        if v is None:
            if f.name in REQUIRED:
                raise InvalidEvent(f"{f.name} is null")
            continue
        want = _PY_TYPES[f.kind]
        # bool is a subclass of int: reject it where an int is declared
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise InvalidEvent(f"{f.name} should be {f.kind.value}, got {type(v).__name__}")
        if f.kind is I and not _INT32[0] <= v <= _INT32[1]:
            raise InvalidEvent(f"{f.name} out of 32-bit range: {v}")
    for name, values in ALLOWED.items():
        if event[name] not in values:
            raise InvalidEvent(f"unknown {name} {event[name]!r}")


# ---------------------------------------------------------------- JSON (Kafka)
def to_wire(event: dict) -> dict:
    """Python event -> JSON-ready dict (timestamps as ISO strings)."""
    out = dict(event)
    out["timestamp"] = format_ts(event["timestamp"])
    out["sent_at"] = format_ts(event["sent_at"])
    return out


def encode(event: dict) -> bytes:
    """Python event -> UTF-8 JSON bytes, fields in declaration order."""
    import orjson

    return orjson.dumps(to_wire(event))


def decode(payload: bytes | str) -> dict:
    """JSON bytes -> validated Python event. Raises InvalidEvent with the reason."""
    import orjson

    try:
        raw = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise InvalidEvent(f"not JSON: {e}") from None
    if not isinstance(raw, dict):
        raise InvalidEvent(f"not an object: {type(raw).__name__}")
    for name in ("timestamp", "sent_at"):
        if isinstance(raw.get(name), str):
            try:
                raw[name] = parse_ts(raw[name])
            except ValueError as e:
                raise InvalidEvent(str(e)) from None
        elif name in raw and raw[name] is not None:
            raise InvalidEvent(f"{name} should be an ISO-8601 string")
    validate(raw)
    return raw


# ---------------------------------------------------------------- CSV
CSV_HEADER: tuple[str, ...] = FIELD_NAMES
CSV_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"  # Polars (chrono) syntax
SPARK_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


# ---------------------------------------------------------------- Polars
def polars_schema():
    """Field name -> Polars dtype; timestamps are Datetime('ms', 'UTC')."""
    import polars as pl

    m = {
        S: pl.String,
        I: pl.Int32,
        L: pl.Int64,
        B: pl.Boolean,
        T: pl.Datetime("ms", "UTC"),
    }
    return pl.Schema({f.name: m[f.kind] for f in FIELDS})


# ---------------------------------------------------------------- Spark
def spark_schema():
    """The Spark StructType of an event (timestamps as TimestampType)."""
    from pyspark.sql import types as t

    m = {
        S: t.StringType(),
        I: t.IntegerType(),
        L: t.LongType(),
        B: t.BooleanType(),
        T: t.TimestampType(),
    }
    return t.StructType([t.StructField(f.name, m[f.kind], f.nullable) for f in FIELDS])
