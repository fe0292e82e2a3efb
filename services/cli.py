"""`clickstream`: the one command line behind every make target.

Each subcommand lives beside its service (a `COMMANDS` list in `services/<name>/cli.py`);
this module only gathers them, sets up logging and turns typed errors into one line.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from services.errors import ClickstreamError

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
        try:
            return super().invoke(ctx)
        except ClickstreamError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(1)


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
    cli(prog_name="clickstream")


if __name__ == "__main__":
    main()
