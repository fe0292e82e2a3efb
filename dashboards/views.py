"""What the dashboard shows, as pure functions of a `Snapshot`: no Cassandra, no Panel.

Each chart's view reads one table (`dashboards.specs` says which), so a refresh reads only
the tables of the open tab plus the KPI tables. The unit tests check these on hand-made
frames with expectations written by hand.
"""

from __future__ import annotations

import pandas as pd

from dashboards.ranges import time_bucket
from dashboards.reader import Snapshot
from shared.tables import NONE_KEY

NO_CAMPAIGN = NONE_KEY  # the processor's key for traffic without a campaign

#: the tables the KPIs and the session numbers read (always, whatever tab is open)
KPI_TABLES = ("data_quality", "sessions", "revenue_hourly", "ingest_quality")


def kpis(snap: Snapshot) -> dict[str, float | int | None]:
    """Header numbers for a snapshot.

    events_per_minute: distinct events / minutes with data (data_quality), so a stream
      that stopped still shows the rate it ran at; sessions: sessions whose
      [start_ts, end_ts] overlaps the range (not only those active now); conversion_rate:
      the share of those sessions with a purchase -- both from `sessions_merged`, so a
      session crossing UTC midnight counts once; revenue: dollars (revenue_hourly);
      invalid / late / duplicates: this mode's ingest_quality rows.
    """
    dq = snap.frame("data_quality")
    minutes = dq.loc[dq["events"] > 0, "window_start"].nunique()
    events = int(dq["events"].sum())
    s = sessions_merged(snap)
    q = snap.frame("ingest_quality")
    return {
        "events": events,
        "events_per_minute": events / minutes if minutes else None,
        "sessions": len(s),
        "conversion_rate": float(s["converted"].mean()) if len(s) else None,
        "revenue": int(snap.frame("revenue_hourly")["revenue_cents"].sum()) / 100,
        "invalid": int(q["invalid"].sum()),
        "late": int(q["late_dropped"].sum()),
        "duplicates": int(q["duplicates_dropped"].sum()),
    }


SESSION_MERGE = {"start_ts": "min", "end_ts": "max", "events": "sum", "bounced": "all",
                 "reached_product": "any", "reached_cart": "any", "reached_checkout": "any",
                 "converted": "any", "revenue_cents": "sum"}


def sessions_merged(snap: Snapshot) -> pd.DataFrame:
    """One row per session_id whose merged [start_ts, end_ts] overlaps the range.

    The sessions table has a row per session *and UTC day*: a session crossing midnight
    has two, in two day partitions. They are merged here (earliest start, latest end,
    summed events and revenue, a flag set if set on either day; bounced only if both
    bounced), so every session-level number counts such a session once.
    """
    return snap.memo("sessions_merged", lambda: _merge_sessions(snap))


def _merge_sessions(snap: Snapshot) -> pd.DataFrame:
    s = snap.frame("sessions")
    cols = ["session_id", *SESSION_MERGE]
    if s.empty:
        return s[cols].reset_index(drop=True)
    g = s.groupby("session_id", as_index=False, sort=False).agg(SESSION_MERGE)
    start = pd.Timestamp(snap.start.replace(tzinfo=None))
    end = pd.Timestamp(snap.end.replace(tzinfo=None))
    return g[(g["end_ts"] >= start) & (g["start_ts"] < end)].reset_index(drop=True)


FUNNEL_STAGES = (("sessions", "Sessions"), ("reached_product", "Product view"),
                 ("reached_cart", "Added to cart"), ("reached_checkout", "Checkout"),
                 ("converted", "Purchase"))


def funnel(snap: Snapshot) -> pd.DataFrame:
    """stage, sessions, share of all sessions (`sessions_merged`: a session crossing
    midnight counts once, which the per-day funnel_hourly rows cannot do)."""
    s = sessions_merged(snap)
    counts = [len(s), *(int(s[c].sum()) for c, _ in FUNNEL_STAGES[1:])]
    top = counts[0] or 1
    return pd.DataFrame({"stage": [label for _, label in FUNNEL_STAGES], "sessions": counts,
                         "share": [c / top for c in counts]})


def _bucketed(snap: Snapshot, base: str, keys: list[str], values: list[str]) -> pd.DataFrame:
    """time (window_start floored to at most ~300 points over the range), keys, sums."""
    df = snap.frame(base)
    freq = time_bucket(snap.start, snap.end)
    return (df.assign(time=df["window_start"].dt.floor(freq))
            .groupby(["time", *keys], as_index=False)[values].sum())


def page_views_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, page, page_views (time_agg), bucketed."""
    return _bucketed(snap, "time_agg", ["page"], ["page_views"])


def quality_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, series ("events" or "duplicates"), count (data_quality), bucketed."""
    df = _bucketed(snap, "data_quality", [], ["events", "duplicates"])
    return (df.melt(id_vars="time", value_vars=["events", "duplicates"], var_name="series",
                    value_name="count").astype({"count": "int64"}))


