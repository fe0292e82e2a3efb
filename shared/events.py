"""The clickstream event: declared once, every other representation derived.

`FIELDS` is the single declaration. From it come the JSON encoder/decoder used on
Kafka, the Spark `StructType`, the Polars schema and the CSV header. A unit test
asserts they agree.

In Python an event is a plain dict keyed by field name. Timestamps are held as
integer milliseconds since the epoch (UTC) -- cheap to generate and exact -- and
rendered as ISO-8601 with millisecond precision and a `Z` on the wire and in CSV.
Money is integer cents so that sums are exact.

Versions (`SCHEMAS`): `FIELDS` is version 1, which is also the *internal shape*, the one
every aggregate reads. Version 2 is derived from it (`V2 = V1.derive(...)`: one field
renamed, prices in minor units of a `currency`, a `consent` flag), never written out a
second time. Each version renders its own JSON rules, Spark and Polars schemas; the union
of all versions' fields (`WIRE_FIELDS`) is what a reader of mixed input parses, and
`to_internal` / `from_internal` convert between a version and the internal shape exactly.
"""

from __future__ import annotations

import datetime as dt
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property

#: the internal shape's version (what the aggregates read), and what producers send by default
SCHEMA_VERSION = 1


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


# ---------------------------------------------------------------- versions
#: Demo exchange rates, NOT market rates: minor units of a currency per US cent. Integers,
#: so that money converts exactly both ways: a v2 amount is cents * rate, and back, cents =
#: amount // rate; a v2 amount that is not a multiple of its rate is a dead letter.
RATES: dict[str, int] = {"USD": 1, "INR": 83, "BRL": 5, "MXN": 17}
#: the currency a v2 client charges in, by the visitor's geo_country; USD elsewhere
CURRENCY_BY_COUNTRY: dict[str, str] = {"IN": "INR", "BR": "BRL", "MX": "MXN"}
CURRENCY = "currency"  # the field a priced version's amounts are in


@dataclass(frozen=True)
class Default:
    """How `from_internal` fills a field a version adds: `fn` of the internal event's
    fields `reads` (named, so that a column engine can apply it per distinct input)."""

    reads: tuple[str, ...]
    fn: Callable[..., object]

    def __call__(self, event: dict) -> object:
        return self.fn(*(event[name] for name in self.reads))


@dataclass(frozen=True, eq=False)
class Schema:
    """One version of the event, and how it maps onto the internal shape (version 1).

    `source`: internal field name -> this version's name for it. `priced`: the internal
    money fields this version carries in minor units of its `currency` (RATES) instead of
    US cents. `defaults`: how `from_internal` fills this version's own new fields from an
    internal event (`Default`); the internal shape has no place for them and drops them."""

    version: int
    fields: tuple[Field, ...]
    allowed: dict[str, tuple]  # closed vocabularies (schema_version aside: SCHEMAS decides)
    source: dict[str, str]
    priced: tuple[str, ...] = ()
    defaults: dict[str, Default] = field(default_factory=dict)

    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @cached_property
    def by_name(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}

    @cached_property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if not f.nullable)

    @cached_property
    def priced_names(self) -> dict[str, str]:
        """This version's name of each priced field -> the internal name."""
        return {self.source[n]: n for n in self.priced}

    def derive(self, version: int, *, rename: dict[str, str] | None = None,
               price: dict[str, str] | None = None, add: tuple[Field, ...] = (),
               defaults: dict[str, Default] | None = None,
               allowed: dict[str, tuple] | None = None) -> Schema:
        """The next version: this one's fields, with `rename` (name -> new name), `price`
        (money field -> its new name, now in minor units of `currency`, which must be
        added or kept), `add` (new fields at the end, filled by `defaults` from an internal
        event), and more closed vocabularies."""
        rename, price, defaults = dict(rename or {}), dict(price or {}), dict(defaults or {})
        new_of = {**rename, **price}
        unknown = set(new_of) - set(self.names)
        if unknown or set(rename) & set(price):
            raise ValueError(f"v{version}: cannot rename {sorted(unknown or rename)}")
        internal_of = {v: k for k, v in self.source.items()}
        if again := [n for n in price if internal_of.get(n) in self.priced]:
            raise ValueError(f"v{version}: {again} are priced already")
        fields = tuple(
            Field(new_of.get(f.name, f.name), f.kind, f.nullable,
                  f.doc + (f", in minor units of `{CURRENCY}`" if f.name in price else ""))
            for f in self.fields) + tuple(add)
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError(f"v{version}: duplicate field names")
        if (price or self.priced) and CURRENCY not in names:
            raise ValueError(f"v{version}: priced fields need a {CURRENCY!r} field")
        if missing := {f.name for f in add} - set(defaults):
            raise ValueError(f"v{version}: no default for {sorted(missing)}")
        return Schema(
            version=version, fields=fields, allowed={**self.allowed, **(allowed or {})},
            source={k: new_of.get(v, v) for k, v in self.source.items()},
            priced=self.priced + tuple(internal_of[n] for n in price),
            defaults={**{k: v for k, v in self.defaults.items() if k in names}, **defaults})


