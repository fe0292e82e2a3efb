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

This module draws the arrivals and the visitors of each block and puts the parts together:

- `walk.py`: what a visitor does in one session (the behaviour knobs and the hot loop);
- `rows.py`: the tuple layouts; a session's partial events + constants -> event rows;
- `noise.py`: bots, late sends, duplicates, malformed markers, out-of-order delivery;
- `malformed.py`: the malformed payloads, rendered by the wire encoder (`wire.py`);
- `lines.py`: JSON lines straight from the walk, for `block_lines` (`clickstream simulate`);
- `delivery.py`: per-block rows -> rows in delivery (or event-time) order;
- `scenarios.py`: incidents and events applied inside a time window (`SimConfig.scenarios`).

`Simulator.rows()` gives event rows in delivery order and `Simulator.events()` the event
dicts of `shared.events`. `clickstream simulate` takes `block_lines`: the same rows as
`block_rows`, as (sent_at, JSON line) pairs, each session encoded as it is walked. The
CSV generator skips the full rows: it takes the partial tuples and the per-session
constants from `block_columns` and builds Polars columns in bulk. All paths draw the same
random numbers, so they hold the same events.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property

from services.simulator import world
from services.simulator.delivery import BLOCK_MS, in_time_order
from services.simulator.malformed import MALFORMED, event_row, marker
from services.simulator.noise import (
    Noise,
    bot_ip,
    bot_session,
    perturb,
    perturb_draws,
    shuffle_some,
)
from services.simulator.rows import (
    PARTIAL_FIELDS,
    PARTIAL_TS,
    SENT,
    SESSION_FIELDS,
    SESSION_ID,
    TS,
    complete_session,
    row_to_event,
    session_constants,
)
from services.simulator.scenarios import NAMES, Window, check_windows, combine
from services.simulator.walk import (
    EVENTS_PER_SESSION,
    MAX_SESSION_MS,
    P_HAS_ACCOUNT,
    transition_tables,
    walk,
)
from services.simulator.wire import RowEncoder
from services.simulator.world import cumulative, poisson


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
    scenarios: tuple[Window, ...] = ()  # see scenarios.py; none: the calibrated model

    def __post_init__(self):
        if not self.events_per_second > 0:
            raise ValueError(f"events per second must be > 0, got {self.events_per_second}")
        if not 0.0 <= self.returning_share <= 1.0:
            raise ValueError(f"returning share must be within 0..1, got {self.returning_share}")
        if not -1.0 < self.ab_effect <= 10.0:
            raise ValueError(f"A/B effect must be within -1..10, got {self.ab_effect}")
        if self.catalogue_size < 10:
            raise ValueError(f"catalogue size must be >= 10, got {self.catalogue_size}")
        check_windows(self.scenarios)


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
            self.sessions_per_ms * noise.bot_rate / (1.0 - noise.bot_rate)
            if noise.bot_rate else 0.0
        )

    # ------------------------------------------------------------ lazily built world
    @cached_property
    def catalogue(self) -> world.Catalogue:
        return world.build_catalogue(self.config.seed, self.config.catalogue_size)

    @cached_property
    def population(self) -> tuple[tuple, list[float]]:
        """Returning visitors (`rows.VISITOR_FIELDS` tuples) and cumulative visit-frequency
        weights."""
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
            users.append((f"u{self.tag}{i:06d}", *ident, variant, has_account))
        # a few visitors come back very often, most rarely
        weights = [1.0 / (i + 10) ** 0.7 for i in range(size)]
        rng.shuffle(weights)
        return tuple(users), cumulative(weights)

    @cached_property
    def _tables(self) -> dict:
        return transition_tables(self.config.ab_effect)

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
        active = self._active(block) if self.config.scenarios else ()
        tweaks = combine([w.scenario.tweaks for w in active if w.scenario.tweaks])
        for rng, sid, t0, user, returning in self._visits(block):
            session(rng, rows, sid, t0, user, returning, tweaks)
            if partial and not lo <= t0 < hi:
                skipped.add(sid)
        for window in active:
            if window.scenario.extra is not None:
                self._extra_sessions(window, block, tweaks, rows, lo, hi, skipped)
        if self.config.noise.any:
            rows = self._add_noise(block, start, rows, lo, hi, skipped)
        if skipped:
            # sessions outside the window are drawn all the same, so that the others (and
            # the noise) are identical whatever the window; drop them here
            rows = [r for r in rows if event_row(r)[SESSION_ID] not in skipped]
        return rows

    def _visits(self, block: int):
        """(rng, session id, start, visitor, returning) of each session starting in `block`,
        in order. The caller must draw the session from `rng` before asking for the next."""
        start = block * BLOCK_MS
        rng = random.Random(f"{self.config.seed}:{block}")
        lam = self.sessions_per_ms * BLOCK_MS * world.traffic_factor(start + BLOCK_MS // 2)
        n = poisson(rng, lam)
        starts = sorted(start + int(rng.random() * BLOCK_MS) for _ in range(n))
        visitor = self._visitor
        prefix = f"{self.tag}{block:x}"
        for i, t0 in enumerate(starts):
            sid = f"{prefix}{i:04x}"
            yield rng, sid, t0, *visitor(rng, sid)

    def _visitor(self, rng, sid: str) -> tuple[tuple, bool]:
        """(visitor, returning) of a new session: a returning one, or someone new."""
        rand = rng.random
        if rand() < self.config.returning_share:
            users, users_cum = self.population
            return users[bisect(users_cum, rand())], True
        ident = world.draw_identity(rng)
        return (f"v{sid}", *ident, "B" if rand() < 0.5 else "A", False), False

    # ------------------------------------------------------------ scenarios
    def _active(self, block: int) -> list[Window]:
        return [w for w in self.config.scenarios if w.covers(block)]

    def _extra_sessions(self, window: Window, block: int, tweaks, rows, lo, hi, skipped):
        """The sessions `window`'s scenario adds in `block`, appended to `rows`.

        Drawn from a generator of their own, so the usual sessions are unchanged; their ids
        carry an `x` and the scenario's number, so they never collide with others.
        """
        extra = window.scenario.extra
        start = block * BLOCK_MS
        srng = random.Random(f"{self.config.seed}:{block}:{window.name}")
        lam = (extra.rate * window.ramp(block) * self.sessions_per_ms * BLOCK_MS
               * world.traffic_factor(start + BLOCK_MS // 2))
        if extra.per_category_share:
            lam *= self.catalogue.category_share(extra.tweaks.landing_category)
        prefix = f"{self.tag}{block:x}x{NAMES.index(window.name)}"
        ips = self._burst_ips(window) if extra.bot_ips else ()
        own = combine([t for t in (tweaks, extra.tweaks) if t is not None])
        for i in range(poisson(srng, lam)):
            t0 = start + int(srng.random() * BLOCK_MS)
            sid = f"{prefix}{i:04x}"
            if ips:
                bot_session(srng, rows, sid, t0, self.catalogue,
                            ip=ips[int(srng.random() * len(ips))], dwell_ms=extra.bot_dwell_ms)
            else:
                self._session(srng, rows, sid, t0, *self._visitor(srng, sid), own)
            if not lo <= t0 < hi:
                skipped.add(sid)

    def _burst_ips(self, window: Window) -> tuple[str, ...]:
        """A crawler's few addresses, the same for the whole window."""
        rng = random.Random(f"{self.config.seed}:{window.name}@{window.start_ms}:ips")
        return tuple(bot_ip(rng) for _ in range(window.scenario.extra.bot_ips))

    def block_columns(self, block: int, events: list, latency_draws: list,
                      sessions: list) -> None:
        """The sessions starting in `block` in a column-friendly form, for bulk builders
        (the CSV days): the same sessions and draws as `block_rows` with noise off.

        Extends `events` with the partial tuples of the walk (`PARTIAL_FIELDS`; session
        after session, in order), `latency_draws` with one `random()` per event (collector
        latency, see `latency_table`), and `sessions` with one tuple per session in
        `SESSION_FIELDS` order plus its event count last. `event_id`, `sent_at` and
        `page_duration_ms` are derived from these by the builder.

        Without scenarios only: their extra sessions (crawlers among them) come as whole
        rows, so a run with scenarios takes `block_rows`.
        """
        if self.config.scenarios:
            raise ValueError("block_columns does not apply scenarios: use block_rows")
        tb, cat = self._tables, self.catalogue
        add_session = sessions.append
        extend_events = events.extend
        extend_draws = latency_draws.extend
        for rng, sid, t0, user, returning in self._visits(block):
            evs, src, referrer = walk(rng, sid, t0, user, returning, tb, cat)
            rand = rng.random
            extend_draws([rand() for _ in evs])
            extend_events(evs)
            add_session((*session_constants(sid, user, referrer, src.utm_source,
                                            src.utm_medium, src.utm_campaign), len(evs)))

    def block_noise(self, block: int, n_rows: int) -> tuple[dict, set, dict]:
        """The late delays, duplicate sends and malformed payloads of the `n_rows` rows of
        `block` (`noise.perturb_draws`), for bulk builders: the noise `block_rows` adds to
        the rows `block_columns` gives, in that order.

        Without bot noise only: bots are whole rows, so a run with bots takes `block_rows`.
        """
        if self.bot_sessions_per_ms:
            raise ValueError("block_noise does not draw bot sessions: use block_rows")
        nrng = random.Random(f"{self.config.seed}:{block}:noise")
        return perturb_draws(nrng, n_rows, self.config.noise)

    def _add_noise(self, block, start, rows, lo, hi, skipped) -> list:
        nrng = random.Random(f"{self.config.seed}:{block}:noise")
        if self.bot_sessions_per_ms:
            lam = self.bot_sessions_per_ms * BLOCK_MS * world.traffic_factor(start + BLOCK_MS // 2)
            for i in range(poisson(nrng, lam)):
                t0 = start + int(nrng.random() * BLOCK_MS)
                sid = f"{self.tag}{block:x}b{i:03x}"
                bot_session(nrng, rows, sid, t0, self.catalogue)
                if not lo <= t0 < hi:
                    skipped.add(sid)
        return perturb(nrng, rows, self.config.noise)

    # ------------------------------------------------------------ JSON lines
    def block_lines(self, block: int, encoder, not_before: int = 0,
                    not_after: int | None = None) -> list[tuple[int, bytes]]:
        """`block_rows` as (sent_at, wire bytes + newline) pairs, in the same order, from
        `encoder` (`lines.line_encoder`): each human session is encoded as it is walked,
        without building its rows. What noise changes (a late send's time, a malformed
        payload) and bots are made as rows and encoded by `encoder.line`; blocks with a
        scenario active take `block_rows` whole."""
        if self.config.scenarios and self._active(block):
            return [(r[SENT], encoder.line(r)) for r in self.block_rows(block, not_before,
                                                                        not_after)]
        start = block * BLOCK_MS
        lo, hi = not_before, BLOCK_MS * (block + 1) if not_after is None else not_after
        partial = not (lo <= start and hi >= start + BLOCK_MS)
        tb, cat = self._tables, self.catalogue
        lat = tb["latency"]
        lines: list[tuple[int, bytes | None]] = []
        add, encode = lines.append, encoder.session
        noisy = self.config.noise.any
        sessions = []  # (its first line, partial events, constants): to rebuild a row
        skipped = False
        for rng, sid, t0, user, returning in self._visits(block):
            evs, src, referrer = walk(rng, sid, t0, user, returning, tb, cat)
            constants = session_constants(sid, user, referrer, src.utm_source,
                                          src.utm_medium, src.utm_campaign)
            if noisy:
                sessions.append((len(lines), evs, constants))
            if partial and not lo <= t0 < hi:
                # outside the window: drawn all the same (see block_rows), written as None
                rand = rng.random
                lines += [(rand(), None) for _ in evs]
                skipped = True
            else:
                encode(add, evs, constants, rng.random, lat)
        if noisy:
            lines, some_skipped = self._noise_lines(block, start, lines, sessions, lo, hi,
                                                    encoder)
            skipped = skipped or some_skipped
        if skipped:
            lines = [pair for pair in lines if pair[1] is not None]
        return lines

    def _noise_lines(self, block, start, lines, sessions, lo, hi, encoder):
        """`_add_noise` for `block_lines`: bots encoded from their rows, then late sends,
        duplicates and malformed payloads drawn by `perturb_draws` as `perturb` does."""
        nrng = random.Random(f"{self.config.seed}:{block}:noise")
        noise = self.config.noise
        bots: list[tuple] = []
        first_bot = len(lines)
        skipped = False
        if self.bot_sessions_per_ms:
            lam = self.bot_sessions_per_ms * BLOCK_MS * world.traffic_factor(start + BLOCK_MS // 2)
            for i in range(poisson(nrng, lam)):
                t0 = start + int(nrng.random() * BLOCK_MS)
                first = len(bots)
                bot_session(nrng, bots, f"{self.tag}{block:x}b{i:03x}", t0, self.catalogue)
                if lo <= t0 < hi:
                    lines += [(r[SENT], encoder.line(r)) for r in bots[first:]]
                else:
                    lines += [(r[SENT], None) for r in bots[first:]]
                    skipped = True
        if not (noise.late_rate or noise.duplicate_rate or noise.malformed_rate):
            return lines, skipped
        delays, twice, broken = perturb_draws(nrng, len(lines), noise)
        firsts = [s[0] for s in sessions]

        def row_at(i: int) -> tuple:
            if i >= first_bot:
                return bots[i - first_bot]
            first, evs, constants = sessions[bisect(firsts, i) - 1]
            rows: list[tuple] = []
            complete_session(rows.append, evs, constants,
                             [s for s, _ in lines[first:first + len(evs)]])
            return rows[i - first]

        out: list = []
        done = 0
        for i in sorted({*delays, *twice, *broken}):  # few rows: copy the clean runs between
            out.extend(lines[done:i])
            done = i + 1
            pair = lines[i]
            if pair[1] is None:  # a skipped session's: so are its duplicate and payload
                out.append(pair)
                continue
            if i in delays or i in broken:
                row = row_at(i)
                if i in delays:
                    row = (*row[:SENT], row[TS] + delays[i], *row[SENT + 1:])
                    pair = (row[SENT], encoder.line(row))
            out.append(pair)
            if i in twice:
                out.append(pair)
            if i in broken:
                out.append((row[SENT], encoder.line(marker(broken[i], row))))
        out.extend(lines[done:])
        return out, skipped

    # ------------------------------------------------------------ one session
    def _session(self, rng, rows, sid, t0, user, returning, tweaks=None):
        """One session's event rows, appended to `rows`; `tweaks`: a scenario's changes."""
        evs, src, referrer = walk(rng, sid, t0, user, returning, self._tables, self.catalogue,
                                  tweaks)
        # the collector's time of each event: one latency draw per event, in order
        rand = rng.random
        lat = self._tables["latency"]
        sent = []
        for e in evs:
            x = rand() * 1024.0
            i = int(x)
            sent.append(e[PARTIAL_TS] + int(lat[i] + (x - i) * (lat[i + 1] - lat[i])))
        constants = session_constants(sid, user, referrer, src.utm_source, src.utm_medium,
                                      src.utm_campaign)
        complete_session(rows.append, evs, constants, sent)

    # ------------------------------------------------------------ streams
    def rows(self, start_ms: int, end_ms: int | None = None) -> Iterator[tuple]:
        """Event tuples in delivery (collector) order from `start_ms`, forever or until
        every session that starts before `end_ms` has been delivered.

        A tuple whose position 0 is `MALFORMED` stands for a malformed payload.
        """
        ooo = self.config.noise.out_of_order_rate
        orng = random.Random(f"{self.config.seed}:{start_ms}:order") if ooo else None
        for ready in in_time_order(lambda b: self.block_rows(b, start_ms, end_ms),
                                   start_ms // BLOCK_MS, SENT, end_ms):
            if ooo:
                shuffle_some(orng, ready, ooo)
            yield from ready

    def rows_by_event_time(self, start_ms: int, end_ms: int, chunk: int = 50_000):
        """Lists of event tuples with `start_ms <= timestamp < end_ms` in event-time order,
        about `chunk` per list, including sessions that started before `start_ms`.

        Late and duplicate noise is included (by event time); malformed markers are not:
        a typed CSV cannot hold them.
        """
        first_block = (start_ms - MAX_SESSION_MS) // BLOCK_MS - 1
        last_block = (end_ms - 1) // BLOCK_MS
        out: list[tuple] = []
        for ready in in_time_order(
                lambda b: [r for r in self.block_rows(b) if r[0] is not MALFORMED],
                first_block, TS, (last_block + 1) * BLOCK_MS, drain=False):
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
        encode = None
        for row in self.rows(start_ms, end_ms):
            if row[0] is MALFORMED:
                encode = encode or RowEncoder()
                yield encode(row)
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


__all__ = [
    "BLOCK_MS",
    "EVENTS_PER_SESSION",
    "MALFORMED",
    "MAX_SESSION_MS",
    "PARTIAL_FIELDS",
    "SESSION_FIELDS",
    "Noise",
    "SimConfig",
    "Simulator",
    "row_to_event",
]
