# ruff: noqa: E501 -- event tuples are kept on one line each: one tuple, one event
"""The shopper-behaviour model: seed in, events out. Pure Python, no I/O.

How it works
------------
Simulated time is cut into fixed one-minute *blocks* aligned to the epoch. Everything that
happens in a block -- how many sessions start, who the visitors are, every page they see --
is drawn from a random generator seeded by `(seed, block)` alone. So any stretch of time can
be generated independently (the CSV generator runs days in parallel) and a run is identical
byte for byte whatever the worker count or the start of the stream. Noise has its own
generators, so switching it on adds late, duplicate, malformed and bot traffic without
changing a single clean event.

A session is a walk over pages (homepage, search, category listing, product detail, cart,
checkout, confirmation, exit) with per-page transition probabilities, log-normal dwell
times, product choice by Zipf popularity, and buying steps scaled by the traffic source's
conversion, the A/B variant and the visitor's intent. The knobs are the `P_*` constants and
tables below; the *targets* they were tuned to are in `calibration.py`, and the test measures
the emergent statistics rather than reading the knobs back.

The hot loop (`_walk`) builds each event once as a short partial tuple; `block_rows`
completes them into tuples in `FIELD_NAMES` order (timestamps as int epoch ms), which
`Simulator.events()` turns into the event dicts of `shared.events`. The CSV generator
skips the full tuples: it takes the partial tuples and the per-session constants from
`block_columns` and builds Polars columns in bulk. Both paths draw the same random numbers, so they hold the same events.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter

from services.simulator import world
from services.simulator.world import cumulative
from shared.events import FIELD_NAMES, SCHEMA_VERSION

BLOCK_MS = 60_000  # one simulated minute per independently seeded block
MAX_SESSION_MS = 60 * 60_000  # a session never runs longer (its events stop)
MAX_SESSION_EVENTS = 120
MAX_DWELL_MS = 30 * 60_000  # analytics tools end a session after 30 idle minutes

TS, SENT = 2, 3  # tuple positions of `timestamp` and `sent_at`
BY_TS = itemgetter(TS)
BY_SENT = itemgetter(SENT)

# ---------------------------------------------------------------- pages (state codes)
HOME, SEARCH, CATEGORY, PRODUCT, CART, CHECKOUT, CONFIRM, EXIT = range(8)
BACK = 8  # "go back to the listing I came from"

# ---------------------------------------------------------------- behaviour knobs
# Next page after each page, as (state, weight). Tuned so that the emergent statistics
# match calibration.py; see the table there.
NEXT_HOME = ((SEARCH, 0.22), (CATEGORY, 0.38), (PRODUCT, 0.22), (CART, 0.02), (EXIT, 0.16))
NEXT_SEARCH = ((PRODUCT, 0.62), (SEARCH, 0.12), (CATEGORY, 0.06), (HOME, 0.02), (EXIT, 0.18))
NEXT_CATEGORY = ((PRODUCT, 0.66), (CATEGORY, 0.08), (SEARCH, 0.05), (HOME, 0.03), (EXIT, 0.18))
NEXT_PRODUCT = (
    (PRODUCT, 0.36), (BACK, 0.24), (SEARCH, 0.06), (HOME, 0.03), (CART, 0.01), (EXIT, 0.30),
)
NEXT_PRODUCT_CART_FULL = (
    (PRODUCT, 0.30), (BACK, 0.20), (SEARCH, 0.05), (HOME, 0.02), (CART, 0.15), (EXIT, 0.28),
)
NEXT_PRODUCT_AFTER_ADD = ((CART, 0.60), (PRODUCT, 0.15), (BACK, 0.10), (EXIT, 0.15))
NEXT_CART_CONTINUE = ((BACK, 0.35), (PRODUCT, 0.15), (EXIT, 0.50))
NEXT_CART_EMPTY = ((PRODUCT, 0.20), (CATEGORY, 0.20), (HOME, 0.10), (EXIT, 0.50))
NEXT_CHECKOUT_ABANDON = ((CART, 0.25), (EXIT, 0.75))
NEXT_CONFIRM = ((HOME, 0.10), (EXIT, 0.90))

P_ADD_TO_CART = 0.030  # per product-detail view, before multipliers
P_REMOVE = 0.15  # per cart-page view with items
P_BEGIN_CHECKOUT = 0.70  # per cart-page view with items, before multipliers
P_COMPLETE = 0.75  # per checkout, before multipliers
P_SCROLL = (0.50, 0.40, 0.60, 0.50, 0.20, 0.0, 0.0)  # per page code
P_GALLERY_CLICK = 0.15  # extra click on a product page
P_LOGIN_AT_CHECKOUT = 0.6  # visitors with an account who are not logged in
P_SIGNUP_AT_CHECKOUT = 0.3  # visitors without an account
P_HAS_ACCOUNT = 0.55  # returning visitors
P_LOGGED_IN_AT_START = 0.75  # returning visitors with an account
# Visitor intent: (multiplier on add-to-cart, share of sessions).
INTENT = ((0.45, 0.62), (1.0, 0.25), (3.2, 0.13))
QUANTITY = ((1, 0.82), (2, 0.13), (3, 0.05))
SCROLL_DEPTHS = ((25, 0.35), (50, 0.28), (75, 0.18), (90, 0.10), (100, 0.09))
# Median dwell per page code (ms); log-normal with DWELL_SIGMA.
DWELL_MEDIAN_MS = (14_000, 11_000, 18_000, 32_000, 22_000, 55_000, 9_000)
DWELL_SIGMA = 1.0
# Device latency between the event and the collector receiving it.
LATENCY_MEDIAN_MS, LATENCY_SIGMA = 90, 0.7
SCREEN = {"desktop": (1440, 3200), "mobile": (390, 2600), "tablet": (820, 2900)}
ELEMENT_TO = {CATEGORY: "nav-category", PRODUCT: "product-card", CART: "cart-icon"}
# Late events (noise): extra delay between device and collector, log-normal.
LATE_SIGMA = 1.0
BOT_EVENTS = (15, 60)  # product and listing views per bot session
BOT_DWELL_MS = (250, 1500)

# Layout of `Simulator.block_columns`: per-event partial tuples and per-session constants.
PARTIAL_FIELDS = (
    "timestamp", "page", "action", "page_url", "product_id", "category", "element_id",
    "position_x", "position_y", "scroll_depth_percent", "price_cents", "quantity", "order_id",
    "revenue_cents", "is_logged_in",
)
SESSION_FIELDS = (
    "session_id", "user_id", "referrer", "utm_source", "utm_medium", "utm_campaign",
    "device_type", "os", "browser", "language", "ip_address", "geo_country", "geo_city",
    "geo_region", "ab_test_variant",
)

_ONLY_CHECKOUT = ((CHECKOUT,), [1.0 + 1e-12])
_ONLY_CONFIRM = ((CONFIRM,), [1.0 + 1e-12])


class _Malformed:
    """Marker in position 0 of a tuple that stands for a malformed payload."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MALFORMED"