def currency_of(geo_country: str) -> str:
    """The currency a v2 client of this visitor charges in (by geo_country; USD elsewhere)."""
    return CURRENCY_BY_COUNTRY.get(geo_country, "USD")


def consent_of(user_id: str) -> bool:
    """Whether the visitor accepted analytics (a demo draw: 9 visitors in 10, stable per
    user_id, so that the same seed gives the same bytes)."""
    return zlib.crc32(user_id.encode()) % 10 != 0


V1 = Schema(1, FIELDS, allowed={"page": PAGES, "action": ACTIONS},
            source={n: n for n in FIELD_NAMES})
V2 = V1.derive(
    2,
    rename={"page_duration_ms": "dwell_ms"},
    price={"price_cents": "price_minor", "revenue_cents": "revenue_minor"},
    add=(Field(CURRENCY, S, False, "ISO 4217 code of the amounts; one of RATES"),
         Field("consent", B, False, "the visitor accepted analytics; carried, not aggregated")),
    defaults={CURRENCY: Default(("geo_country",), currency_of),
              "consent": Default(("user_id",), consent_of)},
    allowed={CURRENCY: tuple(RATES)},
)
#: the versions this build reads; an event of any other goes to the dead letters, uncounted
SCHEMAS: dict[int, Schema] = {s.version: s for s in (V1, V2)}
SCHEMA_VERSIONS: tuple[int, ...] = tuple(SCHEMAS)


def _wire_fields() -> tuple[Field, ...]:
    """Every field of every version, once, in version order: what a reader of mixed input
    (JSON of any version, CSV days holding several) parses before normalising."""
    out: dict[str, Field] = {}
    for schema in SCHEMAS.values():
        for f in schema.fields:
            if f.name in out and out[f.name].kind is not f.kind:
                raise ValueError(f"{f.name} changes kind in v{schema.version}")
            out.setdefault(f.name, f)
    return tuple(out.values())


WIRE_FIELDS: tuple[Field, ...] = _wire_fields()
WIRE_NAMES: tuple[str, ...] = tuple(f.name for f in WIRE_FIELDS)

#: what `--schema-version` takes: one version for every event, or `mix`
WIRE_MODES: tuple[str, ...] = (*(str(v) for v in SCHEMA_VERSIONS), "mix")
MIX: tuple[int, ...] = (1, 2)


def version_for(mode: str, event_id: str) -> int:
    """The version an event is sent in: `mode`'s, or with `mix` one of MIX by a hash of
    the event_id (deterministic, so a seed reproduces it; a resend keeps its version)."""
    if mode == "mix":
        return MIX[zlib.crc32(event_id.encode()) % len(MIX)]
    return int(mode)


def from_internal(event: dict, version: int = 2) -> dict:
    """An internal (v1) event -> the same event in `version`, fields in its order. Exact:
    `to_internal(from_internal(e, v)) == e`."""
    schema = SCHEMAS[version]
    if schema is V1:
        return dict(event)
    added = {n: fill(event) for n, fill in schema.defaults.items()}
    rate = RATES[added[CURRENCY]] if schema.priced else 1
    out = {}
    internal_of = {v: k for k, v in schema.source.items()}
    for name in schema.names:
        if name == "schema_version":
            out[name] = version
        elif name in added:
            out[name] = added[name]
        else:
            v = event[internal_of[name]]
            out[name] = v * rate if v is not None and internal_of[name] in schema.priced else v
    return out


def to_internal(event: dict) -> dict:
    """A valid event of any version (`validate`) -> the internal (v1) shape the aggregates
    read: names mapped back, amounts in US cents, the version's own fields dropped."""
    schema = SCHEMAS[event["schema_version"]]
    if schema is V1:
        return event
    rate = RATES[event[CURRENCY]] if schema.priced else 1
    out = {}
    for name in FIELD_NAMES:
        v = event[schema.source[name]]
        out[name] = v // rate if v is not None and name in schema.priced else v
    out["schema_version"] = SCHEMA_VERSION
    return out


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
#: its schema_version is one of SCHEMAS; every non-nullable field of its version is present
#: and not null; these fields take one of these values; a priced amount is a whole number
#: of US cents at its currency's rate; and no field of another version is set. A broken
#: rule's reason starts with the field's name. REQUIRED and ALLOWED are the internal
#: shape's (version 1); each version has its own `required` and `allowed`.
REQUIRED: tuple[str, ...] = V1.required
ALLOWED: dict[str, tuple] = {"schema_version": SCHEMA_VERSIONS, **V1.allowed}


def whole_cents_reason(name: str) -> str:
    return f"{name} is not a whole number of US cents at its currency's rate"


def foreign_reason(name: str, version: int) -> str:
    return f"{name} is not a field of schema_version {version}"


class InvalidEvent(ValueError):
    """An event that does not match its version's fields; the message is the dead-letter
    reason."""


