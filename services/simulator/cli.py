"""`clickstream simulate` and `clickstream profile`: the behaviour model without Kafka."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from services.simulator.options import make_config, model_options, schema_version_option
from services.simulator.parallel import default_workers
from services.simulator.run import run_profile, run_simulate
from shared.cli import DEFAULT_START, Command, parse_time
from shared.errors import ClickstreamError


@click.command(cls=Command)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--events", "n_events", type=click.IntRange(0), default=1000, show_default=True,
              help="Number of lines to write.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: stdout).")
@click.option("--start", default=DEFAULT_START, show_default=True,
              help="Simulated start time (ISO-8601, UTC).")
@click.option("--events-per-second", type=click.FloatRange(0.001, None), default=20.0,
              show_default=True, help="Mean traffic in simulated time (weekly average).")
@click.option("--workers", type=click.IntRange(1), default=default_workers(),
              show_default="the CPU count",
              help="Processes simulating in parallel; the output is the same bytes. "
                   "1: one process, no pool.")
@schema_version_option
@model_options
def simulate(seed, n_events, out, start, events_per_second, workers, schema_version, model):
    """Write simulated events as JSON lines, in delivery order. No Kafka needed.

    The same seed and options give the same bytes. Malformed-payload noise, when
    enabled, appears as lines that are not valid events.

    \b
    Example:
        clickstream simulate --seed 42 --events 1000 --out events.jsonl
        clickstream simulate --seed 42 --events 50000 --scenario checkout-outage@+1h+30m
        clickstream simulate --seed 42 --events 1000000 --workers 2 > events.jsonl
        clickstream simulate --seed 42 --events 1000 --schema-version mix
    """
    start_ms = parse_time(start)
    config = make_config(seed, events_per_second, model, start_ms)
    if out is None:
        run_simulate(config, start_ms, n_events, sys.stdout.buffer, workers, schema_version)
        return
    try:
        with open(out, "wb") as f:
            run_simulate(config, start_ms, n_events, f, workers, schema_version)
    except OSError as e:
        raise ClickstreamError(f"cannot write {out}: {e.strerror}") from None


@click.command(cls=Command)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--events", "n_events", type=click.IntRange(1000), default=300_000,
              show_default=True, help="Sample size (whole sessions over one simulated week).")
@click.option("--start", default=DEFAULT_START, show_default=True,
              help="Start of the simulated week (ISO-8601, UTC).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@model_options
def profile(seed, n_events, start, as_json, model):
    """Print the model's statistics for a sample and compare them with the calibration
    targets: events per action, add-to-cart per product view, session conversion,
    cart-to-purchase, events per session, returning share, devices, hourly curve,
    views on the top 1% of products, conversion per campaign and A/B variant. With
    --scenario, each scenario's claims measured over the sessions starting in its
    window, with the scenarios and with the same seed without.

    Example:

        clickstream profile --seed 42 --events 300000 --json
        clickstream profile --seed 42 --scenario flash-sale@+1d18h+1h
    """
    start_ms = parse_time(start)
    config = make_config(seed, 1.0, model, start_ms)
    click.echo(run_profile(config, n_events, start_ms, as_json))


COMMANDS = [simulate, profile]
