"""Library entry points behind `clickstream simulate` and `clickstream profile`."""

from __future__ import annotations

import json
import math
import random
from typing import BinaryIO

from services.simulator import parallel
from services.simulator import profile as _profile
from services.simulator.delivery import BLOCK_MS, in_time_order
from services.simulator.lines import line_encoder
from services.simulator.model import SimConfig, Simulator
from services.simulator.noise import shuffle_some
from services.simulator.versions import DEFAULT_MODE


def run_simulate(config: SimConfig, start_ms: int, n_events: int, out: BinaryIO,
                 workers: int = 1, schema_version: str = DEFAULT_MODE) -> int:
    """Write `n_events` JSON lines (malformed noise counts as a line) to `out`, each event
    in the version `schema_version` picks; with `workers` > 1, simulated by that many
    processes (the same bytes), unless it is less than a worker's first chunk: then
    starting the pool costs more than it saves."""
    if workers > 1 and n_events >= parallel.CHUNK_ROWS:
        return parallel.run_simulate_parallel(config, start_ms, n_events, out, workers,
                                              schema_version=schema_version)
    sim = Simulator(config)
    encoder = line_encoder(schema_version)
    ooo = config.noise.out_of_order_rate
    orng = random.Random(f"{config.seed}:{start_ms}:order") if ooo else None
    written = 0
    # what `Simulator.rows` does, on (sent_at, line) pairs: the same order, the same shuffle
    for ready in in_time_order(lambda b: sim.block_lines(b, encoder, start_ms),
                               start_ms // BLOCK_MS, 0):
        if ooo:
            shuffle_some(orng, ready, ooo)
        if len(ready) > n_events - written:
            del ready[n_events - written:]
        if ready:
            out.write(b"".join([line for _, line in ready]))
            written += len(ready)
        if written >= n_events:
            break
    out.flush()
    return written


def run_profile(config: SimConfig, n_events: int, start_ms: int, as_json: bool) -> str:
    """The profile of a sample spread over one simulated week, as text or JSON; with
    scenarios, each one's claims measured in its window."""
    # the profile is of clean traffic: its own density, no noise
    model = {"returning_share": config.returning_share, "ab_effect": config.ab_effect,
             "catalogue_size": config.catalogue_size}
    stats = _profile.profile(_profile.sample(config.seed, n_events, start_ms,
                                             scenarios=config.scenarios, **model))
    report = _profile.scenario_report(config.seed, config.scenarios, **model)
    if as_json:
        stats["calibration"] = {
            t.name: {"measured": v, "target": t.value, "low": t.low, "high": t.high, "ok": ok,
                     "source": t.source}
            for t, v, ok in _profile.check(stats)
        }
        if report:
            stats["scenarios"] = report
            for claim in (c for s in report for c in s["claims"]):
                for k in ("with", "without", "measured", "low", "high"):
                    if not math.isfinite(claim[k]):  # no bound, or 0/0: null in JSON
                        claim[k] = None
        return json.dumps(stats, indent=2, allow_nan=False)
    text = _profile.render(stats)
    return text + "\n\n" + _profile.render_scenarios(report) if report else text
