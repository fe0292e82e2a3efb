"""`clickstream generate` through the real CLI, read back with the typed reader."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from shared.events import polars_schema
from shared.settings import Settings
from testing.csv_reader import read_events


@pytest.mark.integration
def test_generate_csv_round_trip(tmp_path):
    """Needs no server: the real CLI in a subprocess, two worker processes."""
    from integration_tests.helpers import run_cli

    done = run_cli(Settings(_env_file=None), "generate", "--days", "2", "--out", str(tmp_path),
                   "--events-per-day", "50000", "--seed", "3", "--quiet")
    assert done.returncode == 0, done.stderr
    df = read_events(tmp_path)
    assert df.schema == polars_schema()
    assert 80_000 < df.height < 130_000
    assert df["event_id"].n_unique() == df.height
    days = df.group_by(pl.col("timestamp").dt.date().alias("d")).len().sort("d")
    assert days["d"].to_list() == [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]
    assert f"wrote {df.height:,} events" in done.stdout
