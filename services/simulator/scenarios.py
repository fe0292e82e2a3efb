"""Scenarios: incidents and events an analytics pipeline should catch, declared next to the
calibration and applied by the model only inside their window.

A scenario is data: what it changes in the sessions that start inside its window
(`walk.Tweaks`), the traffic it adds there (`ExtraTraffic`), and what it claims to move,
by how much (`Claim`). `clickstream profile --scenario ...` measures each claim, and
`tests/test_scenarios.py` checks it on events computed independently with Polars.

A window is whole simulated minutes, the model's unit of randomness (`delivery.BLOCK_MS`):
a session belongs to a scenario when it starts inside the window, and its events may run
past the end. Sessions starting outside every window are drawn exactly as without
scenarios: a scenario's own draws come from generators of its own, seeded by
(seed, minute, scenario), and its tweaks only ever touch the minutes inside the window.
One exception, in delivery order only: with out-of-order noise, the shuffle's draws run
over the whole stream, so after the window starts the same events may leave in another
order.

    clickstream simulate --seed 7 --events 200000 --scenario checkout-outage@+1h+30m
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from services.simulator import world
from services.simulator.delivery import BLOCK_MS
from services.simulator.walk import Tweaks


@dataclass(frozen=True)
class ExtraTraffic:
    """Sessions a scenario adds in its window, on top of the usual visitors."""

    rate: float  # sessions per usual (human) session at that time of day...
    # ...times the landing category's share of the catalogue's popularity: the category's
    # traffic then rises by the same factor whichever catalogue the seed built
    per_category_share: bool = False
    ramp: float = 0.0  # share of the window over which the rate grows linearly from 0
    tweaks: Tweaks = Tweaks()  # for these sessions, on top of the window's tweaks
    bot_ips: int = 0  # > 0: crawlers from this many data-centre addresses, not shoppers
    bot_dwell_ms: tuple[int, int] = (150, 450)  # uniform: faster than anyone reads


@dataclass(frozen=True)
class Claim:
    """What the scenario moves, over the sessions that start in its window.

    `compare="ratio"`: the metric with the scenario over the same seed without it;
    `compare="value"`: the metric with the scenario alone. It must be within [low, high].
    The metric names are computed by `profile.scenario_metrics` (and independently, with
    Polars, by the tests).
    """

    metric: str
    compare: str  # "ratio" | "value"
    low: float = -math.inf
    high: float = math.inf
    doc: str = ""

    def holds(self, measured: float) -> bool:
        return self.low <= measured <= self.high


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    default_duration_ms: int
    claims: tuple[Claim, ...]
    tweaks: Tweaks | None = None  # for every session starting in the window
    extra: ExtraTraffic | None = None
    # what the metrics are about (the sale's category, the lost or the new source)
    category: str | None = None
    utm_source: str | None = None
    utm_campaign: str | None = None


_CATEGORY_NUMBER = {c[0]: i for i, c in enumerate(world.CATEGORIES)}
SALE_CATEGORY = "electronics"
DROPPED_SOURCE = "facebook"  # its campaign links lose their tags
LAUNCH_SOURCE = world.Source(
    0.0, ("www.youtube.com",), "youtube", "paid_video", "spring_launch", 2.0,
    (0.20, 0.0, 0.30, 0.50),
)
H, M = 3_600_000, 60_000

SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario(
        "flash-sale",
        f"a sale on {SALE_CATEGORY}: its listing draws extra visitors (traffic x3-5 on the "
        "category), its products are added to carts twice as often and sale visitors buy "
        "more readily",
        2 * H,
        claims=(
            Claim("category_views", "ratio", 3.0, 5.0,
                  "page views of the category (listings and products)"),
            Claim("category_add_to_cart_rate", "ratio", 1.5,
                  doc="add-to-cart per product view, the category's products"),
            Claim("category_purchases", "ratio", 4.0,
                  doc="purchased items of the category"),
        ),
        tweaks=Tweaks(sale_category=_CATEGORY_NUMBER[SALE_CATEGORY], sale_add_to_cart=2.0),
        extra=ExtraTraffic(rate=3.2, per_category_share=True, tweaks=Tweaks(
            landing_category=_CATEGORY_NUMBER[SALE_CATEGORY], buy=1.3)),
        category=SALE_CATEGORY,
    ),
    Scenario(
        "checkout-outage",
        "orders fail: begin_checkout and the place-order click still happen, the "
        "confirmation and purchase never come, visitors abandon (or retry from the cart)",
        30 * M,
        claims=(
            Claim("checkout_to_purchase", "ratio", high=0.0,
                  doc="sessions with a purchase per session with a begin_checkout"),
            Claim("checkout_sessions", "ratio", 0.9,
                  doc="sessions with a begin_checkout: checkout itself still works"),
        ),
        tweaks=Tweaks(orders_fail=True),
    ),
    Scenario(
        "bot-burst",
        "a crawler from a few data-centre addresses: fast, regular page views (150-450 ms "
        "apart), never a cart or a purchase, doubling the traffic or more",
        20 * M,
        claims=(
            Claim("events", "ratio", 2.0, doc="all events"),
            Claim("top3_ip_event_share", "value", 0.5,
                  doc="share of the events from the 3 busiest IP addresses"),
            Claim("top3_ip_purchases", "value", high=0.0,
                  doc="purchases from the 3 busiest IP addresses"),
            Claim("top3_ip_median_gap_ms", "value", high=1000.0,
                  doc="median gap between the 3 busiest addresses' events (page_duration_ms)"),
        ),
        extra=ExtraTraffic(rate=0.5, bot_ips=3),
    ),
    Scenario(
        "campaign-launch",
        f"a new campaign ({LAUNCH_SOURCE.utm_campaign}, from {LAUNCH_SOURCE.utm_source}) "
        "ramps up over the first half of the window to a fifth more visitors, who convert "
        "about twice as well as the average visitor",
        3 * H,
        claims=(
            Claim("campaign_session_share", "value", 0.08,
                  doc="share of the sessions from the campaign"),
            Claim("campaign_ramp", "value", 2.0,
                  doc="the campaign's sessions, last quarter of the window / first quarter"),
            Claim("campaign_conversion_lift", "value", 1.3,
                  doc="the campaign's session conversion / the other sessions'"),
        ),
        extra=ExtraTraffic(rate=0.20, ramp=0.5, tweaks=Tweaks(source=LAUNCH_SOURCE)),
        utm_source=LAUNCH_SOURCE.utm_source,
        utm_campaign=LAUNCH_SOURCE.utm_campaign,
    ),
    Scenario(
        "traffic-drop",
        f"a broken tag: {DROPPED_SOURCE}'s campaign links lose their utm parameters and "
        "referrer, so its visitors still come but count as direct traffic",
        2 * H,
        claims=(
            Claim("source_sessions", "ratio", high=0.0,
                  doc=f"sessions with utm_source {DROPPED_SOURCE}"),
            Claim("direct_sessions", "ratio", 1.1,
                  doc="sessions with neither a utm_source nor a referrer"),
        ),
        tweaks=Tweaks(untagged=frozenset({DROPPED_SOURCE})),
        utm_source=DROPPED_SOURCE,
    ),
)}
NAMES = tuple(SCENARIOS)


@dataclass(frozen=True)
class Window:
    """One scenario over [start_ms, end_ms), widened to whole simulated minutes."""

    name: str
    start_ms: int
    end_ms: int
    first_block: int = field(init=False)
    end_block: int = field(init=False)

    def __post_init__(self):
        if self.name not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.name!r}: choose from {', '.join(NAMES)}")
        if not self.end_ms > self.start_ms:
            raise ValueError(f"scenario {self.name} must end after it starts")
        first, end = self.start_ms // BLOCK_MS, -(-self.end_ms // BLOCK_MS)
        object.__setattr__(self, "first_block", first)
        object.__setattr__(self, "end_block", end)
        object.__setattr__(self, "start_ms", first * BLOCK_MS)
        object.__setattr__(self, "end_ms", end * BLOCK_MS)

    @property
    def scenario(self) -> Scenario:
        return SCENARIOS[self.name]

    def covers(self, block: int) -> bool:
        return self.first_block <= block < self.end_block

    def ramp(self, block: int) -> float:
        """The extra traffic's share of its full rate in `block` (1 without a ramp)."""
        extra = self.scenario.extra
        if extra is None or not extra.ramp:
            return 1.0
        elapsed = block - self.first_block + 0.5
        return min(1.0, elapsed / (extra.ramp * (self.end_block - self.first_block)))


