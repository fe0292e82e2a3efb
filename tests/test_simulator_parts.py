"""The simulator's parts on small hand-made inputs: tuple layouts derived from the field
names, the session completion, malformed payloads, the delivery order."""

from __future__ import annotations

import orjson
import pytest

from services.simulator import malformed, rows
from services.simulator.delivery import BLOCK_MS, in_time_order
from services.simulator.model import SimConfig, Simulator
from services.simulator.wire import RowEncoder
from shared.events import DEVICE_TYPES, FIELD_INDEX, FIELD_NAMES, InvalidEvent, decode

VISITOR = ("u1", "mobile", "iOS", "Safari", "en-GB", "10.0.0.1", "GB", "London", "ENG", "B",
           True)


def _partial(ts, page, action, **extra):
    values = dict.fromkeys(rows.PARTIAL_FIELDS)
    values.update(timestamp=ts, page=page, action=action, page_url="/p/1",
                  scroll_depth_percent=0, is_logged_in=False, **extra)
    return tuple(values[n] for n in rows.PARTIAL_FIELDS)


def _session_rows():
    """Two events of one session, completed."""
    constants = rows.session_constants("s1", VISITOR, "www.google.com", "google", "cpc",
                                       "brand_search")
    partial = [_partial(1_000, "product", "view", product_id="p1", price_cents=999),
               _partial(1_500, "product", "add_to_cart", product_id="p1", quantity=2)]
    out: list[tuple] = []
    rows.complete_session(out.append, partial, constants, [1_090, 1_620])
    return [dict(zip(FIELD_NAMES, r, strict=True)) for r in out], out


def test_rows_positions_are_those_of_the_field_names():
    events, raw = _session_rows()
    first = raw[0]
    assert first[rows.TS] == 1_000 and first[rows.SENT] == 1_090
    assert first[rows.SESSION_ID] == "s1"
    # FIELD_INDEX is the order of the wire encoding too
    decoded = decode(RowEncoder()(first))
    assert list(decoded) == sorted(decoded, key=FIELD_INDEX.__getitem__)


def test_rows_session_constants_take_the_visitors_event_fields_only():
    constants = rows.session_constants("s1", VISITOR, None, "newsletter", "email", None)
    assert dict(zip(rows.SESSION_FIELDS, constants, strict=True)) == {
        "session_id": "s1", "referrer": None, "utm_source": "newsletter",
        "utm_medium": "email", "utm_campaign": None, "user_id": "u1",
        "device_type": "mobile", "os": "iOS", "browser": "Safari", "language": "en-GB",
        "ip_address": "10.0.0.1", "geo_country": "GB", "geo_city": "London",
        "geo_region": "ENG", "ab_test_variant": "B",
    }


def test_rows_complete_session_derives_ids_durations_and_keeps_the_rest():
    events, _ = _session_rows()
    first, last = events
    assert [e["event_id"] for e in events] == ["s1-0", "s1-1"]
    assert [e["page_duration_ms"] for e in events] == [500, 0]  # gap to the next; 0 last
    assert [e["sent_at"] for e in events] == [1_090, 1_620]
    assert [e["schema_version"] for e in events] == [1, 1]
    assert (first["action"], first["price_cents"], last["quantity"]) == ("view", 999, 2)
    assert (first["user_id"], first["geo_city"], first["utm_campaign"]) == (
        "u1", "London", "brand_search")


def test_rows_visitor_positions_match_the_population():
    users, _ = Simulator(SimConfig(seed=1, population=50)).population
    assert len(users[0]) == len(rows.VISITOR_FIELDS)
    assert {u[rows.DEVICE] for u in users} <= set(DEVICE_TYPES)
    assert {u[rows.VARIANT] for u in users} == {"A", "B"}
    assert {u[rows.HAS_ACCOUNT] for u in users} == {True, False}


def test_malformed_marker_sorts_with_rows_and_keeps_its_event():
    _, raw = _session_rows()
    mark = malformed.marker("truncated", raw[1])
    assert mark[0] is malformed.MALFORMED
    assert mark[rows.SENT] == 1_620  # delivery sorts markers by the same position
    assert malformed.event_row(mark) is raw[1] and malformed.event_row(raw[1]) is raw[1]


@pytest.mark.parametrize("kind, reason", [
    ("not_json", "not JSON"),
    ("truncated", "not JSON"),
    ("bad_type", "page_duration_ms should be long, got str"),
    ("missing_field", "missing fields: event_id"),
    ("unknown_action", "unknown action 'add-to-basket'"),
])
def test_malformed_payload_is_the_wire_event_with_one_defect(kind, reason):
    _, raw = _session_rows()
    encode = RowEncoder()
    payload = encode(malformed.marker(kind, raw[0]))
    with pytest.raises(InvalidEvent, match=reason):
        decode(payload)
    valid = encode(raw[0])
    if kind == "truncated":
        assert valid.startswith(payload) and len(payload) == len(valid) // 2
    elif kind != "not_json":
        broken, want = orjson.loads(payload), orjson.loads(valid)
        if kind == "missing_field":
            del want["event_id"]
        else:  # everything but the defective field is the valid message's
            defect = "page_duration_ms" if kind == "bad_type" else "action"
            assert broken[defect] != want[defect]
            broken[defect] = want[defect]
        assert broken == want


def test_delivery_hands_out_each_minute_sorted_once_it_is_final():
    # rows are (time, name); block b yields a row at its start and one two minutes later
    def rows_of_block(b):
        return [(b * BLOCK_MS + 2 * BLOCK_MS + 5, f"late{b}"), (b * BLOCK_MS + 7, f"now{b}")]

    drained = [[r[1] for r in ready] for ready in in_time_order(rows_of_block, 0, 0,
                                                               end_ms=2 * BLOCK_MS)]
    assert drained == [["now0"], ["now1"], ["late0"], ["late1"]]
    cut = [[r[1] for r in ready] for ready in in_time_order(rows_of_block, 0, 0,
                                                           end_ms=2 * BLOCK_MS, drain=False)]
    assert cut == [["now0"], ["now1"]]


def test_delivery_sorts_within_a_minute_by_the_given_position():
    def rows_of_block(b):
        return [("x", b * BLOCK_MS + 30), ("y", b * BLOCK_MS + 10), ("z", b * BLOCK_MS + 20)]

    first = next(in_time_order(rows_of_block, 3, 1))
    assert [r[0] for r in first] == ["y", "z", "x"]
