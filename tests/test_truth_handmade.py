"""Hand-made events (19 deliveries of 17 events) and every table's expected rows, written by
hand from the table docs. The Polars truth is checked here; the Spark aggregates are checked
against the same expectations in test_processor_aggregates.py.

Story: S1 buys (spring/google, desktop, e2 and e7 delivered twice); S2 bounces (mobile,
direct); S3 crosses 11:00 and adds to cart (spring, no source, tablet); S4 crosses midnight
(fall/meta).
"""

import datetime as dt

import polars as pl

from shared import tables as tb
from testing.spark import make_event as ev
from testing.truth import truth

D1, D2 = dt.date(2026, 1, 1), dt.date(2026, 1, 2)
S1 = dict(user_id="u1", device_type="desktop", utm_campaign="spring", utm_source="google")
S2 = dict(user_id="u2", device_type="mobile")
S3 = dict(user_id="u3", device_type="tablet", utm_campaign="spring")
S4 = dict(user_id="u1", device_type="desktop", utm_campaign="fall", utm_source="meta")
P1, P2 = dict(product_id="p1", price_cents=1000), dict(product_id="p2", price_cents=500)

_e2 = ev("e2", "2026-01-01T10:00:20", "S1", "category", "view", page_duration_ms=10000, **S1)
_e7 = ev("e7", "2026-01-01T10:02:30", "S1", "confirmation", "purchase", quantity=2,
         order_id="o1", revenue_cents=2000, **P1, **S1)
EVENTS = [
    ev("e1", "2026-01-01T10:00:10", "S1", "homepage", "view", page_duration_ms=5000, **S1),
    _e2, dict(_e2, sent_at=_e2["sent_at"] + 700),  # duplicate delivery
    ev("e3", "2026-01-01T10:00:50", "S1", "product", "view", page_duration_ms=20000, **P1, **S1),
    ev("e4", "2026-01-01T10:01:10", "S1", "product", "add_to_cart", quantity=2,
       page_duration_ms=3000, **P1, **S1),
    ev("e5", "2026-01-01T10:01:30", "S1", "cart", "view", page_duration_ms=4000, **S1),
    ev("e6", "2026-01-01T10:02:00", "S1", "checkout", "begin_checkout",
       page_duration_ms=6000, **S1),
    _e7, dict(_e7, sent_at=_e7["sent_at"] + 90_000),  # duplicate, late
    ev("e8", "2026-01-01T10:05:00", "S2", "homepage", "view", page_duration_ms=1000, **S2),
    ev("e9", "2026-01-01T10:05:05", "S2", "homepage", "scroll", **S2),
    ev("e10", "2026-01-01T10:59:50", "S3", "search", "search", page_duration_ms=2000, **S3),
    ev("e11", "2026-01-01T11:00:10", "S3", "product", "view", page_duration_ms=7000, **P2, **S3),
    ev("e12", "2026-01-01T11:00:20", "S3", "product", "click", page_duration_ms=1000, **P2, **S3),
    ev("e13", "2026-01-01T11:00:40", "S3", "product", "add_to_cart", quantity=1, **P2, **S3),
    ev("e14", "2026-01-01T23:59:50", "S4", "homepage", "view", page_duration_ms=20000, **S4),
    ev("e15", "2026-01-02T00:00:10", "S4", "product", "view", page_duration_ms=5000, **P1, **S4),
    ev("e16", "2026-01-02T00:00:15", "S4", "product", "add_to_cart", quantity=1,
       page_duration_ms=1000, **P1, **S4),
    ev("e17", "2026-01-02T00:00:20", "S4", "product", "remove_from_cart", quantity=1, **P1, **S4),
]


def t(day, hhmmss):
    return dt.datetime.combine(day, dt.time.fromisoformat(hhmmss), dt.UTC)


