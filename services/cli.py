"""`clickstream`: the one command line behind every make target.

Each subcommand lives beside its service (a `COMMANDS` list in `services/<name>/cli.py`);
this module only gathers them (importing a service's module when one of its commands is
asked for, so that `clickstream simulate` does not load Kafka's or Spark's clients first),
sets up logging, turns typed errors into one line, and gives every command the same stop:
Ctrl-C, SIGTERM and SIGHUP take the KeyboardInterrupt path (the command stops what it
started), the exit code is then 128 + the signal number, and a command whose parent dies
is sent SIGTERM (`shared/signals.py`).
"""

from __future__ import annotations

import importlib
import logging
import signal
import sys
from collections.abc import Mapping

import click

from shared import signals
from shared.errors import ClickstreamError

# One line per service that contributes subcommands: its module and the names in its
# `COMMANDS` (a test checks them against the lists), so that a command's module is the only
# one imported: importing all of them took 0.45 s of `clickstream simulate`'s start-up
# (kafka-python and pydantic-settings alone 0.27 s).
COMMAND_MODULES = {
    "services.stack.cli": ("setup", "up", "down", "status", "logs", "schema", "clean",
                           "images", "docker"),
    "services.simulator.cli": ("simulate", "profile"),
    "services.producer.cli": ("produce", "replay-dead-letters"),
    "services.batch_generator.cli": ("generate",),
    "services.processor.cli": ("process",),
    "services.dashboard.cli": ("dashboard",),
    "services.pipeline.cli": ("demo", "stream"),
}


class _LazyCommands(Mapping):
    """The group's commands by name, each imported from its module when first looked up
    (running it, its help, or the group's help, which lists them all)."""

    def __init__(self, modules: dict[str, tuple[str, ...]]):
        self._module = {name: module for module, names in modules.items() for name in names}
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._loaded:
            module = importlib.import_module(self._module[name])  # KeyError: no such command
            for command in module.COMMANDS:
                self._loaded[command.name] = command
        return self._loaded[name]

    def __iter__(self):
        return iter(self._module)

    def __len__(self) -> int:
        return len(self._module)


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


cli.commands = _LazyCommands(COMMAND_MODULES)


def main() -> None:
    signals.install()
    signals.die_with_parent()
    cli(prog_name="clickstream")


if __name__ == "__main__":
    main()
