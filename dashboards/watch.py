"""The detector (`shared/detect.py`) on the dashboard: which metrics of the shown range left
their baseline, one line each.

Watched in 5-minute windows against their running baseline, so that each scenario of
`clickstream demo --scenario ...` moves one of them:
- orders per cart view: `confirmation` over `cart` page views (`time_agg`); a drop is
  purchases that stopped coming (checkout-outage). Not per `checkout` view: the checkout
  page has a `begin_checkout` and a click, never a `view`, so `time_agg` has no row for it;
- page views of each page (`time_agg`); a spike is a crawler (bot-burst);
- events of each campaign source and of each campaign (`campaign_events`); a source that
  vanishes (traffic-drop) or a new campaign (campaign-launch, a spike from nothing).

And, when the dashboard knows each product's category (`categories`, from the catalogue
of the simulated shop: `clickstream dashboard --seed`), per category and per hour (the
product tables are hourly): add-to-cart per product view (`product_actions`) against the
other categories' in the same hour (`detect.compare`), a flash sale (its products are
added to carts about twice as often). In 5-minute windows a sale lifts the views of all
listings only x1.5-1.8 (`time_agg` has no category), under the rule's 2. Against the other
categories, not the category's own past hours: a fresh demo has no past hours, and in the
simulated shop a product view leads to a cart addition equally often in every category (a
real shop whose categories differ would compare each with its own history). Its own past
hours, where the range has them, only guard the flag: its cart additions must have risen
too, which a crawler's views (they dilute the small categories' rates most) never do. The
hour is judged while it fills: a rate needs no complete window.

Only the streaming tables are watched: the live view is where an incident shows up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from dashboards.reader import Snapshot
from shared.detect import Flag, Point, Rule, compare_windows, dense, detect

WINDOW_MS = 5 * 60_000
TABLES = ("time_agg", "campaign_events")
RULE = Rule()
#: a window is complete this long after its end: the streaming job writes a minute's last
#: events a trigger or two later (5 s each by default)
GRACE_MS = 60_000
#: per category: the hour's add-to-cart per product view against the other categories'
CATEGORY_TABLE = "product_actions"
HOUR_MS = 3_600_000
#: x1.5, the flash sale's claim (x1.8-1.9 measured in its hours); the evidence of 40 cart
#: additions keeps the Poisson noise of a small category at low rates out (at 40 expected,
#: 61 or more is a chance of 0.12%)
CATEGORY_RULE = Rule(low=0.5, high=1.5, min_count=40)
HEADING = ("**Left its baseline** (5-minute windows; per category: the hour, against the "
           "other categories)")


@dataclass(frozen=True)
class Alert:
    metric: str
    flag: Flag

    @property
    def text(self) -> str:
        return f"{self.metric}: {self.flag.reason}"


def _windows(df: pd.DataFrame, keys: list[str], value: str | list[str],
             step: int = WINDOW_MS) -> pd.DataFrame:
    ms = (df["window_start"] - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)  # UTC, naive
    return (df.assign(start_ms=(ms // step * step).astype("int64"))
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


def alerts(snap: Snapshot, rule: Rule = RULE,
           categories: Mapping[str, str] | None = None) -> list[Alert]:
    """The metrics whose latest complete window is flagged, judged against the `lookback`
    windows before it only. The window still filling (until `GRACE_MS` after its end) is
    left out: its count is partial, a drop by construction. And over a longer span the
    detector, which keeps flagged windows out of its baseline, would lock on a slow trend
    (a morning's growth) and flag every later window. With `categories` (product id ->
    category), the categories' alerts too (`category_alerts`)."""
    current = (int(snap.end.timestamp() * 1000) - GRACE_MS) // WINDOW_MS * WINDOW_MS
    out = []
    for metric, points in series(snap).items():
        complete = [p for p in points if p.start_ms < current][-(rule.lookback + 1):]
        flags = detect(complete, rule)
        if flags and flags[-1].start_ms == complete[-1].start_ms:
            out.append(Alert(metric, flags[-1]))
    if categories:
        out += category_alerts(snap, categories)
    return sorted(out, key=lambda a: a.metric)


def tables(categories: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The tables the watch reads: the product table too when it knows the categories."""
    return TABLES + ((CATEGORY_TABLE,) if categories else ())


def category_rates(snap: Snapshot, categories: Mapping[str, str]
                   ) -> dict[int, dict[str, Point]]:
    """hour start -> category -> Point(hour, add-to-carts, product views) of the range's
    rows of `product_actions`; products without a category in `categories` are left out."""
    df = snap.frame(CATEGORY_TABLE)
    df = df.assign(category=df["product_id"].map(categories)).dropna(subset=["category"])
    if df.empty:
        return {}
    g = _windows(df, ["category"], ["views", "add_to_cart"], HOUR_MS)
    out: dict[int, dict[str, Point]] = {}
    for t, cat, views, adds in zip(g["start_ms"], g["category"], g["views"], g["add_to_cart"],
                                   strict=True):
        out.setdefault(int(t), {})[cat] = Point(int(t), int(adds), int(views))
    return out


def category_verdicts(snap: Snapshot, categories: Mapping[str, str],
                      rule: Rule = CATEGORY_RULE) -> dict[int, dict[str, Flag | None]]:
    """hour start -> category -> its verdict (a Flag, or None: judged and within bounds), for
    every hour of the range: `detect.compare_windows`, each category's add-to-cart per
    product view against the other categories', guarded by its cart additions per cart
    addition of the others against its earlier hours' (a crawler's views, which dilute the
    small categories' rates most, bring no cart additions)."""
    return compare_windows(category_rates(snap, categories), rule, of="categories",
                           counts="cart additions")


def category_alerts(snap: Snapshot, categories: Mapping[str, str],
                    rule: Rule = CATEGORY_RULE) -> list[Alert]:
    """The categories flagged in the newest hour that judged them: the current hour (a
    rate can be judged while it fills), or the one before while the current one has too
    little evidence (its first minutes)."""
    current = int(snap.end.timestamp() * 1000) // HOUR_MS * HOUR_MS
    by_hour = category_verdicts(snap, categories, rule)
    verdicts: dict[str, Flag | None] = {}
    for hour in (current - HOUR_MS, current):  # the newer verdict wins
        verdicts.update(by_hour.get(hour, {}))
    return [Alert(f"{cat} add-to-cart per product view (hour)", flag)
            for cat, flag in sorted(verdicts.items()) if flag is not None]
