"""The detector (`shared/detect.py`) on the dashboard: which metrics of the shown range left
their running baseline, in 5-minute windows, one line each.

Watched, so that each scenario of `clickstream demo --scenario ...` moves one of them:
- orders per cart view: `confirmation` over `cart` page views (`time_agg`); a drop is
  purchases that stopped coming (checkout-outage). Not per `checkout` view: the checkout
  page has a `begin_checkout` and a click, never a `view`, so `time_agg` has no row for it;
- page views of each page (`time_agg`); a spike is a crawler (bot-burst). A flash sale
  lifts the views of all listings only x1.5-1.8 in 5-minute windows (its category is not
  in `time_agg`), under the rule's 2: it is shaded on the charts, not flagged;
- events of each campaign source and of each campaign (`campaign_events`); a source that
  vanishes (traffic-drop) or a new campaign (campaign-launch, a spike from nothing).

Only the streaming tables are watched: the live view is where an incident shows up.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from dashboards.reader import Snapshot
from shared.detect import Flag, Point, Rule, dense, detect

WINDOW_MS = 5 * 60_000
TABLES = ("time_agg", "campaign_events")
RULE = Rule()
#: a window is complete this long after its end: the streaming job writes a minute's last
#: events a trigger or two later (5 s each by default)
GRACE_MS = 60_000


@dataclass(frozen=True)
class Alert:
    metric: str
    flag: Flag

    @property
    def text(self) -> str:
        return f"{self.metric}: {self.flag.reason}"


def _windows(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    ms = (df["window_start"] - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)  # UTC, naive
    return (df.assign(start_ms=(ms // WINDOW_MS * WINDOW_MS).astype("int64"))
            .groupby(["start_ms", *keys], as_index=False)[value].sum())


def series(snap: Snapshot) -> dict[str, list[Point]]:
    """metric label -> its points, one per 5-minute window of the range (zeros included)."""
    views = _windows(snap.frame("time_agg"), ["page"], "page_views")
    campaigns = snap.frame("campaign_events")
    per = {key: _windows(campaigns, [key], "events") for key in ("utm_source", "utm_campaign")}
    # the series start where the data does: the windows of the range before the first
    # event are no history (as zeros they made every window a spike)
    firsts = [df["start_ms"].min() for df in (views, *per.values()) if len(df)]
    if not firsts:
        return {}
    start = max(int(snap.start.timestamp() * 1000) // WINDOW_MS * WINDOW_MS, min(firsts))
    end = int(snap.end.timestamp() * 1000)
    out: dict[str, list[Point]] = {}
    by_page = {page: dict(zip(g["start_ms"], g["page_views"], strict=True))
               for page, g in views.groupby("page")}
    carts, orders = by_page.get("cart", {}), by_page.get("confirmation", {})
    out["orders per cart view"] = [Point(t, orders.get(t, 0), carts.get(t, 0))
                                   for t in range(start, end, WINDOW_MS)]
    for page, counts in sorted(by_page.items()):
        out[f"{page} page views"] = dense([Point(t, c) for t, c in counts.items()],
                                          WINDOW_MS, start, end)
    for key, label in (("utm_source", "events from source"),
                       ("utm_campaign", "events of campaign")):
        for name, g in per[key].groupby(key):
            out[f"{label} {name}"] = dense(
                [Point(t, c) for t, c in zip(g["start_ms"], g["events"], strict=True)],
                WINDOW_MS, start, end)
    return out


def alerts(snap: Snapshot, rule: Rule = RULE) -> list[Alert]:
    """The metrics whose latest complete window is flagged, judged against the `lookback`
    windows before it only. The window still filling (until `GRACE_MS` after its end) is
    left out: its count is partial, a drop by construction. And over a longer span the
    detector, which keeps flagged windows out of its baseline, would lock on a slow trend
    (a morning's growth) and flag every later window."""
    current = (int(snap.end.timestamp() * 1000) - GRACE_MS) // WINDOW_MS * WINDOW_MS
    out = []
    for metric, points in series(snap).items():
        complete = [p for p in points if p.start_ms < current][-(rule.lookback + 1):]
        flags = detect(complete, rule)
        if flags and flags[-1].start_ms == complete[-1].start_ms:
            out.append(Alert(metric, flags[-1]))
    return sorted(out, key=lambda a: a.metric)
