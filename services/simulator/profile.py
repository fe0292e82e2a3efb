"""Statistics of a simulated sample: what `clickstream profile` prints and what the
calibration test compares against `calibration.py`.

Computed from the event tuples alone, like an analyst would from the raw events, with one
documented exception: whether a visitor is new or returning is not an event field, so it is
read from the user id scheme (`v<session>` for a first visit, `u...` for the returning
population).

With scenarios (`scenarios.py`), `scenario_report` measures each scenario's claims over the
sessions that start in its window, with the scenarios and with the same seed without.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter, defaultdict

from services.simulator import calibration
from services.simulator.malformed import MALFORMED
from services.simulator.model import SimConfig, Simulator
from services.simulator.scenarios import Scenario, Window
from shared.events import FIELD_INDEX

_TS, _USER, _SESSION, _PAGE, _ACTION, _PRODUCT = (FIELD_INDEX[n] for n in (
    "timestamp", "user_id", "session_id", "page", "action", "product_id"))
_SOURCE, _MEDIUM, _CAMPAIGN, _DEVICE, _VARIANT = (FIELD_INDEX[n] for n in (
    "utm_source", "utm_medium", "utm_campaign", "device_type", "ab_test_variant"))
_CATEGORY, _IP, _DURATION, _REFERRER = (FIELD_INDEX[n] for n in (
    "category", "ip_address", "page_duration_ms", "referrer"))

WEEK_MS = 7 * 86_400_000


def sample(seed: int, n_events: int, start_ms: int, **config) -> list[tuple]:
    """Whole sessions spread over one simulated week from `start_ms`, >= n_events events."""
    eps = max(n_events / (WEEK_MS / 1000), 0.001)
    sim = Simulator(SimConfig(seed=seed, events_per_second=eps, **config))
    return sim.sessions(start_ms, n_events)


def profile(rows: list[tuple]) -> dict:
    """The model's statistics for a sample of event tuples (malformed markers ignored)."""
    rows = [r for r in rows if r[0] is not MALFORMED]
    actions = Counter(r[_ACTION] for r in rows)
    n = len(rows)
    sessions: dict[str, list] = {}
    for r in rows:
        s = sessions.get(r[_SESSION])
        if s is None:
            # [events, first ts, user, device, purchased, source, campaign, variant]
            sessions[r[_SESSION]] = [1, r[_TS], r[_USER], r[_DEVICE], False,
                                     r[_SOURCE] or r[_MEDIUM],
                                     r[_CAMPAIGN], r[_VARIANT]]
        else:
            s[0] += 1
            if r[_TS] < s[1]:
                s[1] = r[_TS]
        if r[_ACTION] == "purchase":
            sessions[r[_SESSION]][4] = True
    product_views = Counter(
        r[_PRODUCT] for r in rows if r[_PAGE] == "product" and r[_ACTION] == "view"
    )
    n_views = sum(product_views.values())
    n_products = len(set(r[_PRODUCT] for r in rows if r[_PRODUCT] is not None)) or 1
    top = max(1, round(n_products * 0.01))
    per_session = sorted(s[0] for s in sessions.values())
    n_sessions = len(sessions) or 1
    hourly = [0] * 24
    for s in sessions.values():
        hourly[(s[1] // 3_600_000) % 24] += 1
    by_campaign: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_variant: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in sessions.values():
        key = s[6] or f"({s[5] or 'direct'})"
        by_campaign[key][0] += 1
        by_campaign[key][1] += s[4]
        by_variant[s[7]][0] += 1
        by_variant[s[7]][1] += s[4]
    atc = actions.get("add_to_cart", 0)
    return {
        "events": n,
        "sessions": len(sessions),
        "action_share": {a: c / n for a, c in actions.most_common()},
        "add_to_cart_per_product_view": atc / n_views if n_views else 0.0,
        "session_conversion": sum(s[4] for s in sessions.values()) / n_sessions,
        "purchases_per_add_to_cart": actions.get("purchase", 0) / atc if atc else 0.0,
        "events_per_session": {
            "mean": n / n_sessions,
            "median": statistics.median(per_session) if per_session else 0,
            "p95": per_session[int(0.95 * (len(per_session) - 1))] if per_session else 0,
        },
        "returning_share": sum(s[2].startswith("u") for s in sessions.values()) / n_sessions,
        "device_split": {
            d: c / n_sessions
            for d, c in Counter(s[3] for s in sessions.values()).most_common()
        },
        "hourly_sessions_share": [h / n_sessions for h in hourly],
        "hourly_peak_to_trough": max(hourly) / max(1, min(hourly)),
        "top_1pct_product_view_share": (
            sum(c for _, c in product_views.most_common(top)) / n_views if n_views else 0.0
        ),
        "conversion_by_campaign": {
            k: v[1] / v[0] for k, v in sorted(by_campaign.items(), key=lambda kv: -kv[1][0])
        },
        "conversion_by_variant": {k: v[1] / v[0] for k, v in sorted(by_variant.items())},
    }


def check(stats: dict) -> list[tuple[calibration.Target, float, bool]]:
    """Each calibration target with the measured value and whether it holds."""
    measured = {
        "add_to_cart_per_product_view": stats["add_to_cart_per_product_view"],
        "purchases_per_add_to_cart": stats["purchases_per_add_to_cart"],
        "session_conversion": stats["session_conversion"],
        "returning_share": stats["returning_share"],
        "top_1pct_product_view_share": stats["top_1pct_product_view_share"],
        "hourly_peak_to_trough": stats["hourly_peak_to_trough"],
    }
    return [(t, measured[t.name], t.holds(measured[t.name])) for t in calibration.TARGETS]


# ---------------------------------------------------------------- scenarios
WINDOW_EVENTS = 60_000  # a window is simulated at about this many events without scenarios


def _sessions_with(rows, action: str) -> set[str]:
    return {r[_SESSION] for r in rows if r[_ACTION] == action}


def _session_attrs(rows) -> dict[str, tuple]:
    """session id -> (start, utm_source, utm_campaign, referrer)."""
    out: dict[str, tuple] = {}
    for r in rows:
        s = out.get(r[_SESSION])
        if s is None or r[_TS] < s[0]:
            out[r[_SESSION]] = (r[_TS], r[_SOURCE], r[_CAMPAIGN], r[_REFERRER])
    return out


def _top3_ip_rows(rows) -> list[tuple]:
    """The events of the three busiest IP addresses."""
    top = {ip for ip, _ in Counter(r[_IP] for r in rows).most_common(3)}
    return [r for r in rows if r[_IP] in top]


def _ratio(a: float, b: float) -> float:
    return a / b if b else (math.inf if a else math.nan)


def _campaign_quarters(rows, sc: Scenario, w: Window) -> tuple[int, int]:
    quarter = (w.end_ms - w.start_ms) / 4
    starts = [t for t, _, campaign, _ in _session_attrs(rows).values()
              if campaign == sc.utm_campaign]
    return (sum(t < w.start_ms + quarter for t in starts),
            sum(t >= w.end_ms - quarter for t in starts))


def _campaign_lift(rows, sc: Scenario) -> float:
    bought = _sessions_with(rows, "purchase")
    ours, others = [0, 0], [0, 0]
    for sid, (_, _, campaign, _) in _session_attrs(rows).items():
        acc = ours if campaign == sc.utm_campaign else others
        acc[0] += 1
        acc[1] += sid in bought
    return _ratio(_ratio(ours[1], ours[0]), _ratio(others[1], others[0]))


# Each claim's metric over the rows of the sessions starting in the window (an analyst's
# computation from the events alone; the tests redo each independently with Polars).
METRICS = {
    "category_views": lambda rows, sc, w: sum(
        r[_ACTION] == "view" and r[_CATEGORY] == sc.category for r in rows),
    "category_add_to_cart_rate": lambda rows, sc, w: _ratio(
        sum(r[_ACTION] == "add_to_cart" and r[_CATEGORY] == sc.category for r in rows),
        sum(r[_PAGE] == "product" and r[_ACTION] == "view" and r[_CATEGORY] == sc.category
            for r in rows)),
    "category_purchases": lambda rows, sc, w: sum(
        r[_ACTION] == "purchase" and r[_CATEGORY] == sc.category for r in rows),
    "checkout_to_purchase": lambda rows, sc, w: _ratio(
        len(_sessions_with(rows, "purchase") & _sessions_with(rows, "begin_checkout")),
        len(_sessions_with(rows, "begin_checkout"))),
    "checkout_sessions": lambda rows, sc, w: len(_sessions_with(rows, "begin_checkout")),
    "events": lambda rows, sc, w: len(rows),
    "top3_ip_event_share": lambda rows, sc, w: _ratio(len(_top3_ip_rows(rows)), len(rows)),
    "top3_ip_purchases": lambda rows, sc, w: sum(
        r[_ACTION] == "purchase" for r in _top3_ip_rows(rows)),
    "top3_ip_median_gap_ms": lambda rows, sc, w: statistics.median(
        [r[_DURATION] for r in _top3_ip_rows(rows)] or [math.nan]),
    "campaign_session_share": lambda rows, sc, w: _ratio(
        sum(a[2] == sc.utm_campaign for a in _session_attrs(rows).values()),
        len(_session_attrs(rows))),
    "campaign_ramp": lambda rows, sc, w: _ratio(*reversed(_campaign_quarters(rows, sc, w))),
    "campaign_conversion_lift": lambda rows, sc, w: _campaign_lift(rows, sc),
    "source_sessions": lambda rows, sc, w: sum(
        a[1] == sc.utm_source for a in _session_attrs(rows).values()),
    "direct_sessions": lambda rows, sc, w: sum(
        a[1] is None and a[3] is None for a in _session_attrs(rows).values()),
}


def window_rows(sim: Simulator, window: Window) -> list[tuple]:
    """Every event of the sessions that start in `window` (whole sessions, no noise)."""
    return [r for b in range(window.first_block, window.end_block) for r in sim.block_rows(b)]


def scenario_report(seed: int, windows: tuple[Window, ...], **config) -> list[dict]:
    """Each window's claims: the metric with all the scenarios and with none, same seed."""
    out = []
    for w in windows:
        eps = WINDOW_EVENTS / ((w.end_ms - w.start_ms) / 1000)
        runs = [Simulator(SimConfig(seed=seed, events_per_second=eps, **config,
                                    scenarios=s)) for s in (windows, ())]
        with_rows, without_rows = (window_rows(sim, w) for sim in runs)
        sc = w.scenario
        claims = []
        for c in sc.claims:
            with_v = METRICS[c.metric](with_rows, sc, w)
            without_v = METRICS[c.metric](without_rows, sc, w)
            measured = _ratio(with_v, without_v) if c.compare == "ratio" else with_v
            claims.append({"metric": c.metric, "doc": c.doc, "compare": c.compare,
                           "with": with_v, "without": without_v, "measured": measured,
                           "low": c.low, "high": c.high, "ok": c.holds(measured)})
        out.append({"scenario": sc.name, "description": sc.description,
                    "start": _iso(w.start_ms), "end": _iso(w.end_ms),
                    "events_with": len(with_rows), "events_without": len(without_rows),
                    "claims": claims})
    return out


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_scenarios(report: list[dict]) -> str:
    lines = ["scenarios (sessions starting in the window; with the scenarios vs the same "
             "seed without):"]
    for s in report:
        lines += ["", f"  {s['scenario']}  {s['start']} .. {s['end']}  "
                      f"({s['events_with']:,} events vs {s['events_without']:,})",
                  f"    {s['description']}"]
        for c in s["claims"]:
            bound = " and ".join(
                f"{op} {v:g}" for op, v in ((">=", c["low"]), ("<=", c["high"]))
                if math.isfinite(v))
            what = "with / without" if c["compare"] == "ratio" else "with"
            lines.append(
                f"    {'ok  ' if c['ok'] else 'MISS'} {c['metric']:26s} {c['measured']:9.3f}"
                f"  ({what}; claimed {bound})  with {c['with']:.4g}, without "
                f"{c['without']:.4g}: {c['doc']}")
    return "\n".join(lines)


def render(stats: dict) -> str:
    """Human-readable profile."""
    pct = lambda v: f"{100 * v:6.2f}%"  # noqa: E731
    lines = [f"events {stats['events']:,}   sessions {stats['sessions']:,}", "", "calibration:"]
    for target, value, ok in check(stats):
        lines.append(
            f"  {'ok  ' if ok else 'MISS'} {target.name:30s} {value:8.4f}"
            f"   target {target.value:g} [{target.low:g}..{target.high:g}]  ({target.source})"
        )
    eps = stats["events_per_session"]
    lines += [
        "",
        f"events per session: mean {eps['mean']:.2f}  median {eps['median']}  p95 {eps['p95']}",
        "",
        "share of events per action:",
        *(f"  {a:18s} {pct(v)}" for a, v in stats["action_share"].items()),
        "",
        "device split (sessions):",
        *(f"  {d:18s} {pct(v)}" for d, v in stats["device_split"].items()),
        "",
        "conversion by campaign (sessions with a purchase):",
        *(f"  {c:18s} {pct(v)}" for c, v in stats["conversion_by_campaign"].items()),
        "",
        "conversion by A/B variant:",
        *(f"  {c:18s} {pct(v)}" for c, v in stats["conversion_by_variant"].items()),
        "",
        "sessions per UTC hour:",
    ]
    peak = max(stats["hourly_sessions_share"]) or 1
    for h, v in enumerate(stats["hourly_sessions_share"]):
        lines.append(f"  {h:02d}h {pct(v)} {'#' * round(40 * v / peak)}")
    return "\n".join(lines)