N = "(none)"
# rows in table column order (see shared/tables.py), sorted by primary key; a row only where
# its event happened (no all-zero rows: e.g. product_purchases has no row for p2, never bought)
EXPECTED = {
    "time_agg": [
        (D1, t(D1, "10:00"), "category", 1), (D1, t(D1, "10:00"), "homepage", 1),
        (D1, t(D1, "10:00"), "product", 1), (D1, t(D1, "10:01"), "cart", 1),
        (D1, t(D1, "10:05"), "homepage", 1), (D1, t(D1, "11:00"), "product", 1),
        (D1, t(D1, "23:59"), "homepage", 1), (D2, t(D2, "00:00"), "product", 1),
    ],
    "campaign_events": [
        (D1, t(D1, "10:00"), "spring", "google", 7), (D1, t(D1, "10:55"), "spring", N, 1),
        (D1, t(D1, "11:00"), "spring", N, 3), (D1, t(D1, "23:55"), "fall", "meta", 1),
        (D2, t(D2, "00:00"), "fall", "meta", 3),
    ],
    "campaign_actions": [
        (D1, t(D1, "10:00"), "spring", 1, 1), (D1, t(D1, "11:00"), "spring", 1, 0),
        (D2, t(D2, "00:00"), "fall", 1, 0),
    ],
    "product_views": [
        (D1, t(D1, "10:00"), "p1", 1), (D1, t(D1, "11:00"), "p2", 1),
        (D2, t(D2, "00:00"), "p1", 1),
    ],
    "product_actions": [
        (D1, t(D1, "10:00"), "p1", 1, 1), (D1, t(D1, "11:00"), "p2", 1, 1),
        (D2, t(D2, "00:00"), "p1", 1, 1),
    ],
    "agg_duration": [
        (D1, t(D1, "10:00"), "cart", 4000, 1), (D1, t(D1, "10:00"), "category", 10000, 1),
        (D1, t(D1, "10:00"), "checkout", 6000, 1), (D1, t(D1, "10:00"), "confirmation", 0, 1),
        (D1, t(D1, "10:00"), "homepage", 6000, 3), (D1, t(D1, "10:00"), "product", 23000, 2),
        (D1, t(D1, "10:50"), "search", 2000, 1), (D1, t(D1, "11:00"), "product", 8000, 3),
        (D1, t(D1, "23:50"), "homepage", 20000, 1), (D2, t(D2, "00:00"), "product", 6000, 3),
    ],
    "product_purchases": [
        (D1, t(D1, "10:00"), "p1", 1, 2, 2000),
    ],
    "product_cart_additions": [
        (D1, t(D1, "10:00"), "p1", 1, 2), (D1, t(D1, "11:00"), "p2", 1, 1),
        (D2, t(D2, "00:00"), "p1", 1, 1),
    ],
    "website_views": [
        (D1, t(D1, "10:00"), 5), (D1, t(D1, "11:00"), 1), (D1, t(D1, "23:00"), 1),
        (D2, t(D2, "00:00"), 1),
    ],
    "device_distribution": [
        (D1, t(D1, "10:00"), "desktop", 4), (D1, t(D1, "10:00"), "mobile", 1),
        (D1, t(D1, "11:00"), "tablet", 1),
        (D1, t(D1, "23:00"), "desktop", 1), (D2, t(D2, "00:00"), "desktop", 1),
    ],
    "revenue_hourly": [
        (D1, t(D1, "10:00"), 1, 2, 2000),
    ],
    "data_quality": [
        (D1, t(D1, "10:00"), 4, 3, 1), (D1, t(D1, "10:01"), 2, 2, 0),
        (D1, t(D1, "10:02"), 3, 2, 1), (D1, t(D1, "10:05"), 2, 2, 0),
        (D1, t(D1, "10:59"), 1, 1, 0), (D1, t(D1, "11:00"), 3, 3, 0),
        (D1, t(D1, "23:59"), 1, 1, 0), (D2, t(D2, "00:00"), 3, 3, 0),
    ],
    # day, session_id, user_id, start, end, duration_ms, events, pages, product, cart,
    # checkout, converted, bounced, revenue_cents, campaign, source, device
    "sessions": [
        (D1, "S1", "u1", t(D1, "10:00:10"), t(D1, "10:02:30"), 140000, 7, 6,
         True, True, True, True, False, 2000, "spring", "google", "desktop"),
        (D1, "S2", "u2", t(D1, "10:05:00"), t(D1, "10:05:05"), 5000, 2, 1,
         False, False, False, False, True, 0, N, N, "mobile"),
        (D1, "S3", "u3", t(D1, "10:59:50"), t(D1, "11:00:40"), 50000, 4, 2,
         True, True, False, False, False, 0, "spring", N, "tablet"),
        (D1, "S4", "u1", t(D1, "23:59:50"), t(D1, "23:59:50"), 0, 1, 1,
         False, False, False, False, True, 0, "fall", "meta", "desktop"),
        (D2, "S4", "u1", t(D2, "00:00:10"), t(D2, "00:00:20"), 10000, 3, 1,
         True, True, False, False, True, 0, "fall", "meta", "desktop"),
    ],
    "funnel_hourly": [
        (D1, t(D1, "10:00"), 3, 2, 2, 1, 1), (D1, t(D1, "23:00"), 1, 0, 0, 0, 0),
        (D2, t(D2, "00:00"), 1, 1, 1, 0, 0),
    ],
    "campaign_conversion": [
        (D1, t(D1, "10:00"), N, N, 1, 0, 0), (D1, t(D1, "10:00"), "spring", N, 1, 0, 0),
        (D1, t(D1, "10:00"), "spring", "google", 1, 1, 2000),
        (D1, t(D1, "23:00"), "fall", "meta", 1, 0, 0),
        (D2, t(D2, "00:00"), "fall", "meta", 1, 0, 0),
    ],
}


def normalise(rows):
    """Rows of Python values with datetimes as aware UTC, sorted."""
    out = []
    for r in rows:
        out.append(tuple(v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo is
                         None else v for v in r))
    return sorted(out, key=repr)


def test_truth_handmade_covers_every_analytics_table():
    assert set(EXPECTED) == {t.name for t in tb.ANALYTICS}
    assert len(EVENTS) == 19 and len({e["event_id"] for e in EVENTS}) == 17


def test_truth_handmade_every_table_equals_hand_written_rows():
    from testing.spark import polars_events

    frames = truth(polars_events(EVENTS))
    for name, rows in EXPECTED.items():
        df = frames[name]
        assert df.columns == list(tb.table(name).column_names), name
        assert normalise(df.rows()) == normalise(rows), name


def test_truth_read_csv_days_roundtrip(tmp_path):
    import csv

    from shared.events import FIELD_NAMES
    from testing.spark import csv_line_values, polars_events
    with open(tmp_path / "2026-01-01.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(FIELD_NAMES)
        for e in EVENTS:
            w.writerow(csv_line_values(e))
    from testing.truth import read_csv_days

    df = read_csv_days(tmp_path)
    assert df.equals(polars_events(EVENTS))
    assert isinstance(df, pl.DataFrame)
