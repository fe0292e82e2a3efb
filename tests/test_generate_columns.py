"""The CSV days' column path (`day_frames`) holds exactly the row path's frames, noise
included: late sends, duplicates and the draws of malformed payloads (which are not rows)."""

from __future__ import annotations

import polars as pl
import pytest

from services.batch_generator.csv_days import day_frames, rows_to_frame
from services.simulator.model import Noise, SimConfig, Simulator

START = 1767571200000  # 2026-01-05


@pytest.mark.parametrize("noise", [
    Noise(late_rate=0.2, late_median_s=3600.0, duplicate_rate=0.1, malformed_rate=0.1,
          out_of_order_rate=0.2),
    Noise(duplicate_rate=1.0),
    Noise(late_rate=0.5, late_median_s=20_000.0),
], ids=["all", "every-row-twice", "hours-late"])
def test_noisy_column_path_equals_the_row_path(noise):
    sim = Simulator(SimConfig(seed=4, events_per_second=30_000 / 86_400, noise=noise))
    end = START + 5 * 3_600_000
    rows = pl.concat([rows_to_frame(r) for r in sim.rows_by_event_time(START, end, 700)])
    frames = list(day_frames(sim, START, end, 700))
    assert len(frames) > 2 and rows.height > 1000
    assert pl.concat(frames).equals(rows)
