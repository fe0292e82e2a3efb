"""Statistics of a simulated sample: what `clickstream profile` prints and what the
calibration test compares against `calibration.py`.

Computed from the event tuples alone, like an analyst would from the raw events, with one
documented exception: whether a visitor is new or returning is not an event field, so it is
read from the user id scheme (`v<session>` for a first visit, `u...` for the returning
population).
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from services.simulator import calibration
from services.simulator.malformed import MALFORMED
from services.simulator.model import SimConfig, Simulator
from shared.events import FIELD_INDEX

_TS, _USER, _SESSION, _PAGE, _ACTION, _PRODUCT = (FIELD_INDEX[n] for n in (
    "timestamp", "user_id", "session_id", "page", "action", "product_id"))
_SOURCE, _MEDIUM, _CAMPAIGN, _DEVICE, _VARIANT = (FIELD_INDEX[n] for n in (
    "utm_source", "utm_medium", "utm_campaign", "device_type", "ab_test_variant"))

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
