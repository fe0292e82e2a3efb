"""Subcommands for the local stack: setup, up, down, status, logs, schema, clean."""

from __future__ import annotations

import shutil
import signal
import sys

import click

from services.stack import engine, jars
from services.stack.images import IMAGE_NAMES
from services.stack.java import check_java
from services.stack.stack import COMPONENTS, DEFAULT, SERVER_NAMES, LocalStack, parse_only
from shared.errors import ClickstreamError
from shared.settings import get_settings

ONLY_HELP = f"Comma-separated subset of {','.join(COMPONENTS)} (default: {','.join(DEFAULT)})."


@click.command()
@click.option("--only", help=f"Comma-separated subset of {','.join(COMPONENTS)} jars "
                             "(default: all).")
def setup(only: str | None) -> None:
    """Check Java and fetch the server jars from Maven Central (once; cached).

    Example:

        clickstream setup --only spark
    """
    s = get_settings()
    java = check_java(s)
    click.echo(f"java: {java} ok")
    for server in parse_only(only, default=COMPONENTS):
        if not jars.resolve(s, server, echo=click.echo):
            click.echo(f"{server} jars: cached in {s.jars_dir / server}")


@click.command()
@click.option("--only", help=ONLY_HELP)
@click.option("--timeout", type=float, default=None, help="Seconds to wait for each server.")
def up(only: str | None, timeout: float | None) -> None:
    """Start the local servers (bound to 127.0.0.1) and create the topic and tables.

    Already-running servers are left alone, so `up` twice is a no-op. Ctrl-C, SIGTERM
    or SIGHUP stop what this call started (exit 128 + the signal number).

    Example:

        clickstream up --only kafka,cassandra,spark
    """
    stack = LocalStack(get_settings(), parse_only(only), echo=click.echo)
    stack.up(timeout=timeout)
    click.echo("stack is up: `clickstream status` shows it, `clickstream down` stops it")


@click.command()
def down() -> None:
    """Stop every local server (SIGTERM, then SIGKILL after 30 s). Data is kept.

    Example:

        clickstream down
    """
    stopped = LocalStack(get_settings(), echo=click.echo).down()
    if not stopped:
        click.echo("nothing was running")


@click.command()
@click.option("--only", help=ONLY_HELP + " Spark is included when it runs.")
def status(only: str | None) -> None:
    """Show each server and whether it answers its own protocol.

    Exits 0 only when every requested server is ready.

    Example:

        clickstream status --only kafka
    """
    s = get_settings()
    names = parse_only(only)
    if not only and LocalStack(s).servers(["spark"])[0].running():
        names.append("spark")
    rows = LocalStack(s).status(names)
    click.echo(f"{'server':<14}{'pid':>8}  {'endpoint':<30}state")
    for r in rows:
        mark = click.style("ready", fg="green") if r.ready else click.style(r.detail, fg="red")
        click.echo(f"{r.name:<14}{r.pid or '-':>8}  {r.endpoint:<30}{mark}")
    if not all(r.ready for r in rows):
        sys.exit(1)


@click.command()
@click.argument("name", type=click.Choice(SERVER_NAMES))
@click.option("-n", "--lines", default=50, show_default=True, help="How many last lines.")
def logs(name: str, lines: int) -> None:
    """Print the last lines of a server's log.

    Example:

        clickstream logs cassandra -n 100
    """
    s = get_settings()
    servers = {x.name: x for x in LocalStack(s).servers(COMPONENTS)}
    server = servers[name]
    click.echo(f"==> {server.log_file} <==")
    click.echo(server.last_log_lines(lines) or "(empty)")
    extra = server.own_log
    if extra and extra.exists():
        from services.stack.readiness import tail

        click.echo(f"==> {extra} <==")
        click.echo(tail(extra, lines))


@click.command()
def schema() -> None:
    """Create the Kafka topic and the Cassandra keyspace and tables (idempotent).

    Works against the local stack or any cluster the settings point at.

    Example:

        CLICKSTREAM_CASSANDRA_HOSTS=cass1 clickstream schema
    """
    LocalStack(get_settings(), echo=click.echo).schema()


@click.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clean(yes: bool) -> None:
    """Stop the stack and delete its data, logs and checkpoints (jars and the private
    Docker engine's images are kept).

    Example:

        clickstream clean --yes
    """
    s = get_settings()
    keep = {s.jars_dir, engine.engine_dir(s)}
    targets = [p for p in sorted(s.data_dir.glob("*")) if p not in keep]
    if not targets:
        click.echo(f"nothing to remove in {s.data_dir}")
        return
    click.echo("this removes:\n" + "\n".join(f"  {p}" for p in targets))
    if not yes and not click.confirm("go on?", default=False):
        raise ClickstreamError("cancelled: nothing removed")
    LocalStack(s, echo=click.echo).down()
    for p in targets:
        shutil.rmtree(p) if p.is_dir() else p.unlink()
    click.echo("removed")


@click.command("images")
@click.option("--only", help=f"Comma-separated subset of {','.join(IMAGE_NAMES)} (default: all).")
def images_command(only: str | None) -> None:
    """Build the images: Kafka, Cassandra, Spark (from the resolved jars) and the app.

    Each is rebuilt only when one of its inputs changed. Without DOCKER_HOST a private
    dockerd of this checkout runs for the build (installed from Debian's docker.io if
    missing; the base image is made with debootstrap) and is stopped afterwards.

    Example:

        clickstream images --only kafka
    """
    from services.stack import images

    s = get_settings()
    names = [n.strip() for n in only.split(",")] if only else None
    unknown = set(names or []) - {i.name for i in images.images()}
    if unknown:
        raise ClickstreamError(f"unknown image(s) {', '.join(sorted(unknown))}: "
                               f"choose from {', '.join(IMAGE_NAMES)}")
    with engine.docker_engine(s) as docker_host:
        refs = images.build_all(s, docker_host, make_base=docker_host == engine.private_host(s),
                                echo=click.echo, only=names)
    click.echo("images ready: " + ", ".join(refs.values()))


@click.command("docker", context_settings={"ignore_unknown_options": True,
                                           "allow_interspersed_args": False})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def docker_command(command: tuple[str, ...]) -> None:
    """Run COMMAND with DOCKER_HOST set: your engine (DOCKER_HOST), or this checkout's
    private dockerd, started before COMMAND and stopped after it.

    Ctrl-C goes to COMMAND (compose stops its containers), then the engine stops; a
    SIGTERM sent to this command alone is passed on to COMMAND.

    Example:

        clickstream docker docker-compose -f compose/docker-compose.yml --profile demo up
    """
    import os
    import subprocess

    with engine.docker_engine(get_settings()) as docker_host:
        proc = subprocess.Popen(list(command), env={**os.environ, "DOCKER_HOST": docker_host})
        while True:
            try:
                rc = proc.wait()
                break
            except KeyboardInterrupt as e:
                # Ctrl-C and a closing terminal reach COMMAND too (same process group);
                # a `kill` reaches this process only: pass it on. Then let COMMAND finish
                # its own shutdown.
                if getattr(e, "signum", None) == signal.SIGTERM and proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                continue
    sys.exit(128 - rc if rc < 0 else rc)  # killed by a signal: what a shell reports


COMMANDS = [setup, up, down, status, logs, schema, clean, images_command, docker_command]
