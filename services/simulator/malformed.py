"""Malformed payloads: what a broken client or proxy puts on the wire instead of an event.

The noise step leaves a *marker* tuple in the stream where a malformed payload goes:
`(MALFORMED, kind, row, sent_at)`, with `row` the event it was made from. `sent_at` sits
at the event rows' own `sent_at` position, so delivery orders markers and rows alike.
`payload` renders a marker's bytes from that event's wire form (the encoder of `wire.py`
passes it in), so a payload differs from a valid message only by its defect.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from services.simulator.rows import SENT


class _Malformed:
    """Marker in position 0 of a tuple that stands for a malformed payload (position 0 of
    an event row is its schema version, never this object)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED = _Malformed()
KINDS = ("truncated", "not_json", "bad_type", "missing_field", "unknown_action")
KIND, EVENT = 1, 2  # positions in a marker; its sent_at is at the rows' SENT


def marker(kind: str, row: tuple) -> tuple:
    """The marker of a malformed payload of `kind` made from the event `row`."""
    return (MALFORMED, kind, row, row[SENT])


def event_row(row: tuple) -> tuple:
    """The event row itself, or the one a marker's payload was made from."""
    return row[EVENT] if row[0] is MALFORMED else row


def payload(marker: tuple, to_wire: Callable[[tuple], dict]) -> bytes:
    """The broken bytes a marker stands for (deterministic per event); `to_wire` is the
    wire encoder's row -> JSON-ready dict."""
    kind, row = marker[KIND], marker[EVENT]
    if kind == "not_json":
        return b"<html><body>502 Bad Gateway</body></html>"
    wire = to_wire(row)
    if kind == "truncated":
        raw = orjson.dumps(wire)
        return raw[: len(raw) // 2]
    if kind == "bad_type":
        wire["page_duration_ms"] = f"{wire['page_duration_ms'] / 1000:.1f}s"
    elif kind == "missing_field":
        del wire["event_id"]
    else:  # unknown_action
        wire["action"] = "add-to-basket"
    return orjson.dumps(wire)
