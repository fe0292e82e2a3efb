"""Library entry points behind `clickstream simulate` and `clickstream profile`."""

from __future__ import annotations

import json
from typing import BinaryIO

from services.simulator import profile as _profile
from services.simulator.model import SimConfig, Simulator
from services.simulator.wire import RowEncoder


def run_simulate(config: SimConfig, start_ms: int, n_events: int, out: BinaryIO) -> int:
    """Write `n_events` JSON lines (malformed noise counts as a line) to `out`."""
    encode = RowEncoder()
    written = 0
    buf: list[bytes] = []
    for row in Simulator(config).rows(start_ms):
        if written >= n_events:
            break
        buf.append(encode(row))
        written += 1
        if len(buf) >= 4096:
            out.write(b"\n".join(buf) + b"\n")
            buf.clear()
    if buf:
        out.write(b"\n".join(buf) + b"\n")
    out.flush()
    return written


def run_profile(seed: int, n_events: int, start_ms: int, model: dict, as_json: bool) -> str:
    """The profile of a sample spread over one simulated week, as text or JSON."""
    model = {k: v for k, v in model.items() if k != "noise"}  # the profile is of clean traffic
    stats = _profile.profile(_profile.sample(seed, n_events, start_ms, **model))
    if as_json:
        stats["calibration"] = {
            t.name: {"measured": v, "target": t.value, "low": t.low, "high": t.high, "ok": ok,
                     "source": t.source}
            for t, v, ok in _profile.check(stats)
        }
        return json.dumps(stats, indent=2)
    return _profile.render(stats)
