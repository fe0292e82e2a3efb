# ruff: noqa: E501 -- partial events are kept on one line each: one tuple, one event
"""Session behaviour: how a visitor walks the shop, page after page.

A session is a walk over pages (homepage, search, category listing, product detail, cart,
checkout, confirmation, exit) with per-page transition probabilities, log-normal dwell
times, product choice by Zipf popularity, and buying steps scaled by the traffic source's
conversion, the A/B variant and the visitor's intent. The knobs are the `P_*` constants and
tables below; the *targets* they were tuned to are in `calibration.py`, and the test measures
the emergent statistics rather than reading the knobs back.

`walk` is the hot loop: it builds each event once, as a short partial tuple
(`rows.PARTIAL_FIELDS`), and draws everything from the session's own generator.
"""

from __future__ import annotations

import math
from bisect import bisect
from dataclasses import dataclass

from services.simulator import world
from services.simulator.rows import DEVICE, HAS_ACCOUNT, VARIANT
from services.simulator.world import cumulative, lognormal_quantiles

MAX_SESSION_MS = 60 * 60_000  # a session never runs longer (its events stop)
MAX_SESSION_EVENTS = 120
MAX_DWELL_MS = 30 * 60_000  # analytics tools end a session after 30 idle minutes

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
# Pages every visitor sees alike: (page, action, url, element) of the event on arrival.
FIXED_PAGES = {
    HOME: ("homepage", "view", "/", None),
    CART: ("cart", "view", "/cart", None),
    CHECKOUT: ("checkout", "begin_checkout", "/checkout", "checkout-button"),
}

# Mean events per human session under the default knobs (measured; a unit test keeps it
# honest). Used only to turn an event rate into a session arrival rate.
EVENTS_PER_SESSION = 8.9

_ONLY_CHECKOUT = ((CHECKOUT,), [1.0 + 1e-12])
_ONLY_CONFIRM = ((CONFIRM,), [1.0 + 1e-12])


@dataclass(frozen=True)
class Tweaks:
    """What a scenario changes in a session (see `scenarios.py`); the defaults are the
    calibrated model. Only `walk` reads them. A session walked with `tweaks=None` (every
    session outside a scenario's window) takes exactly the draws it always did."""

    sale_category: int | None = None  # its products' add-to-cart is multiplied by...
    sale_add_to_cart: float = 1.0  # ...this
    buy: float = 1.0  # multiplies this session's checkout and completion probabilities
    orders_fail: bool = False  # place-order never confirms: the visitor abandons instead
    source: world.Source | None = None  # forced traffic source (a campaign's visitors)
    landing_category: int | None = None  # the session opens on this category's listing
    untagged: frozenset[str] = frozenset()  # utm_sources whose tags are lost: direct


def _table(pairs):
    return tuple(p[0] for p in pairs), cumulative([p[1] for p in pairs])


def transition_tables(ab_effect: float) -> dict:
    """The knobs as draw-ready tables (values and cumulative weights, dwell and latency
    quantiles); built once per simulator."""
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
    # pages whose next page depends on nothing else
    t["next"] = {HOME: t["home"], SEARCH: t["search"], CATEGORY: t["category"],
                 CONFIRM: t["confirm"]}
    t["intent"] = _table(INTENT)
    t["qty"] = _table(QUANTITY)
    t["scroll"] = _table(SCROLL_DEPTHS)
    t["dwell"] = tuple(lognormal_quantiles(m, DWELL_SIGMA) for m in DWELL_MEDIAN_MS)
    t["latency"] = lognormal_quantiles(LATENCY_MEDIAN_MS, LATENCY_SIGMA)
    t["landing"] = tuple(cumulative(s.landing) for s in world.SOURCES)
    # A and B average to 1 so the effect moves conversions between arms
    t["variant"] = {"A": 1.0 / (1.0 + ab_effect / 2),
                    "B": (1.0 + ab_effect) / (1.0 + ab_effect / 2)}
    return t


