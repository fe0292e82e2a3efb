"""The latency and lag arithmetic of `bench/bench_stream.py` (no servers)."""

import json

from bench.bench_stream import committed_offset, latencies


def test_bench_latency_is_first_poll_counting_the_events_rank():
    # minute 7: events of rank 100 and 200 sent at t=10.0 and t=11.0
    samples = [(10.0, 7, 100), (11.0, 7, 200), (12.0, 8, 100)]
    seen = {7: [(10.5, 50), (12.0, 150), (13.0, 250)],  # rank 100 counted at 12.0, 200 at 13.0
            8: [(11.0, 500)]}  # a poll before the send does not count (rank 100 of minute 8)
    assert latencies(samples, seen) == [2.0, 2.0]


def test_bench_committed_offset_reads_the_last_committed_batch(tmp_path):
    (tmp_path / "commits").mkdir()
    (tmp_path / "offsets").mkdir()
    for batch, offsets in [(0, {"0": 5, "1": 5}), (1, {"0": 40, "1": 60}), (2, {"0": 90})]:
        (tmp_path / "offsets" / str(batch)).write_text(
            "v1\n{\"batchWatermarkMs\":0}\n" + json.dumps({"t": offsets}))
    assert committed_offset(tmp_path) == 0  # nothing committed yet
    for batch in (0, 1):  # batch 2 is planned but not committed
        (tmp_path / "commits" / str(batch)).write_text("v1\n{}")
    assert committed_offset(tmp_path) == 100
