"""`clickstream produce`: the simulator streamed into Kafka."""

from __future__ import annotations

import secrets
import time

import click

from services.producer.run import DEFAULT_FEEDERS, DEFAULT_SENDERS, density, run_produce
from services.simulator.options import make_config, model_options, schema_version_option
from shared.cli import Command, parse_time
from shared.errors import ClickstreamError
from shared.settings import get_settings


@click.command(cls=Command)
@click.option("--rate", type=float, default=1000.0, show_default=True,
              help="Mean events per wall-clock second; 0 = as fast as possible.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per wall-clock second (60 = an hour per minute).")
@click.option("--duration", type=float, default=None,
              help="Stop after this many seconds (default: run until Ctrl-C).")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--seed", type=int, default=None,
              help="Random seed (default: a random one, printed). With --start, reproducible.")
@click.option("--start", default=None, help="Simulated start time (ISO-8601; default: now).")
@click.option("--report-every", type=click.FloatRange(0.1, None), default=5.0,
              show_default=True, help="Seconds between progress lines.")
@click.option("--feeder/--no-feeder", default=True, show_default=True,
              help="Simulate and encode in a separate process.")
@click.option("--senders", type=click.IntRange(1), default=DEFAULT_SENDERS,
              show_default=True,
              help="Sender processes, each with its own producer and a share of the topic's "
                   "partitions (a session's events keep their order).")
@click.option("--feeders", type=click.IntRange(1), default=None,
              help=f"Feeder processes simulating the events, each every N-th minute (each "
                   f"partition's events stay in the order of one feeder); default "
                   f"{DEFAULT_FEEDERS} with --rate 0, else 1.")
@schema_version_option
@model_options
def produce(rate, speed, duration, count, seed, start, report_every, feeder, senders,
            feeders, schema_version, model):
    """Send simulated events to Kafka (topic and brokers from the settings).

    One long-lived producer keyed by session id, lz4-compressed batches, acks=all with
    idempotence. Prints sent / acknowledged / failed counts with the rate every few
    seconds and at exit; Ctrl-C, SIGTERM or SIGHUP stop it, flushing what is in flight
    (exit 128 + the signal number). Exits 1 if any event was not acknowledged.

    \b
    Example:
        clickstream produce --rate 2000 --speed 60 --duration 120 --seed 7
        clickstream produce --rate 0 --count 1000000 --feeders 2
        clickstream produce --rate 500 --schema-version mix --seed 7
    """
    for name, value in (("--rate", rate), ("--duration", duration), ("--count", count)):
        if value is not None and value < 0:
            raise ClickstreamError(f"{name} must be >= 0, got {value}")
    if speed <= 0:
        raise ClickstreamError(f"--speed must be > 0, got {speed}")
    if seed is None:
        seed = secrets.randbelow(2**31)
    start_ms = parse_time(start) if start else int(time.time() * 1000)
    config = make_config(seed, density(rate, speed), model, start_ms)
    settings = get_settings()
    click.echo(f"producing to {settings.kafka_topic} at {settings.bootstrap_servers} "
               f"(seed {seed}, rate {rate:g}/s, speed {speed:g}x, "
               f"schema version {schema_version})", err=True)
    run_produce(settings, config, start_ms, rate=rate, speed=speed, duration=duration,
                count=count, report_every=report_every, feeder=feeder, senders=senders,
                schema_version=schema_version, feeders=feeders)


@click.command("replay-dead-letters", cls=Command)
@click.option("--reason", required=True,
              help="Replay the dead letters whose reason contains this text, e.g. "
                   "'unknown schema_version'.")
@click.option("--since", required=True,
              help="Received at or after this time (ISO-8601; UTC unless it has an offset).")
@click.option("--until", default=None, help="Received before this time (default: now).")
@click.option("--dry-run", is_flag=True, help="Count what would be sent; send and mark nothing.")
def replay_dead_letters(reason, since, until, dry_run):
    """Send dead letters back to the topic after a fix (a job that reads their version,
    a corrected payload), each once.

    Reads the dead_letter rows received in [--since, --until) whose reason contains
    --reason, sends their payloads unchanged to the topic of the settings, and marks them
    in dead_letter_replays once Kafka has acknowledged them all, so that a second replay
    skips them. The streaming job counts a replayed event once (it deduplicates by event_id
    within its watermark), but only if its event time is still within the watermark
    (CLICKSTREAM_PROCESSOR_WATERMARK_SECONDS, 600 s by default) of the job's latest events:
    an older one is dropped as late and counted in ingest_quality.late_dropped.

    \b
    Example:
        clickstream replay-dead-letters --reason 'unknown schema' --since 2026-12-03 --dry-run
        clickstream replay-dead-letters --reason 'unknown schema' --since 2026-12-03T10:00Z
    """
    import datetime as dt

    from services.producer.replay import run_replay

    def when(text: str) -> dt.datetime:
        return dt.datetime.fromtimestamp(parse_time(text) / 1000, dt.UTC)

    settings = get_settings()
    result = run_replay(settings, reason, when(since), when(until) if until else None,
                        dry_run=dry_run)
    for text, n in sorted(result.by_reason.items()):
        click.echo(f"  {n:>8,}  {text}")
    skipped = f"; {result.already:,} replayed before, skipped" if result.already else ""
    if dry_run:
        click.echo(f"dry run: would replay {result.matched - result.already:,} dead letters "
                   f"into {settings.kafka_topic}{skipped}")
    else:
        click.echo(f"replayed {result.sent:,} dead letters into {settings.kafka_topic}"
                   f"{skipped}")


COMMANDS = [produce, replay_dead_letters]
