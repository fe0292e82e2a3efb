# ruff: noqa: E501 -- tables read better one entry per line
"""The simulated shop's world: catalogue, visitors' devices and places, traffic sources,
and the daily and weekly traffic curves. Static tables plus seeded builders; no I/O.

Everything a hot loop needs is precomputed here as tuples and cumulative weight tables,
so that drawing from a distribution is one `random()` and one `bisect`; the draw helpers
(cumulative tables, log-normal quantiles, Poisson counts) are here too.
"""

from __future__ import annotations

import math
import random
from bisect import bisect
from dataclasses import dataclass
from itertools import accumulate


def cumulative(weights) -> list[float]:
    """Normalised cumulative weights for `bisect(table, random())`."""
    acc = list(accumulate(weights))
    total = acc[-1]
    out = [a / total for a in acc]
    out[-1] = 1.0 + 1e-12  # random() < 1.0 always lands inside
    return out


def lognormal_quantiles(median: float, sigma: float, n: int = 1024) -> list[float]:
    """n+1 quantiles of a log-normal: draw by interpolating at random() * n."""
    from statistics import NormalDist

    nd = NormalDist().inv_cdf
    out = []
    for i in range(n + 1):
        p = min(max(i / n, 0.5 / n), 1 - 0.5 / n)
        out.append(median * math.exp(sigma * nd(p)))
    return out


def poisson(rng: random.Random, lam: float) -> int:
    """How many arrivals in a block at mean `lam`."""
    if lam <= 0:
        return 0
    if lam < 30:
        limit, k, prod = math.exp(-lam), 0, rng.random()
        while prod > limit:
            k += 1
            prod *= rng.random()
        return k
    return max(0, int(rng.gauss(lam, math.sqrt(lam)) + 0.5))


# ---------------------------------------------------------------- catalogue
# (slug, share of the catalogue, median price in cents, search terms)
CATEGORIES: tuple[tuple[str, float, int, tuple[str, ...]], ...] = (
    ("electronics", 0.12, 12900, ("headphones", "usb c charger", "bluetooth speaker", "webcam")),
    ("computers", 0.06, 54900, ("laptop", "monitor 27 inch", "mechanical keyboard", "ssd 1tb")),
    ("phones", 0.06, 39900, ("phone case", "smartphone", "screen protector", "power bank")),
    ("home", 0.12, 3900, ("bed sheets", "desk lamp", "storage box", "throw pillow")),
    ("kitchen", 0.10, 2900, ("coffee maker", "chef knife", "frying pan", "blender")),
    ("fashion", 0.14, 4500, ("running shoes", "rain jacket", "jeans", "sunglasses")),
    ("beauty", 0.08, 1900, ("moisturizer", "shampoo", "perfume", "lipstick")),
    ("sports", 0.08, 3500, ("yoga mat", "dumbbells", "water bottle", "cycling gloves")),
    ("toys", 0.07, 2500, ("lego", "board game", "puzzle", "plush toy")),
    ("books", 0.09, 1500, ("cookbook", "fantasy novel", "kids book", "biography")),
    ("garden", 0.04, 3200, ("garden hose", "plant pot", "pruning shears", "seeds")),
    ("pets", 0.04, 2200, ("dog food", "cat toy", "pet bed", "leash")),
)


@dataclass(frozen=True)
class Catalogue:
    """Products as parallel tuples indexed by product number."""

    product_ids: tuple[str, ...]
    categories: tuple[str, ...]  # category slug per product
    prices: tuple[int, ...]  # cents
    urls: tuple[str, ...]
    popularity_cum: list[float]  # over all products (Zipf)
    category_names: tuple[str, ...]
    category_urls: tuple[str, ...]
    category_cum: list[float]  # category choice, by summed popularity
    members: tuple[tuple[int, ...], ...]  # product numbers per category
    members_cum: tuple[list[float], ...]  # popularity within the category
    category_of: tuple[int, ...]  # category number per product
    search_terms: tuple[tuple[str, int], ...]  # (url, category number)

    def __len__(self) -> int:
        return len(self.product_ids)

    def category_share(self, c: int) -> float:
        """Category `c`'s share of the product popularity: about its share of page views."""
        cum = self.category_cum
        return min(cum[c], 1.0) - (cum[c - 1] if c else 0.0)


