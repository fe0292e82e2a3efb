"""`clickstream simulate --workers N`: the bytes of one process, whatever N and the noise."""

from __future__ import annotations

import io
import random
from array import array
from itertools import accumulate

import pytest

from services.simulator import parallel
from services.simulator.model import Noise, SimConfig
from services.simulator.options import make_config
from services.simulator.run import run_simulate
from services.simulator.scenario_option import parse_scenario
from shared.cli import DEFAULT_START, parse_time

START = parse_time(DEFAULT_START)
NOISY = Noise(late_rate=0.2, late_median_s=600.0, out_of_order_rate=0.2, duplicate_rate=0.1,
              bot_rate=0.05, malformed_rate=0.05)


def simulate(config: SimConfig, n: int, workers: int, start: int = START) -> bytes:
    """One process's bytes (`workers` 1), or the pool's, even for a few events."""
    out = io.BytesIO()
    if workers == 1:
        assert run_simulate(config, start, n, out, 1) == n
    else:
        assert parallel.run_simulate_parallel(config, start, n, out, workers) == n
    return out.getvalue()


@pytest.fixture
def one_minute_chunks(monkeypatch):
    # a chunk per simulated minute: every late or slow row crosses into later chunks, so
    # nearly every delivery minute is merged from several workers' shares
    monkeypatch.setattr(parallel, "CHUNK_ROWS", 1)


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_simulate_workers_write_the_bytes_of_one_process_with_noise(seed, one_minute_chunks):
    config = SimConfig(seed=seed, events_per_second=50.0, noise=NOISY)
    one = simulate(config, 12_000, 1)
    assert one.count(b"\n") == 12_000
    assert simulate(config, 12_000, 2) == one
    assert simulate(config, 12_000, 3) == one


def test_simulate_workers_keep_late_rows_hours_behind(one_minute_chunks):
    # lateness of hours: a delivery minute collects shares from many chunks
    config = SimConfig(seed=3, events_per_second=20.0,
                       noise=Noise(late_rate=0.3, late_median_s=3600.0, out_of_order_rate=0.5))
    one = simulate(config, 20_000, 1)
    assert simulate(config, 20_000, 2) == one


def test_simulate_takes_the_pool_from_a_chunks_worth_of_events(monkeypatch):
    calls = []
    monkeypatch.setattr(parallel, "run_simulate_parallel",
                        lambda *args, **kw: calls.append(args[-1]) or args[2])
    run_simulate(SimConfig(seed=1), START, parallel.CHUNK_ROWS - 1, io.BytesIO(), 2)
    assert calls == []  # starting the pool would cost more than it saves
    run_simulate(SimConfig(seed=1), START, parallel.CHUNK_ROWS, io.BytesIO(), 2)
    run_simulate(SimConfig(seed=1), START, parallel.CHUNK_ROWS, io.BytesIO(), 1)
    assert calls == [2]


def test_simulate_workers_with_scenarios_and_a_mid_minute_start():
    start = START + 37_123  # sessions before the start within its minute are dropped
    requests = [parse_scenario(s) for s in ("bot-burst@+5m+20m", "checkout-outage@+10m+30m")]
    config = make_config(5, 40.0, {"noise": NOISY, "scenarios": requests}, start)
    one = simulate(config, 30_000, 1, start)
    assert simulate(config, 30_000, 2, start) == one


@pytest.mark.parametrize("noise", [Noise(), Noise(late_rate=0.2, duplicate_rate=0.1), NOISY],
                         ids=["clean", "late-no-shuffle", "noisy"])
def test_simulate_workers_default_chunks_match_and_cut_mid_minute(noise):
    # without the shuffle, most minutes are written as the worker's blob, unsplit
    config = SimConfig(seed=7, noise=noise)
    for n in (0, 1, 4_321, 30_007, 61_234):
        assert simulate(config, n, 2) == simulate(config, n, 1)


def test_simulate_parent_splices_shares_as_a_stable_sort_orders_them():
    # ties across shares (an earlier chunk's line first), lines before, between and after
    # the largest share's, and shares of every size
    rng = random.Random(5)
    for _ in range(300):
        shares = []
        for k in range(rng.randint(2, 4)):
            sents = sorted(rng.randint(0, 12) for _ in range(rng.choice((0, 1, 3, 30))))
            lines = [f"c{k}-{j}-{'x' * rng.randint(0, 5)}\n".encode() for j in range(len(sents))]
            shares.append((array("q", sents), array("q", accumulate(map(len, lines))),
                           b"".join(lines)))
        if not any(s[0] for s in shares):
            continue
        want = b"".join(line + b"\n" for line in parallel._final_lines(shares))
        assert parallel._final_blob(shares) == want


def test_simulate_workers_return_the_chunks_that_overflow_their_slot(monkeypatch):
    # one-minute chunks of 0.5-0.9 MB: about half fit their shared-memory slot, the others
    # come back in the result
    monkeypatch.setattr(parallel, "CHUNK_ROWS", 1)
    monkeypatch.setattr(parallel, "SLOT_BYTES", 760_000)
    config = SimConfig(seed=7, noise=Noise(late_rate=0.2, duplicate_rate=0.1))
    assert simulate(config, 30_007, 2) == simulate(config, 30_007, 1)


def test_simulate_workers_at_a_rate_that_leaves_minutes_empty(one_minute_chunks):
    # many chunks without a line: the end of the run is planned from lines per minute
    config = SimConfig(seed=3, events_per_second=0.05)
    assert simulate(config, 300, 2) == simulate(config, 300, 1)