def validate(event: dict) -> None:
    """Raise InvalidEvent with a one-line reason if `event` breaks the schema of its
    version."""
    if not isinstance(event, dict):
        raise InvalidEvent(f"not an object: {type(event).__name__}")
    version = event.get("schema_version")
    if "schema_version" in event and version is None:
        raise InvalidEvent("schema_version is null")
    if "schema_version" in event and (not isinstance(version, int) or isinstance(version, bool)):
        raise InvalidEvent(f"schema_version should be int, got {type(version).__name__}")
    if "schema_version" in event and version not in SCHEMAS:
        raise InvalidEvent(f"unknown schema_version {version!r}")
    schema = SCHEMAS.get(version, SCHEMAS[SCHEMA_VERSION])
    missing = [n for n in schema.names if n not in event]
    if missing:
        raise InvalidEvent(f"missing fields: {', '.join(missing)}")
    extra = [n for n in event if n not in schema.by_name]
    if extra:
        foreign = [n for n in extra if n in WIRE_NAMES]
        if foreign:
            raise InvalidEvent(foreign_reason(foreign[0], version))
        raise InvalidEvent(f"unknown fields: {', '.join(sorted(extra))}")
    for f in schema.fields:
        v = event[f.name]
        if v is None:
            if not f.nullable:
                raise InvalidEvent(f"{f.name} is null")
            continue
        want = _PY_TYPES[f.kind]
        # bool is a subclass of int: reject it where an int is declared
        if not isinstance(v, want) or (want is int and isinstance(v, bool)):
            raise InvalidEvent(f"{f.name} should be {f.kind.value}, got {type(v).__name__}")
        if f.kind is I and not _INT32[0] <= v <= _INT32[1]:
            raise InvalidEvent(f"{f.name} out of 32-bit range: {v}")
    for name, values in schema.allowed.items():
        if event[name] not in values:
            raise InvalidEvent(f"unknown {name} {event[name]!r}")
    for name in schema.priced_names:
        if event[name] is not None and event[name] % RATES[event[CURRENCY]]:
            raise InvalidEvent(whole_cents_reason(name) + f" ({event[name]} {event[CURRENCY]}"
                               f", {RATES[event[CURRENCY]]} per cent)")


# ---------------------------------------------------------------- JSON (Kafka)
def to_wire(event: dict) -> dict:
    """Python event (any version) -> JSON-ready dict (timestamps as ISO strings)."""
    out = dict(event)
    out["timestamp"] = format_ts(event["timestamp"])
    out["sent_at"] = format_ts(event["sent_at"])
    return out


def encode(event: dict) -> bytes:
    """Python event (any version) -> UTF-8 JSON bytes, fields in the dict's order (the
    declaration's, for events made here)."""
    import orjson

    return orjson.dumps(to_wire(event))


def decode_as_sent(payload: bytes | str) -> dict:
    """JSON bytes -> the validated Python event in the version it was sent in. Raises
    InvalidEvent with the reason."""
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


def decode(payload: bytes | str) -> dict:
    """JSON bytes of any version -> the validated event in the internal shape (v1).
    Raises InvalidEvent with the reason."""
    return to_internal(decode_as_sent(payload))


# ---------------------------------------------------------------- CSV
#: A CSV day of version-1 events has the internal shape's header; a day holding other
#: versions has the header of every version's fields (WIRE_NAMES), and each row leaves the
#: columns its `schema_version` lacks empty.
CSV_HEADER: tuple[str, ...] = FIELD_NAMES
CSV_HEADER_WIRE: tuple[str, ...] = WIRE_NAMES
CSV_TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"  # Polars (chrono) syntax
SPARK_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSX"


def csv_header(mode: str) -> tuple[str, ...]:
    """The CSV header of a day written with `--schema-version mode`."""
    return CSV_HEADER if mode == str(SCHEMA_VERSION) else CSV_HEADER_WIRE


# ---------------------------------------------------------------- Polars
def polars_schema(fields: tuple[Field, ...] = FIELDS):
    """Field name -> Polars dtype (of the internal shape by default; `WIRE_FIELDS` or a
    version's `fields` for others); timestamps are Datetime('ms', 'UTC')."""
    import polars as pl

    m = {
        S: pl.String,
        I: pl.Int32,
        L: pl.Int64,
        B: pl.Boolean,
        T: pl.Datetime("ms", "UTC"),
    }
    return pl.Schema({f.name: m[f.kind] for f in fields})


# ---------------------------------------------------------------- Spark
def spark_schema(fields: tuple[Field, ...] = FIELDS):
    """The Spark StructType of an event (the internal shape by default; `WIRE_FIELDS` or a
    version's `fields` for others), timestamps as TimestampType."""
    from pyspark.sql import types as t

    m = {
        S: t.StringType(),
        I: t.IntegerType(),
        L: t.LongType(),
        B: t.BooleanType(),
        T: t.TimestampType(),
    }
    return t.StructType([t.StructField(f.name, m[f.kind], f.nullable) for f in fields])