MALFORMED = _Malformed()
MALFORMED_KINDS = ("truncated", "not_json", "bad_type", "missing_field", "unknown_action")


@dataclass(frozen=True)
class Noise:
    """Optional imperfections, each with its own rate (all off by default)."""

    late_rate: float = 0.0  # share of events reaching the collector late
    late_median_s: float = 120.0  # median extra delay of a late event
    out_of_order_rate: float = 0.0  # share of events delivered after later ones
    duplicate_rate: float = 0.0  # share of events sent twice (same event_id)
    bot_rate: float = 0.0  # share of sessions that are bots
    malformed_rate: float = 0.0  # extra malformed payloads per event

    def __post_init__(self):
        for name in ("late_rate", "out_of_order_rate", "duplicate_rate", "malformed_rate"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be within 0..1, got {v}")
        if not 0.0 <= self.bot_rate < 1.0:
            raise ValueError(f"bot_rate must be within 0..1 (exclusive), got {self.bot_rate}")
        if self.late_median_s <= 0:
            raise ValueError(f"late_median_s must be > 0, got {self.late_median_s}")

    @property
    def any(self) -> bool:
        return bool(
            self.late_rate or self.out_of_order_rate or self.duplicate_rate
            or self.bot_rate or self.malformed_rate
        )


@dataclass(frozen=True)
class SimConfig:
    """What a run depends on; two runs with equal configs produce identical events."""

    seed: int = 0
    events_per_second: float = 20.0  # mean over a week, in simulated time
    returning_share: float = 0.85
    ab_effect: float = 0.10  # relative uplift of variant B on checkout completion
    catalogue_size: int = 1000
    population: int | None = None  # returning visitors; default scales with traffic
    noise: Noise = field(default_factory=Noise)

    def __post_init__(self):
        if not self.events_per_second > 0:
            raise ValueError(f"events per second must be > 0, got {self.events_per_second}")
        if not 0.0 <= self.returning_share <= 1.0:
            raise ValueError(f"returning share must be within 0..1, got {self.returning_share}")
        if not -1.0 < self.ab_effect <= 10.0:
            raise ValueError(f"A/B effect must be within -1..10, got {self.ab_effect}")
        if self.catalogue_size < 10:
            raise ValueError(f"catalogue size must be >= 10, got {self.catalogue_size}")


# Mean events per human session under the default knobs (measured; a unit test keeps it
# honest). Used only to turn an event rate into a session arrival rate.
EVENTS_PER_SESSION = 8.9
BOT_EVENTS_PER_SESSION = (BOT_EVENTS[0] + BOT_EVENTS[1]) / 2 + 0.5


def _table(pairs):
    return tuple(p[0] for p in pairs), cumulative([p[1] for p in pairs])


def _lognormal_quantiles(median: float, sigma: float, n: int = 1024) -> list[int]:
    """n+1 quantiles of a log-normal: draw by interpolating at random() * n."""
    from statistics import NormalDist

    nd = NormalDist().inv_cdf
    out = []
    for i in range(n + 1):
        p = min(max(i / n, 0.5 / n), 1 - 0.5 / n)
        out.append(median * math.exp(sigma * nd(p)))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, prod = math.exp(-lam), 0, rng.random()
        while prod > limit:
            k += 1
            prod *= rng.random()
        return k
    return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))


