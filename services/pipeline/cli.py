"""`clickstream demo` and `clickstream stream`: the pipeline on the local stack."""

from __future__ import annotations

import click

from services.pipeline.run import DEFAULT_SEED, Pipeline
from services.simulator.options import schema_version_option
from services.simulator.scenario_option import GRAMMAR, ScenarioType
from shared.settings import get_settings

RATE = click.option("--rate", type=click.FloatRange(min=1), default=500.0, show_default=True,
                    help="Simulated events per second sent to Kafka.")


def _scenarios(ctx, param, values: tuple[str, ...]) -> tuple[str, ...]:
    """Checked here, so that a typo fails now and not in the producer's log."""
    for v in values:
        ScenarioType().convert(v, param, ctx)
    return values


SCENARIO = click.option("--scenario", "scenarios", multiple=True, metavar=GRAMMAR,
                        callback=_scenarios,
                        help="Inject a scenario into the producer's traffic (repeatable), "
                             "e.g. flash-sale@+10m+30m; see `clickstream simulate --help`.")
SEED = click.option("--seed", type=int, default=DEFAULT_SEED, show_default=True,
                    help="The producer's seed; the dashboard takes each product's category "
                         "from this seed's catalogue (its per-category watch).")
DURATION = click.option("--duration", type=click.FloatRange(min=1), default=None,
                        help="Stop by itself after this many seconds (default: until Ctrl-C).")


@click.command()
@RATE
@DURATION
@SCENARIO
@SEED
@schema_version_option
def demo(rate: float, duration: float | None, scenarios: tuple[str, ...], seed: int,
         schema_version: str) -> None:
    """The whole pipeline with the live dashboard: Kafka + Cassandra, the producer, the
    Spark streaming job and the dashboard, printing its URL. Ctrl-C, SIGTERM or SIGHUP stop
    everything this run started, the producer first (exit 128 + the signal number); if
    this process is killed outright, each child and server it started stops on its own.

    Example:

        clickstream demo --rate 1000
        clickstream demo --scenario flash-sale@+10m+30m
        clickstream demo --schema-version mix --seed 11
    """
    Pipeline(get_settings(), dashboard=True, rate=rate, echo=click.echo,
             scenarios=scenarios, seed=seed, schema_version=schema_version).run(duration)


@click.command()
@RATE
@DURATION
@SCENARIO
@SEED
@schema_version_option
def stream(rate: float, duration: float | None, scenarios: tuple[str, ...], seed: int,
           schema_version: str) -> None:
    """Kafka + Cassandra, the producer and the Spark streaming job, without the dashboard.
    Stops like `demo`.

    Example:

        clickstream stream --rate 2000 --duration 600
        clickstream stream --schema-version 2
    """
    Pipeline(get_settings(), dashboard=False, rate=rate, echo=click.echo,
             scenarios=scenarios, seed=seed, schema_version=schema_version).run(duration)


COMMANDS = [demo, stream]