def site_views_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, page_views (website_views, hourly)."""
    df = snap.frame("website_views")
    return (df.rename(columns={"window_start": "time"})[["time", "page_views"]]
            .groupby("time", as_index=False).sum())


def revenue_over_time(snap: Snapshot) -> pd.DataFrame:
    """time, revenue in dollars, purchases (revenue_hourly)."""
    df = snap.frame("revenue_hourly").groupby("window_start", as_index=False)[
        ["revenue_cents", "purchases"]].sum()
    return pd.DataFrame({"time": df["window_start"], "revenue": df["revenue_cents"] / 100,
                         "purchases": df["purchases"]})


def _sum_by(snap: Snapshot, base: str, key: str, metric: str) -> pd.DataFrame:
    """key, metric summed over the range, largest first."""
    return (snap.frame(base).groupby(key, as_index=False)[metric].sum()
            .sort_values([metric, key], ascending=[False, True], ignore_index=True))


def page_views_per_page(snap: Snapshot) -> pd.DataFrame:
    return _sum_by(snap, "time_agg", "page", "page_views")


def device_distribution(snap: Snapshot) -> pd.DataFrame:
    return _sum_by(snap, "device_distribution", "device_type", "page_views")


def _top(snap: Snapshot, base: str, metric: str, n: int) -> pd.DataFrame:
    out = _sum_by(snap, base, "product_id", metric)
    return out[out[metric] > 0].head(n).reset_index(drop=True)


def top_viewed(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, views: the n most viewed products (product_views)."""
    return _top(snap, "product_views", "views", n)


def top_carted(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, cart_additions (product_cart_additions)."""
    return _top(snap, "product_cart_additions", "cart_additions", n)


def top_purchased(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, purchases (product_purchases)."""
    return _top(snap, "product_purchases", "purchases", n)


def top_revenue(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, revenue in dollars (product_purchases)."""
    out = _top(snap, "product_purchases", "revenue_cents", n)
    return pd.DataFrame({"product_id": out["product_id"], "revenue": out["revenue_cents"] / 100})


def product_add_to_cart_rate(snap: Snapshot, n: int = 10) -> pd.DataFrame:
    """product_id, views, add_to_cart, add_to_cart_rate for the n most viewed (product_actions)."""
    df = snap.frame("product_actions").groupby("product_id", as_index=False)[
        ["views", "add_to_cart"]].sum()
    df = df[df["views"] > 0].sort_values(["views", "product_id"], ascending=[False, True]).head(n)
    return df.assign(add_to_cart_rate=df["add_to_cart"] / df["views"]).reset_index(drop=True)


def campaign_events(snap: Snapshot) -> pd.DataFrame:
    """utm_campaign, events (campaign_events), most first."""
    return _sum_by(snap, "campaign_events", "utm_campaign", "events")


CAMPAIGN_ACTIONS = ("add_to_cart", "purchases")


def campaign_actions(snap: Snapshot) -> pd.DataFrame:
    """utm_campaign, action ("add_to_cart" or "purchases"), actions (campaign_actions):
    long, one row per campaign and action, campaigns with the most cart additions first."""
    df = (snap.frame("campaign_actions").groupby("utm_campaign", as_index=False)[
        list(CAMPAIGN_ACTIONS)].sum()
        .sort_values(["add_to_cart", "utm_campaign"], ascending=[False, True], ignore_index=True))
    long = pd.concat([df.assign(action=a, actions=df[a]) for a in CAMPAIGN_ACTIONS])
    return (long.sort_index(kind="stable")[["utm_campaign", "action", "actions"]]
            .astype({"actions": "int64"}).reset_index(drop=True))


def campaign_conversion(snap: Snapshot) -> pd.DataFrame:
    """utm_campaign, sessions, converted, conversion_rate (campaign_conversion; traffic
    without a campaign left out), highest rate first."""
    cc = snap.frame("campaign_conversion")
    cc = cc[cc["utm_campaign"] != NO_CAMPAIGN].groupby("utm_campaign", as_index=False)[
        ["sessions", "converted"]].sum()
    cc = cc[cc["sessions"] > 0]
    return (cc.assign(conversion_rate=cc["converted"] / cc["sessions"])
            .sort_values(["conversion_rate", "utm_campaign"], ascending=[False, True],
                         ignore_index=True))


def avg_duration_per_page(snap: Snapshot) -> pd.DataFrame:
    """page, avg_duration_s = sum(duration_ms_sum) / sum(events) / 1000 (agg_duration)."""
    df = snap.frame("agg_duration").groupby("page", as_index=False)[
        ["duration_ms_sum", "events"]].sum()
    df = df[df["events"] > 0]
    return (df.assign(avg_duration_s=df["duration_ms_sum"] / df["events"] / 1000)
            .sort_values("avg_duration_s", ascending=False, ignore_index=True))


def session_stats(snap: Snapshot) -> dict[str, float | int | None]:
    """Sessions overlapping the range (`sessions_merged`): count, averages, rates."""
    g = sessions_merged(snap)
    if g.empty:
        return {"sessions": 0, "avg_duration_s": None, "avg_events": None, "bounce_rate": None,
                "cart_abandonment": None, "conversion_rate": None}
    duration = (g["end_ts"] - g["start_ts"]).dt.total_seconds()
    cart = g["reached_cart"].astype(bool)
    converted = g["converted"].astype(bool)
    carts = int(cart.sum())
    return {
        "sessions": len(g),
        "avg_duration_s": float(duration.mean()),
        "avg_events": float(g["events"].mean()),
        "bounce_rate": float(g["bounced"].mean()),
        "cart_abandonment": float((cart & ~converted).sum() / carts) if carts else None,
        "conversion_rate": float(converted.mean()),
    }


def session_event_histogram(snap: Snapshot) -> pd.DataFrame:
    """events per session (capped at 30) -> number of sessions."""
    per = sessions_merged(snap)["events"].clip(upper=30)
    return (per.value_counts().sort_index().rename_axis("events").reset_index(name="sessions")
            .astype("int64"))


def table_view(snap: Snapshot, base: str) -> pd.DataFrame:
    """The raw rows of one table (for the tabular view and its CSV), newest first."""
    df = snap.frame(base)
    if "window_start" in df.columns:
        df = df.sort_values("window_start", ascending=False, kind="stable", ignore_index=True)
    return df