def _arrival(rand, tb, visitor, returning, tweaks=None):
    """Where the visitor comes from and how likely each buying step is this session:
    (landing table, source, referrer, p(add to cart), p(checkout), p(complete), logged in)."""
    if tweaks is None or tweaks.source is None:
        src_i = bisect(world.SOURCE_CUM, rand())
        src = world.SOURCES[src_i]
        conv, landing = world.SOURCE_CONVERSION[src_i], tb["landing"][src_i]
    else:  # a scenario's own source: no draw to choose it
        src = tweaks.source
        conv, landing = world.source_conversion(src), cumulative(src.landing)
    referrer = src.referrers[int(rand() * len(src.referrers))]
    intent_v, intent_c = tb["intent"]
    p_add = P_ADD_TO_CART * intent_v[bisect(intent_c, rand())] * math.sqrt(conv)
    buy = math.sqrt(conv) * tb["variant"][visitor[VARIANT]]
    if tweaks is not None:
        buy *= tweaks.buy
    p_checkout = min(0.95, P_BEGIN_CHECKOUT * buy)
    p_complete = min(0.98, P_COMPLETE * buy)
    logged = returning and visitor[HAS_ACCOUNT] and rand() < P_LOGGED_IN_AT_START
    return landing, src, referrer, p_add, p_checkout, p_complete, logged


def walk(rng, sid, t0, visitor, returning, tb, cat, tweaks=None):  # noqa: C901 - the hot loop
    """The pages and actions of one session: (partial events, source, referrer).

    Partial events are tuples in `rows.PARTIAL_FIELDS` order; the caller draws one latency
    per event next, from the same generator, and completes them. `tb` is
    `transition_tables()`, `cat` the catalogue, `tweaks` a scenario's `Tweaks` (None: the
    calibrated model).
    """
    rand = rng.random
    landing, src, referrer, p_add, p_checkout, p_complete, logged = _arrival(
        rand, tb, visitor, returning, tweaks)
    # scenario tweaks as plain locals: the default costs one comparison per product view
    sale_cat, p_sale_add, orders_fail = -1, p_add, False
    if tweaks is not None:
        if tweaks.sale_category is not None:
            sale_cat, p_sale_add = tweaks.sale_category, p_add * tweaks.sale_add_to_cart
        orders_fail = tweaks.orders_fail
    has_account = visitor[HAS_ACCOUNT]
    width, height = SCREEN[visitor[DEVICE]]

    dwell_t = tb["dwell"]
    next_of = tb["next"]
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
    state = (HOME, SEARCH, CATEGORY, PRODUCT)[bisect(landing, rand())]
    listing = None  # (page code, category or search term) to go back to
    back = False
    cur_cat = None  # category in focus
    if tweaks is not None and tweaks.landing_category is not None:
        # the campaign link opens that listing (arriving as if going back to it)
        state, back = CATEGORY, True
        listing = (CATEGORY, tweaks.landing_category)
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
        elif state == SEARCH:
            term = listing[1] if back else int(rand() * n_terms)
            url, cur_cat = terms[term]
            listing = (SEARCH, term)
            pid, pcat, price = None, cat_names[cur_cat], None
            add((t, "search", "search", url, None, pcat, "search-box", None, None, 0, None, None, None, None, logged))
            page = "search"
        elif state == CONFIRM:
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
        else:  # the homepage, the cart or the checkout: the same page for every visitor
            page, action, url, element = FIXED_PAGES[state]
            pid = pcat = price = None
            add((t, page, action, url, None, None, element, None, None, 0, None, None, None, None, logged))
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
            if rand() < (p_sale_add if cat_of[p] == sale_cat else p_add):
                q = qty_v[bisect(qty_c, rand())]
                cart[p] = cart.get(p, 0) + q
                add((t + int(dwell * (0.5 + 0.35 * rand())), page, "add_to_cart", url, pid, pcat, "add-to-cart", None, None, depth, price, q, None, None, logged))
                nv, nc = tb["product_add"]
            else:
                nv, nc = tb["product_full"] if cart else tb["product"]
            cur_cat = cat_of[p]
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
                nv, nc = tb["abandon"] if orders_fail else _ONLY_CONFIRM
            else:
                nv, nc = tb["abandon"]
        else:  # a listing, the homepage or the confirmation: the next page depends on it only
            nv, nc = next_of[state]

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

    if tweaks is not None and src.utm_source in tweaks.untagged:
        return evs, world.DIRECT, None  # a lost tag: the visit looks direct
    return evs, src, referrer
