"""`clickstream demo` and `clickstream stream`: the pipeline on the local stack."""

from __future__ import annotations

import click

from services.pipeline.run import Pipeline
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
DURATION = click.option("--duration", type=click.FloatRange(min=1), default=None,
                        help="Stop by itself after this many seconds (default: until Ctrl-C).")


@click.command()
@RATE
@DURATION
@SCENARIO
def demo(rate: float, duration: float | None, scenarios: tuple[str, ...]) -> None:
    """The whole pipeline with the live dashboard: Kafka + Cassandra, the producer, the
    Spark streaming job and the dashboard, printing its URL. Ctrl-C, SIGTERM or SIGHUP stop
    everything this run started, the producer first (exit 128 + the signal number); if
    this process is killed outright, each child and server it started stops on its own.

    Example:

        clickstream demo --rate 1000
        clickstream demo --scenario flash-sale@+10m+30m
    """
    Pipeline(get_settings(), dashboard=True, rate=rate, echo=click.echo,
             scenarios=scenarios).run(duration)


@click.command()
@RATE
@DURATION
@SCENARIO
def stream(rate: float, duration: float | None, scenarios: tuple[str, ...]) -> None:
    """Kafka + Cassandra, the producer and the Spark streaming job, without the dashboard.
    Stops like `demo`.

    Example:

        clickstream stream --rate 2000 --duration 600
    """
    Pipeline(get_settings(), dashboard=False, rate=rate, echo=click.echo,
             scenarios=scenarios).run(duration)


COMMANDS = [demo, stream]