def build_catalogue(seed: int | str, size: int = 1000, zipf_s: float = 1.0) -> Catalogue:
    """A catalogue of `size` products; popularity ~ 1/rank**zipf_s, log-normal prices."""
    rng = random.Random(f"{seed}:catalogue")
    cat_cum = cumulative([c[1] for c in CATEGORIES])
    cat_of = [bisect(cat_cum, rng.random()) for _ in range(size)]
    ranks = list(range(1, size + 1))
    rng.shuffle(ranks)  # popularity rank independent of category
    weights = [1.0 / r**zipf_s for r in ranks]
    prices = []
    for c in cat_of:
        median = CATEGORIES[c][2]
        cents = int(median * math.exp(rng.gauss(0.0, 0.8)))
        prices.append(max(99, (cents // 100) * 100 + 99))  # shop prices end in .99
    pids = tuple(f"p{n:05d}" for n in range(size))
    members = tuple(tuple(i for i in range(size) if cat_of[i] == c) for c in range(len(CATEGORIES)))
    cat_pop = [sum(weights[i] for i in m) for m in members]
    terms = tuple(
        ("/search?q=" + t.replace(" ", "+"), c) for c, cat in enumerate(CATEGORIES) for t in cat[3]
    )
    return Catalogue(
        product_ids=pids,
        categories=tuple(CATEGORIES[c][0] for c in cat_of),
        prices=tuple(prices),
        urls=tuple(f"/product/{p}" for p in pids),
        popularity_cum=cumulative(weights),
        category_names=tuple(c[0] for c in CATEGORIES),
        category_urls=tuple(f"/category/{c[0]}" for c in CATEGORIES),
        category_cum=cumulative(cat_pop),
        members=members,
        members_cum=tuple(cumulative([weights[i] for i in m]) for m in members),
        category_of=tuple(cat_of),
        search_terms=terms,
    )


# ---------------------------------------------------------------- visitors
# device -> (share, ((os, share, ((browser, share), ...)), ...))
DEVICES = (
    ("mobile", 0.56, (
        ("Android", 0.55, (("Chrome", 0.80), ("Samsung Internet", 0.15), ("Firefox", 0.05))),
        ("iOS", 0.45, (("Safari", 0.85), ("Chrome", 0.15))),
    )),
    ("desktop", 0.40, (
        ("Windows", 0.68, (("Chrome", 0.70), ("Edge", 0.20), ("Firefox", 0.10))),
        ("macOS", 0.24, (("Safari", 0.50), ("Chrome", 0.45), ("Firefox", 0.05))),
        ("Linux", 0.05, (("Chrome", 0.60), ("Firefox", 0.40))),
        ("ChromeOS", 0.03, (("Chrome", 1.0),)),
    )),
    ("tablet", 0.04, (
        ("iPadOS", 0.65, (("Safari", 0.90), ("Chrome", 0.10))),
        ("Android", 0.35, (("Chrome", 0.85), ("Samsung Internet", 0.15))),
    )),
)

# Flattened (device, os, browser) combinations with their joint share.
DEVICE_COMBOS: tuple[tuple[str, str, str], ...] = tuple(
    (d, o, b) for d, _, oss in DEVICES for o, _, brs in oss for b, _ in brs
)
DEVICE_COMBO_CUM = cumulative(
    [ds * os_ * bs for _, ds, oss in DEVICES for _, os_, brs in oss for _, bs in brs]
)

# country -> (share, language, first IP octets, ((city, region), ...))
GEOS = (
    ("US", 0.38, "en-US", (23, 24, 47, 63, 64, 71, 98), (
        ("New York", "NY"), ("Los Angeles", "CA"), ("Chicago", "IL"), ("Houston", "TX"),
        ("Seattle", "WA"), ("Miami", "FL"))),
    ("GB", 0.12, "en-GB", (2, 51, 81, 86), (
        ("London", "England"), ("Manchester", "England"), ("Edinburgh", "Scotland"))),
    ("DE", 0.10, "de-DE", (77, 79, 84, 91), (
        ("Berlin", "BE"), ("Munich", "BY"), ("Hamburg", "HH"))),
    ("FR", 0.07, "fr-FR", (78, 82, 90), (("Paris", "IDF"), ("Lyon", "ARA"), ("Lille", "HDF"))),
    ("CA", 0.06, "en-CA", (24, 70, 99), (("Toronto", "ON"), ("Vancouver", "BC"), ("Montreal", "QC"))),
    ("IN", 0.08, "en-IN", (49, 103, 117), (("Mumbai", "MH"), ("Bengaluru", "KA"), ("Delhi", "DL"))),
    ("BR", 0.05, "pt-BR", (177, 179, 187), (("Sao Paulo", "SP"), ("Rio de Janeiro", "RJ"))),
    ("AU", 0.04, "en-AU", (1, 101, 110), (("Sydney", "NSW"), ("Melbourne", "VIC"))),
    ("ES", 0.04, "es-ES", (80, 83, 88), (("Madrid", "MD"), ("Barcelona", "CT"))),
    ("NL", 0.03, "nl-NL", (31, 62, 145), (("Amsterdam", "NH"), ("Rotterdam", "ZH"))),
    ("JP", 0.03, "ja-JP", (126, 133, 153), (("Tokyo", "13"), ("Osaka", "27"))),
)
GEO_CUM = cumulative([g[1] for g in GEOS])

# Bots come from data-centre ranges with a headless browser.
BOT_IDENTITY = ("desktop", "Linux", "HeadlessChrome", "en-US")
BOT_IP_PREFIXES = (34, 35, 52, 54, 104)


def draw_identity(rng: random.Random) -> tuple:
    """(device, os, browser, language, ip, country, city, region) of a new visitor."""
    device, os_, browser = DEVICE_COMBOS[bisect(DEVICE_COMBO_CUM, rng.random())]
    country, _, lang, octets, cities = GEOS[bisect(GEO_CUM, rng.random())]
    city, region = cities[int(rng.random() * len(cities))]
    first = octets[int(rng.random() * len(octets))]
    r = rng.getrandbits(24)
    ip = f"{first}.{r >> 16}.{(r >> 8) & 255}.{(r & 254) + 1}"
    return (device, os_, browser, lang, ip, country, city, region)


# ---------------------------------------------------------------- traffic sources
@dataclass(frozen=True)
class Source:
    """One way into the shop. `conversion` multiplies the buying steps' probabilities."""

    share: float
    referrers: tuple[str | None, ...]
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    conversion: float
    landing: tuple[float, float, float, float]  # homepage, search, category, product


SOURCES: tuple[Source, ...] = (
    Source(0.30, (None,), None, None, None, 1.15, (0.75, 0.05, 0.10, 0.10)),
    Source(0.18, ("www.google.com",), "google", "organic", None, 1.0, (0.25, 0.0, 0.30, 0.45)),
    Source(0.05, ("www.bing.com", "duckduckgo.com"), "bing", "organic", None, 1.0,
           (0.25, 0.0, 0.30, 0.45)),
    Source(0.06, ("www.google.com",), "google", "cpc", "brand_search", 1.5, (0.60, 0.0, 0.20, 0.20)),
    Source(0.07, ("www.google.com",), "google", "cpc", "generic_search", 0.9, (0.0, 0.0, 0.40, 0.60)),
    Source(0.06, ("l.facebook.com", "m.facebook.com"), "facebook", "paid_social", "summer_sale",
           0.6, (0.10, 0.0, 0.40, 0.50)),
    Source(0.05, ("l.instagram.com",), "instagram", "paid_social", "new_arrivals", 0.5,
           (0.0, 0.0, 0.30, 0.70)),
    Source(0.03, ("www.tiktok.com",), "tiktok", "paid_social", "new_arrivals", 0.4,
           (0.0, 0.0, 0.20, 0.80)),
    Source(0.05, (None, "mail.google.com"), "newsletter", "email", "weekly_newsletter", 2.0,
           (0.30, 0.0, 0.40, 0.30)),
    Source(0.02, (None,), "newsletter", "email", "cart_reminder", 3.0, (0.0, 0.0, 0.0, 1.0)),
    Source(0.05, ("www.techradar.com", "www.wirecutter.com", "blog.example.org"), "partner_blog",
           "affiliate", "affiliate_program", 0.8, (0.05, 0.0, 0.15, 0.80)),
    Source(0.08, ("www.reddit.com", "news.ycombinator.com", "t.co"), None, "referral", None, 0.7,
           (0.40, 0.0, 0.20, 0.40)),
)
DIRECT = SOURCES[0]  # no referrer, no tags
SOURCE_CUM = cumulative([s.share for s in SOURCES])
# Normalise so that the traffic-weighted mean conversion multiplier is 1: campaign
# effects redistribute conversions between sources rather than inflate them.
_MEAN_CONV = sum(s.share * s.conversion for s in SOURCES) / sum(s.share for s in SOURCES)
SOURCE_CONVERSION: tuple[float, ...] = tuple(s.conversion / _MEAN_CONV for s in SOURCES)


def source_conversion(source: Source) -> float:
    """The buying-step multiplier of any source, on the scale of SOURCE_CONVERSION (so
    a scenario's new campaign converts relative to the same average)."""
    return source.conversion / _MEAN_CONV


# ---------------------------------------------------------------- traffic curves
# Relative sessions per UTC hour: night trough around 04h, evening peak around 20h.
HOURLY = (
    0.55, 0.40, 0.30, 0.24, 0.21, 0.24, 0.34, 0.52, 0.72, 0.88, 0.95, 1.00,
    1.05, 1.05, 1.00, 1.00, 1.05, 1.15, 1.32, 1.52, 1.68, 1.62, 1.32, 0.85,
)
# Monday .. Sunday: e-commerce is busiest on Sunday evening and Monday.
WEEKLY = (1.04, 1.00, 0.98, 0.97, 0.92, 0.95, 1.14)
_H = sum(HOURLY) / 24
_W = sum(WEEKLY) / 7


def traffic_factor(epoch_ms: int) -> float:
    """Relative arrival intensity at a time; its mean over a week is 1.

    The hourly curve is interpolated linearly between hour midpoints so that the rate has
    no steps at the top of each hour.
    """
    hours = epoch_ms / 3_600_000.0 - 0.5
    h0 = math.floor(hours)
    frac = hours - h0
    hod0, hod1 = h0 % 24, (h0 + 1) % 24
    hourly = HOURLY[hod0] * (1 - frac) + HOURLY[hod1] * frac
    weekday = (epoch_ms // 86_400_000 + 3) % 7  # 1970-01-01 was a Thursday
    return hourly / _H * WEEKLY[weekday] / _W
