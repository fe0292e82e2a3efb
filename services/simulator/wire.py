"""Fast JSON encoding of event tuples, byte for byte equal to `shared.events.encode`.

`shared.events.encode` is the reference (dict in, bytes out). The producer and
`clickstream simulate` encode hundreds of thousands of events a second, so this module
does the same from the simulator's tuples: one generated dict literal per event and a
cache of the `YYYY-MM-DDTHH:MM:SS` prefix per second (events arrive nearly in time order,
so almost every timestamp hits the cache). A unit test checks equality with `encode`.
"""

from __future__ import annotations

import time

import orjson

from services.simulator.model import MALFORMED, malformed_payload
from shared.events import FIELD_NAMES


class TimestampFormatter:
    """Epoch ms -> 'YYYY-MM-DDTHH:MM:SS.mmmZ', caching the per-second prefix."""

    __slots__ = ("_cache",)

    def __init__(self):
        self._cache: dict[int, str] = {}

    def __call__(self, ms: int) -> str:
        secs, frac = divmod(ms, 1000)
        prefix = self._cache.get(secs)
        if prefix is None:
            if len(self._cache) > 8192:
                self._cache.clear()
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
            self._cache[secs] = prefix
        return f"{prefix}.{frac:03d}Z"


def _compile_encoder(fmt: TimestampFormatter):
    names = ", ".join(f"a{i}" for i in range(len(FIELD_NAMES)))
    items = []
    for i, n in enumerate(FIELD_NAMES):
        value = f"fmt(a{i})" if n in ("timestamp", "sent_at") else f"a{i}"
        items.append(f"{n!r}: {value}")
    src = (
        f"def encode_row(row):\n    ({names},) = row\n"
        f"    return dumps({{{', '.join(items)}}})\n"
    )
    namespace = {"fmt": fmt, "dumps": orjson.dumps}
    exec(compile(src, "<encode_row>", "exec"), namespace)
    return namespace["encode_row"]


class RowEncoder:
    """Callable: event tuple (or malformed marker) -> the bytes sent on the wire."""

    def __init__(self):
        self._encode = _compile_encoder(TimestampFormatter())

    def __call__(self, row: tuple) -> bytes:
        if row[0] is MALFORMED:
            return malformed_payload(row)
        return self._encode(row)