def check_windows(windows: tuple[Window, ...]) -> None:
    """Scenarios compose, but one scenario's windows must not overlap (their extra
    sessions would share ids)."""
    by_name: dict[str, list[Window]] = {}
    for w in windows:
        if not isinstance(w, Window):
            raise ValueError(f"scenarios must be Window objects, got {w!r}")
        for other in by_name.setdefault(w.name, []):
            if w.start_ms < other.end_ms and other.start_ms < w.end_ms:
                raise ValueError(f"two {w.name} windows overlap: give one longer window")
        by_name[w.name].append(w)


def combine(tweaks: list[Tweaks]) -> Tweaks | None:
    """Several scenarios' tweaks as one: failures and lost tags add up, multipliers
    multiply, and for what can only be one (the sale's category, a forced source, where
    the session opens) the last scenario given wins."""
    if not tweaks:
        return None
    if len(tweaks) == 1:
        return tweaks[0]
    out = Tweaks()
    for t in tweaks:
        out = Tweaks(
            sale_category=t.sale_category if t.sale_category is not None else out.sale_category,
            sale_add_to_cart=(t.sale_add_to_cart if t.sale_category is not None
                              else out.sale_add_to_cart),
            buy=out.buy * t.buy,
            orders_fail=out.orders_fail or t.orders_fail,
            source=t.source or out.source,
            landing_category=(t.landing_category if t.landing_category is not None
                              else out.landing_category),
            untagged=out.untagged | t.untagged,
        )
    return out
