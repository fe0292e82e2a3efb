"""Noise: the imperfections of real collection, each with its own rate, all off by default.

- bot sessions: crawlers on top of the human traffic (`bot_session`);
- late events: a `sent_at` later than the device `timestamp`, duplicate sends (the same row
  twice) and malformed payloads (markers, see `malformed.py`) (`perturb`);
- out-of-order delivery: some rows sent after later ones (`shuffle_some`, applied by the
  delivery order).

Noise draws from generators of its own, so switching it on adds traffic without changing
a single clean event.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from services.simulator import malformed, world
from services.simulator.rows import SENT, TS, complete_session, session_constants

LATE_SIGMA = 1.0  # late events' extra delay is log-normal around `late_median_s`
MAX_LATE_MS = 6 * 3_600_000
BOT_EVENTS = (15, 60)  # product and listing views per bot session
BOT_DWELL_MS = (250, 1500)
BOT_EVENTS_PER_SESSION = (BOT_EVENTS[0] + BOT_EVENTS[1]) / 2 + 0.5
BOT_GEO = ("US", "Ashburn", "VA")  # data centres


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


def bot_ip(rng: random.Random) -> str:
    """A data-centre address."""
    r = rng.getrandbits(24)
    prefix = world.BOT_IP_PREFIXES[int(rng.random() * len(world.BOT_IP_PREFIXES))]
    return f"{prefix}.{r >> 16}.{(r >> 8) & 255}.{(r & 254) + 1}"


def bot_session(rng: random.Random, rows: list, sid: str, t0: int, cat, ip: str | None = None,
                dwell_ms: tuple[int, int] = BOT_DWELL_MS) -> None:
    """A crawler's rows, appended to `rows`: many fast product and listing views from a
    data-centre address (`ip`, or a new one), never a cart."""
    rand = rng.random
    device, os_, browser, lang = world.BOT_IDENTITY
    if ip is None:
        ip = bot_ip(rng)
    variant = "A" if rand() < 0.5 else "B"
    visitor = (f"v{sid}", device, os_, browser, lang, ip, *BOT_GEO, variant, False)
    n = BOT_EVENTS[0] + int(rand() * (BOT_EVENTS[1] - BOT_EVENTS[0] + 1))
    t = t0
    times = []
    for _ in range(n):
        times.append(t)
        t += dwell_ms[0] + int(rand() * (dwell_ms[1] - dwell_ms[0]))
    partial, sent = [], []
    for ts in times:
        if rand() < 0.7:
            p = int(rand() * len(cat))
            partial.append((ts, "product", "view", cat.urls[p], cat.product_ids[p],
                            cat.categories[p], None, None, None, 0, cat.prices[p], None, None,
                            None, False))
        else:
            c = int(rand() * len(cat.category_names))
            partial.append((ts, "category", "view", cat.category_urls[c], None,
                            cat.category_names[c], None, None, None, 0, None, None, None,
                            None, False))
        sent.append(ts + 20 + int(rand() * 60))  # next to the collector
    complete_session(rows.append, partial, session_constants(sid, visitor, None, None, None,
                                                             None), sent)


def perturb_draws(rng: random.Random, n: int, noise: Noise) -> tuple[dict, set, dict]:
    """The noise of `n` rows, drawn row after row: whether the row is late (then its extra
    delay), then whether it is sent twice, then whether a malformed payload follows it (then
    its kind). Returns {row: extra delay ms}, {rows sent twice}, {row: malformed kind}.

    The one definition of these draws: `perturb` applies them to rows, and the CSV days to
    their columns (`Simulator.block_noise`), so both hold the same noise.
    """
    rand, gauss = rng.random, rng.gauss
    late, late_mu = noise.late_rate, math.log(noise.late_median_s * 1000.0)
    dup, bad = noise.duplicate_rate, noise.malformed_rate
    kinds = malformed.KINDS
    delays, twice, broken = {}, set(), {}
    for i in range(n):
        if late and rand() < late:
            delays[i] = min(int(math.exp(gauss(late_mu, LATE_SIGMA))), MAX_LATE_MS)
        if dup and rand() < dup:
            twice.add(i)
        if bad and rand() < bad:
            broken[i] = kinds[int(rand() * len(kinds))]
    return delays, twice, broken


def perturb(rng: random.Random, rows: list, noise: Noise) -> list:
    """`rows` with late sends, duplicates and malformed markers (`perturb_draws`): a late
    row's `sent_at` moves, a duplicate follows its row, a marker follows both."""
    if not (noise.late_rate or noise.duplicate_rate or noise.malformed_rate):
        return rows
    delays, twice, broken = perturb_draws(rng, len(rows), noise)
    out: list = []
    done = 0
    for i in sorted({*delays, *twice, *broken}):  # few rows: copy the clean runs between
        out.extend(rows[done:i])
        row = rows[i]
        if i in delays:
            row = (*row[:SENT], row[TS] + delays[i], *row[SENT + 1 :])
        out.append(row)
        if i in twice:
            out.append(row)
        if i in broken:
            out.append(malformed.marker(broken[i], row))
        done = i + 1
    out.extend(rows[done:])
    return out


def shuffle_some(rng: random.Random, items: list, rate: float) -> None:
    """Deliver about `rate` of the items after up to 20 later ones."""
    n = len(items)
    rand = rng.random
    for i in range(n - 1):
        if rand() < rate:
            j = min(n - 1, i + 1 + int(rand() * 20))
            items.insert(j, items.pop(i))
