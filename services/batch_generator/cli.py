"""`clickstream generate`: simulated days as CSV files (Polars)."""

from __future__ import annotations

from pathlib import Path

import click

from services.batch_generator.csv_days import DAY_MS, run_generate
from services.simulator.options import make_config, model_options, schema_version_option
from shared.cli import DEFAULT_START, Command, parse_time


@click.command(cls=Command)
@click.option("--days", type=click.IntRange(1), default=1, show_default=True,
              help="Number of days (one CSV file each).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Output folder (created if missing).")
@click.option("--events-per-day", type=click.IntRange(1), default=1_000_000,
              show_default=True, help="Mean events per day (the weekly curve varies it).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--start", default=DEFAULT_START, show_default=True,
              help="First day (ISO-8601 date, UTC).")
@click.option("--workers", type=click.IntRange(1, 64), default=2, show_default=True,
              help="Worker processes (the output does not depend on it).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@schema_version_option
@model_options
def generate(days, out_dir, events_per_day, seed, start, workers, quiet, schema_version,
             model):
    """Write simulated events as one CSV per UTC day (events-YYYY-MM-DD.csv).

    Each file holds exactly the events of its date, in event-time order, with the shared
    schema's header (with --schema-version 2 or mix, every version's columns, each row
    filling those of its schema_version); read them back with
    testing.csv_reader.read_events.
    Malformed-payload noise is not written (a typed CSV cannot hold it).

    \b
    Example:
        clickstream generate --days 3 --out data/csv --events-per-day 1000000 --seed 7
        clickstream generate --days 1 --out data/mixed --schema-version mix --seed 7
    """
    start_ms = parse_time(start)
    # --scenario offsets count from the first day's midnight, where the files start
    config = make_config(seed, events_per_day / 86_400, model, start_ms // DAY_MS * DAY_MS)
    result = run_generate(config, days, out_dir, start_ms, workers, not quiet,
                          schema_version)
    rate = result.events / result.seconds if result.seconds else 0.0
    click.echo(
        f"wrote {result.events:,} events in {len(result.files)} files to {out_dir} "
        f"in {result.seconds:.1f}s ({rate:,.0f} events/s)"
    )


COMMANDS = [generate]
