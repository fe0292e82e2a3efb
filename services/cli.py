"""`clickstream`: the one command line behind every make target.

Each subcommand lives beside its service (a `COMMANDS` list in `services/<name>/cli.py`);
this module only gathers them, sets up logging, turns typed errors into one line, and
gives every command the same stop: Ctrl-C, SIGTERM and SIGHUP take the KeyboardInterrupt
path (the command stops what it started), the exit code is then 128 + the signal number,
and a command whose parent dies is sent SIGTERM (`shared/signals.py`).
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys

import click

from shared import signals
from shared.errors import ClickstreamError

# One line per service that contributes subcommands.
COMMAND_MODULES = (
    "services.stack.cli",
    "services.simulator.cli",
    "services.producer.cli",
    "services.batch_generator.cli",
    "services.processor.cli",
    "services.dashboard.cli",
    "services.pipeline.cli",
)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        signals.reset()
        result = None
        try:
            result = super().invoke(ctx)
        except ClickstreamError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)
        except KeyboardInterrupt as e:  # the command's finally blocks stopped what it started
            if signals.received() is None:
                signals.record(getattr(e, "signum", signal.SIGINT))
        # interrupted, whether or not the command let the KeyboardInterrupt through
        if (code := signals.exit_code()) is not None:
            click.echo(f"interrupted by {signals.name(signals.received())}", err=True)
            sys.exit(code)
        return result


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Clickstream: simulate shoppers, stream through Kafka, aggregate with Spark,
    store in Cassandra, watch on a live dashboard.

    Example:

        clickstream up && clickstream status
    """
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


for _module in COMMAND_MODULES:
    for _command in importlib.import_module(_module).COMMANDS:
        cli.add_command(_command)


def main() -> None:
    signals.install()
    signals.die_with_parent()
    cli(prog_name="clickstream")


if __name__ == "__main__":
    main()