class Simulator:
    """Generates events for a `SimConfig`. Cheap to build; tables are built lazily."""

    def __init__(self, config: SimConfig):
        self.config = config
        digest = hashlib.sha256(f"clickstream:{config.seed}".encode()).hexdigest()
        self.tag = digest[:6]  # prefix of session ids: different seeds never collide
        noise = config.noise
        human_rate = config.events_per_second / EVENTS_PER_SESSION
        self.sessions_per_ms = human_rate / 1000.0
        # bots come on top of human traffic, as a share of all sessions
        self.bot_sessions_per_ms = (
            self.sessions_per_ms * noise.bot_rate / (1.0 - noise.bot_rate) if noise.bot_rate else 0.0
        )

    # ------------------------------------------------------------ lazily built world
    @cached_property
    def catalogue(self) -> world.Catalogue:
        return world.build_catalogue(self.config.seed, self.config.catalogue_size)

    @cached_property
    def population(self) -> tuple[tuple, list[float]]:
        """Returning visitors: identity tuples and cumulative visit-frequency weights."""
        cfg = self.config
        size = cfg.population or int(
            min(100_000, max(2_000, self.sessions_per_ms * 86_400_000))
        )
        rng = random.Random(f"{cfg.seed}:population")
        users = []
        for i in range(size):
            ident = world.draw_identity(rng)
            has_account = rng.random() < P_HAS_ACCOUNT
            variant = "B" if rng.random() < 0.5 else "A"
            users.append((f"u{self.tag}{i:06d}", *ident, has_account, variant))
        # a few visitors come back very often, most rarely
        weights = [1.0 / (i + 10) ** 0.7 for i in range(size)]
        rng.shuffle(weights)
        return tuple(users), cumulative(weights)

    @cached_property
    def _tables(self) -> dict:
        t = {}
        t["home"] = _table(NEXT_HOME)
        t["search"] = _table(NEXT_SEARCH)
        t["category"] = _table(NEXT_CATEGORY)
        t["product"] = _table(NEXT_PRODUCT)
        t["product_add"] = _table(NEXT_PRODUCT_AFTER_ADD)
        t["product_full"] = _table(NEXT_PRODUCT_CART_FULL)
        t["cart_continue"] = _table(NEXT_CART_CONTINUE)
        t["cart_empty"] = _table(NEXT_CART_EMPTY)
        t["abandon"] = _table(NEXT_CHECKOUT_ABANDON)
        t["confirm"] = _table(NEXT_CONFIRM)
        t["intent"] = _table(INTENT)
        t["qty"] = _table(QUANTITY)
        t["scroll"] = _table(SCROLL_DEPTHS)
        t["dwell"] = tuple(_lognormal_quantiles(m, DWELL_SIGMA) for m in DWELL_MEDIAN_MS)
        t["latency"] = _lognormal_quantiles(LATENCY_MEDIAN_MS, LATENCY_SIGMA)
        t["landing"] = tuple(
            cumulative(s.landing) for s in world.SOURCES
        )
        eff = self.config.ab_effect
        # A and B average to 1 so the effect moves conversions between arms
        t["variant"] = {"A": 1.0 / (1.0 + eff / 2), "B": (1.0 + eff) / (1.0 + eff / 2)}
        return t

    @property
    def latency_table(self) -> list[float]:
        """Collector-latency quantiles: a draw `r` means `t[i] + (x - i) * (t[i + 1] - t[i])`
        ms with `x = r * 1024.0`, `i = int(x)` (truncated to an int, added to the event time)."""
        return self._tables["latency"]

    # ------------------------------------------------------------ blocks
    def block_rows(
        self, block: int, not_before: int = 0, not_after: int | None = None
    ) -> list[tuple]:
        """Every event (as a tuple) of the sessions that start in `block`.

        `not_before` / `not_after` drop sessions starting earlier / at or later (a stream
        that starts or ends mid-block); the rest of the block is unaffected.
        With noise on, the list also holds duplicates, late events (a later `sent_at`) and
        malformed markers. Not sorted.
        """
        start = block * BLOCK_MS
        rows: list[tuple] = []
        session = self._session
        lo, hi = not_before, BLOCK_MS * (block + 1) if not_after is None else not_after
        partial = not (lo <= start and hi >= start + BLOCK_MS)
        skipped = set()
        for rng, sid, t0, user, returning in self._visits(block):
            session(rng, rows, sid, t0, user, returning)
            if partial and not lo <= t0 < hi:
                skipped.add(sid)
        noise = self.config.noise
        if noise.any:
            rows = self._add_noise(block, start, rows, lo, hi, skipped)
        if skipped:
            # sessions outside the window are drawn all the same, so that the others (and
            # the noise) are identical whatever the window; drop them here
            rows = [
                r for r in rows if (r[2][5] if r[0] is MALFORMED else r[5]) not in skipped
            ]
        return rows

    def _visits(self, block: int):
        """(rng, session id, start, visitor, returning) of each session starting in `block`,
        in order. The caller must draw the session from `rng` before asking for the next."""
        start = block * BLOCK_MS
        rng = random.Random(f"{self.config.seed}:{block}")
        lam = self.sessions_per_ms * BLOCK_MS * world.traffic_factor(start + BLOCK_MS // 2)
        n = _poisson(rng, lam)
        starts = sorted(start + int(rng.random() * BLOCK_MS) for _ in range(n))
        users, users_cum = self.population
        returning_share = self.config.returning_share
        rand = rng.random
        draw_identity = world.draw_identity
        prefix = f"{self.tag}{block:x}"
        for i, t0 in enumerate(starts):
            sid = f"{prefix}{i:04x}"
            returning = rand() < returning_share
            if returning:
                user = users[bisect(users_cum, rand())]
            else:
                ident = draw_identity(rng)
                user = (f"v{sid}", *ident, False, "B" if rand() < 0.5 else "A")
            yield rng, sid, t0, user, returning

    def block_columns(self, block: int, events: list, latency_draws: list,
                      sessions: list) -> None:
        """The sessions starting in `block` in a column-friendly form, for bulk builders
        (the CSV days): the same sessions and draws as `block_rows` with noise off.

        Extends `events` with the partial tuples of `_walk` (session after session, in
        order), `latency_draws` with one `random()` per event (collector latency, see
        `latency_table`), and `sessions` with one tuple per session in `SESSION_FIELDS` order
        plus its event count last. `event_id`, `sent_at` and `page_duration_ms` are derived
        from these by the builder.
        """
        walk = self._walk
        add_session = sessions.append
        extend_events = events.extend
        extend_draws = latency_draws.extend
        for rng, sid, t0, user, returning in self._visits(block):
            evs, src, referrer = walk(rng, sid, t0, user, returning)
            rand = rng.random
            extend_draws([rand() for _ in evs])
            extend_events(evs)
            add_session((sid, user[0], referrer, src.utm_source, src.utm_medium,
                         src.utm_campaign, *user[1:9], user[10], len(evs)))

    def _add_noise(self, block, start, rows, lo, hi, skipped) -> list:
        noise = self.config.noise
        nrng = random.Random(f"{self.config.seed}:{block}:noise")
        nrand = nrng.random
        if self.bot_sessions_per_ms:
            lam = self.bot_sessions_per_ms * BLOCK_MS * world.traffic_factor(start + BLOCK_MS // 2)
            for i in range(_poisson(nrng, lam)):
                t0 = start + int(nrand() * BLOCK_MS)
                sid = f"{self.tag}{block:x}b{i:03x}"
                self._bot_session(nrng, rows, sid, t0)
                if not lo <= t0 < hi:
                    skipped.add(sid)
        late, late_mu = noise.late_rate, math.log(noise.late_median_s * 1000.0)
        dup, bad = noise.duplicate_rate, noise.malformed_rate
        if not (late or dup or bad):
            return rows
        out = []
        append = out.append
        for row in rows:
            if late and nrand() < late:
                delay = int(math.exp(nrng.gauss(late_mu, LATE_SIGMA)))
                row = (*row[:SENT], row[TS] + min(delay, 6 * 3_600_000), *row[SENT + 1 :])
            append(row)
            if dup and nrand() < dup:
                append(row)
            if bad and nrand() < bad:
                kind = MALFORMED_KINDS[int(nrand() * len(MALFORMED_KINDS))]
                append((MALFORMED, kind, row, row[SENT]))
        return out

    # ------------------------------------------------------------ one session
    def _session(self, rng, rows, sid, t0, user, returning):
        """One session's event tuples, appended to `rows`."""
        (uid, device, os_, browser, lang, ip, country, city, region, _, variant) = user
        evs, src, referrer = self._walk(rng, sid, t0, user, returning)
        utm_s, utm_m, utm_c = src.utm_source, src.utm_medium, src.utm_campaign
        # second pass: page_duration = gap to the next event, ids, collector time
        rand = rng.random
        lat = self._tables["latency"]
        n = len(evs)
        append = rows.append
        nts = evs[0][0]
        for k in range(n):
            (ts, page, action, url, pid, pcat, elem, px, py, scroll, price, q, order_id, rev, lg) = evs[k]
            if k + 1 < n:
                nts = evs[k + 1][0]
            x = rand() * 1024.0
            i = int(x)
            append((SCHEMA_VERSION, f"{sid}-{k}", ts, ts + int(lat[i] + (x - i) * (lat[i + 1] - lat[i])), uid, sid, page, action, url, pid, pcat, elem, px, py, referrer, utm_s, utm_m, utm_c, device, os_, browser, lang, ip, country, city, region, nts - ts, scroll, variant, lg, price, q, order_id, rev))

    def _walk(self, rng, sid, t0, user, returning):  # noqa: C901 - the hot loop
        """The pages and actions of one session: (partial event tuples, source, referrer).

        Partial tuples are (ts, page, action, url, product, category, element, x, y,
        scroll, price, qty, order, revenue, logged); the caller draws one latency per
        event next, from the same generator, and completes them.
        """
        rand = rng.random
        tb = self._tables
        cat = self.catalogue
        device, has_account, variant = user[1], user[9], user[10]
        # traffic source and the visitor's intent
        src_i = bisect(world.SOURCE_CUM, rand())
        src = world.SOURCES[src_i]
        referrer = src.referrers[int(rand() * len(src.referrers))]
        conv = world.SOURCE_CONVERSION[src_i]
        intent_v, intent_c = tb["intent"]
        p_add = P_ADD_TO_CART * intent_v[bisect(intent_c, rand())] * math.sqrt(conv)
        buy = math.sqrt(conv) * tb["variant"][variant]
        p_checkout = min(0.95, P_BEGIN_CHECKOUT * buy)
        p_complete = min(0.98, P_COMPLETE * buy)
        logged = returning and has_account and rand() < P_LOGGED_IN_AT_START
        width, height = SCREEN[device]

        dwell_t = tb["dwell"]
        scroll_v, scroll_c = tb["scroll"]
        qty_v, qty_c = tb["qty"]
        pop_cum = cat.popularity_cum
        members, members_cum = cat.members, cat.members_cum
        cat_names, cat_urls, cat_of = cat.category_names, cat.category_urls, cat.category_of
        pids, pcats, prices, purls = cat.product_ids, cat.categories, cat.prices, cat.urls
        terms = cat.search_terms
        n_products = len(pids)
        n_terms = len(terms)

        # (ts, page, action, url, product, category, element, x, y, scroll, price, qty,
        #  order, revenue, logged) -- completed into full event tuples at the end
        evs: list[tuple] = []
        add = evs.append
        t = t0
        end = t0 + MAX_SESSION_MS
        state = (HOME, SEARCH, CATEGORY, PRODUCT)[bisect(tb["landing"][src_i], rand())]
        listing = None  # (page code, category or search term) to go back to
        back = False
        cur_cat = None  # category in focus
        cart: dict[int, int] = {}
        orders = 0

        while t < end and len(evs) < MAX_SESSION_EVENTS:
            x = rand() * 1024.0
            i = int(x)
            d = dwell_t[state]
            dwell = int(d[i] + (x - i) * (d[i + 1] - d[i]))
            if dwell > MAX_DWELL_MS:
                dwell = MAX_DWELL_MS

            # -- arrive on the page
            if state == PRODUCT:
                # from a listing: a product of that category; otherwise site-wide popularity
                if cur_cat is not None and rand() < 0.8:
                    m = members[cur_cat]
                    p = m[bisect(members_cum[cur_cat], rand())]
                else:
                    p = bisect(pop_cum, rand())
                    if p >= n_products:
                        p = n_products - 1
                pid, pcat, price, url = pids[p], pcats[p], prices[p], purls[p]
                add((t, "product", "view", url, pid, pcat, None, None, None, 0, price, None, None, None, logged))
                page = "product"
            elif state == CATEGORY:
                if back:
                    cur_cat = listing[1]
                elif cur_cat is None or rand() < 0.5:
                    cur_cat = bisect(cat.category_cum, rand())
                listing = (CATEGORY, cur_cat)
                pid, pcat, price, url = None, cat_names[cur_cat], None, cat_urls[cur_cat]
                add((t, "category", "view", url, None, pcat, None, None, None, 0, None, None, None, None, logged))
                page = "category"
            elif state == HOME:
                pid = pcat = price = None
                url = "/"
                add((t, "homepage", "view", url, None, None, None, None, None, 0, None, None, None, None, logged))
                page = "homepage"
            elif state == SEARCH:
                term = listing[1] if back else int(rand() * n_terms)
                url, cur_cat = terms[term]
                listing = (SEARCH, term)
                pid, pcat, price = None, cat_names[cur_cat], None
                add((t, "search", "search", url, None, pcat, "search-box", None, None, 0, None, None, None, None, logged))
                page = "search"
            elif state == CART:
                pid = pcat = price = None
                url = "/cart"
                add((t, "cart", "view", url, None, None, None, None, None, 0, None, None, None, None, logged))
                page = "cart"
            elif state == CHECKOUT:
                pid = pcat = price = None
                url = "/checkout"
                add((t, "checkout", "begin_checkout", url, None, None, "checkout-button", None, None, 0, None, None, None, None, logged))
                page = "checkout"
            else:  # CONFIRM
                orders += 1
                order_id = f"o{sid}-{orders}"
                pid = pcat = price = None
                url = "/checkout/confirmation"
                add((t, "confirmation", "view", url, None, None, None, None, None, 0, None, None, order_id, None, logged))
                for k, (p, q) in enumerate(cart.items()):
                    pr = prices[p]
                    add((t + 1 + k, "confirmation", "purchase", url, pids[p], pcats[p], None, None, None, 0, pr, q, order_id, pr * q, logged))
                cart = {}
                page = "confirmation"
            back = False

            # -- read the page
            depth = 0
            if rand() < P_SCROLL[state]:
                depth = scroll_v[bisect(scroll_c, rand())]
                add((t + int(dwell * (0.1 + 0.3 * rand())), page, "scroll", url, pid, pcat, None, None, None, depth, price, None, None, None, logged))

            # -- act on it and choose where to go
            if state == PRODUCT:
                if rand() < P_GALLERY_CLICK:
                    add((t + int(dwell * (0.42 + 0.06 * rand())), page, "click", url, pid, pcat, "gallery-image", int(rand() * width), int(rand() * 700), depth, price, None, None, None, logged))
                if rand() < p_add:
                    q = qty_v[bisect(qty_c, rand())]
                    cart[p] = cart.get(p, 0) + q
                    add((t + int(dwell * (0.5 + 0.35 * rand())), page, "add_to_cart", url, pid, pcat, "add-to-cart", None, None, depth, price, q, None, None, logged))
                    nv, nc = tb["product_add"]
                else:
                    nv, nc = tb["product_full"] if cart else tb["product"]
                cur_cat = cat_of[p]
            elif state == CATEGORY:
                nv, nc = tb["category"]
            elif state == HOME:
                nv, nc = tb["home"]
            elif state == SEARCH:
                nv, nc = tb["search"]
            elif state == CART:
                if not cart:
                    nv, nc = tb["cart_empty"]
                else:
                    if rand() < P_REMOVE:
                        items = list(cart)
                        p = items[int(rand() * len(items))]
                        q = cart.pop(p)
                        add((t + int(dwell * (0.45 + 0.3 * rand())), page, "remove_from_cart", url, pids[p], pcats[p], "remove-item", None, None, depth, prices[p], q, None, None, logged))
                    if cart and rand() < p_checkout:
                        nv, nc = _ONLY_CHECKOUT
                    else:
                        nv, nc = tb["cart_continue"]
            elif state == CHECKOUT:
                if not logged and rand() < (P_LOGIN_AT_CHECKOUT if has_account else P_SIGNUP_AT_CHECKOUT):
                    logged = True
                    add((t + int(dwell * (0.45 + 0.1 * rand())), page, "click", url, None, None, "login-button", int(rand() * width), int(rand() * 900), depth, None, None, None, None, True))
                if rand() < p_complete:
                    add((t + int(dwell * (0.6 + 0.3 * rand())), page, "click", url, None, None, "place-order", int(rand() * width), int(height * (0.5 + 0.4 * rand())), depth, None, None, None, None, logged))
                    nv, nc = _ONLY_CONFIRM
                else:
                    nv, nc = tb["abandon"]
            else:  # CONFIRM
                nv, nc = tb["confirm"]

            nxt = nv[bisect(nc, rand())]
            if nxt == EXIT:
                break
            if nxt == BACK:
                if listing is None:
                    nxt = HOME
                else:
                    nxt, back = listing[0], True
            # the click that leads to the next page, just before it loads
            elem = ELEMENT_TO.get(nxt)
            if elem is not None and state != CHECKOUT:
                add((t + dwell - 1 - int((dwell >> 4) * rand()), page, "click", url, pid, pcat, elem, int(rand() * width), int(rand() * height), depth, price, None, None, None, logged))
            t += dwell
            state = nxt

        return evs, src, referrer

    def _bot_session(self, rng, rows, sid, t0):
        """A crawler: many fast product and listing views, never a cart."""
        rand = rng.random
        cat = self.catalogue
        device, os_, browser, lang = world.BOT_IDENTITY
        r = rng.getrandbits(24)
        ip = f"{world.BOT_IP_PREFIXES[int(rand() * len(world.BOT_IP_PREFIXES))]}.{r >> 16}.{(r >> 8) & 255}.{(r & 254) + 1}"
        uid = f"v{sid}"
        variant = "A" if rand() < 0.5 else "B"
        n = BOT_EVENTS[0] + int(rand() * (BOT_EVENTS[1] - BOT_EVENTS[0] + 1))
        t = t0
        times = []
        for _ in range(n):
            times.append(t)
            t += BOT_DWELL_MS[0] + int(rand() * (BOT_DWELL_MS[1] - BOT_DWELL_MS[0]))
        for k, ts in enumerate(times):
            nts = times[k + 1] if k + 1 < n else ts
            if rand() < 0.7:
                p = int(rand() * len(cat))
                page, url, pid, pcat, price = "product", cat.urls[p], cat.product_ids[p], cat.categories[p], cat.prices[p]
            else:
                c = int(rand() * len(cat.category_names))
                page, url, pid, pcat, price = "category", cat.category_urls[c], None, cat.category_names[c], None
            rows.append((SCHEMA_VERSION, f"{sid}-{k}", ts, ts + 20 + int(rand() * 60), uid, sid, page, "view", url, pid, pcat, None, None, None, None, None, None, None, device, os_, browser, lang, ip, "US", "Ashburn", "VA", nts - ts, 0, variant, False, price, None, None, None))

    # ------------------------------------------------------------ streams
    def rows(self, start_ms: int, end_ms: int | None = None) -> Iterator[tuple]:
        """Event tuples in delivery (collector) order from `start_ms`, forever or until
        every session that starts before `end_ms` has been delivered.

        A tuple whose position 0 is `MALFORMED` stands for a malformed payload.
        """
        block = start_ms // BLOCK_MS
        # rows wait in buckets by the block of their delivery time; once a block has been
        # generated its bucket is final (later sessions start, and arrive, later)
        buckets: dict[int, list] = {}
        ooo = self.config.noise.out_of_order_rate
        orng = random.Random(f"{self.config.seed}:{start_ms}:order") if ooo else None
        while end_ms is None or block * BLOCK_MS < end_ms or buckets:
            if end_ms is None or block * BLOCK_MS < end_ms:
                for row in self.block_rows(block, start_ms, end_ms):
                    b = row[SENT] // BLOCK_MS
                    bucket = buckets.get(b)
                    if bucket is None:
                        buckets[b] = [row]
                    else:
                        bucket.append(row)
            ready = buckets.pop(block, None)
            block += 1
            if ready:
                ready.sort(key=BY_SENT)
                if ooo:
                    _shuffle_some(orng, ready, ooo)
                yield from ready

    def rows_by_event_time(self, start_ms: int, end_ms: int, chunk: int = 50_000):
        """Lists of event tuples with `start_ms <= timestamp < end_ms` in event-time order,
        about `chunk` per list, including sessions that started before `start_ms`.

        Late and duplicate noise is included (by event time); malformed markers are not:
        a typed CSV cannot hold them.
        """
        block = (start_ms - MAX_SESSION_MS) // BLOCK_MS - 1
        last_block = (end_ms - 1) // BLOCK_MS
        buckets: dict[int, list] = {}
        out: list[tuple] = []
        while block <= last_block:
            for row in self.block_rows(block):
                if row[0] is MALFORMED:
                    continue
                b = row[TS] // BLOCK_MS
                bucket = buckets.get(b)
                if bucket is None:
                    buckets[b] = [row]
                else:
                    bucket.append(row)
            # rows of this block's time are final: later sessions start later
            ready = buckets.pop(block, None)
            block += 1
            if ready:
                ready.sort(key=BY_TS)
                if ready[0][TS] < start_ms or ready[-1][TS] >= end_ms:
                    ready = [r for r in ready if start_ms <= r[TS] < end_ms]
                out.extend(ready)
                if len(out) >= chunk:
                    yield out
                    out = []
        if out:
            yield out

    def events(self, start_ms: int, end_ms: int | None = None) -> Iterator[dict | bytes]:
        """Event dicts in delivery order; a malformed payload comes as `bytes`."""
        to_event = row_to_event
        for row in self.rows(start_ms, end_ms):
            if row[0] is MALFORMED:
                yield malformed_payload(row)
            else:
                yield to_event(row)

    def sessions(self, start_ms: int, n_events: int) -> list[tuple]:
        """Whole sessions (no noise, no truncation) starting at `start_ms`, until at least
        `n_events` events; used by the profile so that no session is cut short."""
        rows: list[tuple] = []
        block = start_ms // BLOCK_MS
        while len(rows) < n_events:
            rows.extend(self.block_rows(block, start_ms))
            block += 1
        return rows


def _shuffle_some(rng: random.Random, items: list, rate: float) -> None:
    """Deliver about `rate` of the items after up to 20 later ones."""
    n = len(items)
    rand = rng.random
    for i in range(n - 1):
        if rand() < rate:
            j = min(n - 1, i + 1 + int(rand() * 20))
            items.insert(j, items.pop(i))


def _compile_row_to_event():
    """tuple -> event dict, as one generated dict literal (about twice as fast as
    `dict(zip(FIELD_NAMES, row))`); derived from the single field declaration."""
    names = ", ".join(f"a{i}" for i in range(len(FIELD_NAMES)))
    items = ", ".join(f"{n!r}: a{i}" for i, n in enumerate(FIELD_NAMES))
    src = f"def row_to_event(row):\n    ({names},) = row\n    return {{{items}}}\n"
    namespace: dict = {}
    exec(compile(src, "<row_to_event>", "exec"), namespace)
    fn = namespace["row_to_event"]
    fn.__doc__ = "An event tuple (FIELD_NAMES order) as the event dict of shared.events."
    return fn


row_to_event = _compile_row_to_event()



def malformed_payload(marker: tuple) -> bytes:
    """The broken bytes a malformed marker stands for (deterministic per event)."""
    from shared.events import encode

    _, kind, row, _ = marker
    event = row_to_event(row)
    if kind == "truncated":
        raw = encode(event)
        return raw[: len(raw) // 2]
    if kind == "not_json":
        return b"<html><body>502 Bad Gateway</body></html>"
    import orjson

    wire = dict(event)
    wire["timestamp"] = _iso(event["timestamp"])
    wire["sent_at"] = _iso(event["sent_at"])
    if kind == "bad_type":
        wire["page_duration_ms"] = f"{event['page_duration_ms'] / 1000:.1f}s"
    elif kind == "missing_field":
        del wire["event_id"]
    else:  # unknown_action
        wire["action"] = "add-to-basket"
    return orjson.dumps(wire)


def _iso(ms: int) -> str:
    from shared.events import format_ts

    return format_ts(ms)


__all__ = [
    "BLOCK_MS",
    "MALFORMED",
    "PARTIAL_FIELDS",
    "SESSION_FIELDS",
    "Noise",
    "SimConfig",
    "Simulator",
    "malformed_payload",
    "row_to_event",
]
