"""`clickstream simulate` writes its JSON lines straight from the walk (`lines.py`,
`Simulator.block_lines`): the same bytes as encoding the rows, whatever the noise, the
scenarios, the schema version and the worker count."""

from __future__ import annotations

import hashlib
import io
from itertools import islice

import pytest

from services.simulator import parallel
from services.simulator.lines import RowLines, SessionLines, line_encoder
from services.simulator.model import BLOCK_MS, Noise, SimConfig, Simulator
from services.simulator.options import make_config
from services.simulator.rows import SENT, complete_session
from services.simulator.run import run_simulate
from services.simulator.scenario_option import parse_scenario
from services.simulator.versions import VersionedEncoder
from shared.cli import DEFAULT_START, parse_time

START = parse_time(DEFAULT_START)
NOISY = Noise(late_rate=0.2, late_median_s=600.0, out_of_order_rate=0.2, duplicate_rate=0.1,
              bot_rate=0.05, malformed_rate=0.05)
MID_MINUTE = START + 37_123


def _scenarios(seed: int, start: int) -> SimConfig:
    requests = [parse_scenario(s) for s in ("bot-burst@+5m+20m", "checkout-outage@+10m+30m")]
    return make_config(seed, 40.0, {"noise": NOISY, "scenarios": requests}, start)


def _row_path(config: SimConfig, start: int, n: int, mode: str = "1") -> bytes:
    """What `run_simulate` wrote before the lines path: each row of `Simulator.rows`
    encoded by `VersionedEncoder`, one line each."""
    encode_row = VersionedEncoder(mode)
    return b"".join(encode_row(r) + b"\n" for r in islice(Simulator(config).rows(start), n))


def _simulate(config: SimConfig, start: int, n: int, workers: int, mode: str = "1") -> bytes:
    out = io.BytesIO()
    if workers == 1:
        assert run_simulate(config, start, n, out, 1, mode) == n
    else:
        assert parallel.run_simulate_parallel(config, start, n, out, workers, mode) == n
    return out.getvalue()


@pytest.mark.parametrize(("config", "not_before", "mode"), [
    (SimConfig(seed=7), 0, "1"),
    (SimConfig(seed=7), MID_MINUTE, "1"),
    (SimConfig(seed=1, events_per_second=50.0, noise=NOISY), MID_MINUTE, "1"),
    (SimConfig(seed=2, noise=Noise(late_rate=0.5, duplicate_rate=0.3, malformed_rate=0.3)),
     0, "1"),
    (_scenarios(5, START), START, "1"),
    (SimConfig(seed=1, noise=NOISY), MID_MINUTE, "2"),
    (SimConfig(seed=1, noise=NOISY), START, "mix"),
], ids=["clean", "clean-mid-minute", "noisy-mid-minute", "much-noise", "scenarios", "v2",
        "mix"])
def test_block_lines_are_the_encoded_rows_of_block_rows(config, not_before, mode):
    sim = Simulator(config)
    encoder, encode_row = line_encoder(mode), VersionedEncoder(mode)
    first = START // BLOCK_MS
    for block in range(first, first + 12):
        want = [(r[SENT], encode_row(r) + b"\n") for r in sim.block_rows(block, not_before)]
        assert sim.block_lines(block, encoder, not_before) == want, block


def test_line_encoder_takes_the_session_path_for_version_1_only():
    assert isinstance(line_encoder("1"), SessionLines)
    assert isinstance(line_encoder("2"), RowLines)
    assert isinstance(line_encoder("mix"), RowLines)


def test_session_lines_escape_strings_as_orjson_does():
    # strings the catalogue never holds: quotes, backslashes, control and non-ASCII text
    encoder, encode_row = SessionLines(), VersionedEncoder("1")
    lat = Simulator(SimConfig()).latency_table
    for k, text in enumerate(('Zürich "Nord"', "C:\\shop", "tab\there", "line\u2028sep", "😀")):
        partial = [(START + k, text, "view", text, text, text, text, None, None, 0, None, None,
                    None, None, False),
                   (START + 999 * k, "cart", text, "/cart", None, None, text, 7, 8, 25, 1999, 2,
                    text, 3998, True)]
        constants = (f"{text}-s{k}", text, text, None, text, f"u{text}", "desktop", text, text,
                     text, text, text, text, text, text)
        got: list = []
        encoder.session(got.append, partial, constants, lambda: 0.5, lat)
        rows: list = []
        complete_session(rows.append, partial, constants, [sent for sent, _ in got])
        assert [line for _, line in got] == [encode_row(r) + b"\n" for r in rows]


# sha256 of `clickstream simulate` output for these runs, made by the code before the
# lines path (64a8bde, rows encoded one by one), single process
PINNED = {
    "clean": ((SimConfig(seed=7), START, 30_000, "1"),
              "e2051d07975d1c74cac76bccf840ac904b1a2a7fad4045620fb6a7dbb5a50593"),
    "noisy": ((SimConfig(seed=1, events_per_second=50.0, noise=NOISY), START, 20_000, "1"),
              "45844c25db218f02570ef0d9f9c9c232f354483a55d83995841709deb472367d"),
    "late-duplicate-malformed": (
        (SimConfig(seed=3, noise=Noise(late_rate=0.2, duplicate_rate=0.1,
                                       malformed_rate=0.05)), START, 20_000, "1"),
        "b0bb87b64fe6d1111cbc443ed4b8f95d55597114a34111e82812294f0e5e86ce"),
    "scenarios-mid-minute": ((_scenarios(5, MID_MINUTE), MID_MINUTE, 30_000, "1"),
                             "6e53ff446729a5c9c0797ff9eadca61bf2b59429e78f39505bf8fad582b3306d"),
    "v2": ((SimConfig(seed=7), START, 10_000, "2"),
           "a2f85b3d6269b7d6be74b7930cd028be35fa61c3a1bbce9c2520b3fa731b4b76"),
    "mix": ((SimConfig(seed=7, noise=NOISY), START, 10_000, "mix"),
            "d5cb3a7416676be72092a232b968bb7fb50a981bc3c74ce3cecb26c4f38d7eee"),
}


@pytest.mark.parametrize("case", list(PINNED))
def test_simulate_bytes_are_pinned_for_one_and_two_workers(case, monkeypatch):
    monkeypatch.setattr(parallel, "CHUNK_ROWS", 3_000)  # shares of a minute from several chunks
    (config, start, n, mode), digest = PINNED[case]
    one = _simulate(config, start, n, 1, mode)
    assert hashlib.sha256(one).hexdigest() == digest
    assert _simulate(config, start, n, 2, mode) == one


@pytest.mark.parametrize("config", [SimConfig(seed=11), SimConfig(seed=12, noise=NOISY)],
                         ids=["clean", "noisy"])
def test_simulate_writes_the_row_paths_bytes(config):
    assert _simulate(config, MID_MINUTE, 25_000, 1) == _row_path(config, MID_MINUTE, 25_000)
