"""Which schema version each simulated event goes out in (`--schema-version 1|2|mix`).

The model makes internal (version 1) rows; a client of another version sends the same
event in its own shape (`shared.events.from_internal`). `VersionedEncoder` is the wire
encoder of `wire.py` with that choice: version 1 rows take its fast path as they are;
other versions are converted, then encoded with its cached timestamp formatter. With `mix`,
`shared.events.version_for` picks each event's version from its event_id, so a seed still
gives the same bytes (and a duplicate send the same version). Malformed payloads stay in
version 1: their defect is the point, not their version.
"""

from __future__ import annotations

import orjson

from services.simulator.malformed import MALFORMED
from services.simulator.rows import row_to_event
from services.simulator.wire import RowEncoder, TimestampFormatter
from shared.events import (
    CURRENCY,
    FIELD_INDEX,
    RATES,
    SCHEMA_VERSION,
    SCHEMAS,
    WIRE_MODES,
    Kind,
    version_for,
)

EVENT_ID = FIELD_INDEX["event_id"]
DEFAULT_MODE = str(SCHEMA_VERSION)


def _compile_version(version: int, fmt: TimestampFormatter):
    """row -> the bytes of its event in `version`, as one generated dict literal (what
    `encode(from_internal(row_to_event(row), version))` gives, a few times faster)."""
    schema = SCHEMAS[version]
    internal_of = {v: k for k, v in schema.source.items()}
    lines = ["    ev = row_to_event(row)"]
    lines += [f"    x{k} = fill[{name!r}](ev)" for k, name in enumerate(schema.defaults)]
    added = {name: f"x{k}" for k, name in enumerate(schema.defaults)}
    if schema.priced:
        lines.append(f"    rate = RATES[{added[CURRENCY]}]")
    items = []
    for f in schema.fields:
        if f.name == "schema_version":
            value = str(version)
        elif f.name in added:
            value = added[f.name]
        else:
            i = FIELD_INDEX[internal_of[f.name]]
            value = f"row[{i}]"
            if internal_of[f.name] in schema.priced:
                value = f"(None if row[{i}] is None else row[{i}] * rate)"
            elif f.kind is Kind.TIMESTAMP:
                value = f"fmt(row[{i}])"
        items.append(f"{f.name!r}: {value}")
    src = "\n".join(["def encode_row(row):", *lines,
                     f"    return dumps({{{', '.join(items)}}})\n"])
    namespace = {"row_to_event": row_to_event, "fill": schema.defaults, "RATES": RATES,
                 "fmt": fmt, "dumps": orjson.dumps}
    exec(compile(src, f"<encode_v{version}>", "exec"), namespace)
    return namespace["encode_row"]


class VersionedEncoder:
    """Callable: event row (or malformed marker) -> its bytes, in the version `mode` picks;
    `.event(row)` does the same for an event row (no marker test), like `RowEncoder`."""

    def __init__(self, mode: str = DEFAULT_MODE):
        if mode not in WIRE_MODES:
            raise ValueError(f"schema version {mode!r} is not one of {', '.join(WIRE_MODES)}")
        self.mode = mode
        self._v1 = RowEncoder()
        fmt = TimestampFormatter()
        self._by_version = {v: self._v1.event if v == SCHEMA_VERSION
                            else _compile_version(v, fmt) for v in SCHEMAS}
        if mode == "mix":
            self.event = self._mixed
        else:
            self.event = self._by_version[int(mode)]

    def _mixed(self, row: tuple) -> bytes:
        return self._by_version[version_for("mix", row[EVENT_ID])](row)

    def __call__(self, row: tuple) -> bytes:
        if row[0] is MALFORMED:
            return self._v1(row)
        return self.event(row)

