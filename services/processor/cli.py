"""`clickstream process`: the Spark analytics job, streaming or batch, same aggregates."""

from __future__ import annotations

import datetime as dt
import signal
import time
from pathlib import Path

import click

from shared import signals
from shared.errors import ClickstreamError
from shared.settings import get_settings


def _date(ctx, param, value):
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a YYYY-MM-DD date") from None


@click.command()
@click.option("--mode", type=click.Choice(["stream", "batch"]), required=True,
              help="stream: Kafka -> streaming tables; batch: CSV days -> *_batch tables.")
@click.option("--master", default=None,
              help="Spark master: local[*] (default from CLICKSTREAM_SPARK_MASTER), "
                   "local[2], spark://host:7077 for a standalone cluster.")
@click.option("--shuffle-partitions", type=click.IntRange(1), default=None,
              help="spark.sql.shuffle.partitions (default CLICKSTREAM_SPARK_SHUFFLE_PARTITIONS, "
                   "else the cores of a local master, 4 on a cluster). A streaming query "
                   "keeps the number its checkpoint was started with.")
@click.option("--input", "input_", default=None,
              help="batch: a folder of CSV days, one CSV file or a glob.")
@click.option("--from", "day_from", callback=_date, help="batch: first day (YYYY-MM-DD).")
@click.option("--to", "day_to", callback=_date, help="batch: last day (YYYY-MM-DD).")
@click.option("--trigger", type=float, default=None,
              help="stream: micro-batch interval in seconds (default 5).")
@click.option("--watermark", type=click.IntRange(0), default=None,
              help="stream: seconds an event may be late and still count (default 600).")
@click.option("--checkpoint", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="stream: checkpoint folder (default <data_dir>/checkpoints/processor).")
@click.option("--max-offsets", type=click.IntRange(1), default=None,
              help="stream: Kafka offsets per micro-batch (default 1000000).")
@click.option("--available-now", is_flag=True,
              help="stream: process what is in the topic now, then stop.")
@click.option("--timeout", type=float, default=None, help="stream: stop after this many seconds.")
def process(mode, master, shuffle_partitions, input_, day_from, day_to, trigger, watermark,
            checkpoint, max_offsets, available_now, timeout):
    """Run the Spark job that fills the analytics tables in Cassandra.

    Both modes apply the same aggregate definitions. Streaming resumes from its checkpoint
    after a crash or restart; a re-run batch job rewrites identical rows. Ctrl-C, SIGTERM
    or SIGHUP stop the query and the Spark session (exit 128 + the signal number).

    \b
    Example:
        clickstream process --mode stream --trigger 5
        clickstream process --mode batch --input data/csv --from 2026-03-01
    """
    # pyspark's JVM, if a signal came as it started; once started, it exits with us
    with signals.stopping_new_children(keep=_spark_gateway):
        _process(mode, master, shuffle_partitions, input_, day_from, day_to, trigger,
                 watermark, checkpoint, max_offsets, available_now, timeout)


def _spark_gateway() -> set[int]:
    """The JVM of a SparkSession that started: it exits when this process does (its stdin
    closes), and this process may still use it (tests invoke the CLI in-process)."""
    import sys

    context = sys.modules.get("pyspark.context")
    proc = getattr(getattr(getattr(context, "SparkContext", None), "_gateway", None), "proc", None)
    return {proc.pid} if proc is not None else set()


def _process(mode, master, shuffle_partitions, input_, day_from, day_to, trigger, watermark,
             checkpoint, max_offsets, available_now, timeout):
    settings = get_settings()
    if shuffle_partitions:
        settings = settings.model_copy(update={"spark_shuffle_partitions": shuffle_partitions})
    if mode == "batch":
        from services.processor.batch import run_batch

        if not input_:
            raise ClickstreamError("--mode batch needs --input (a folder, file or glob of CSV "
                                   "days)")
        r = run_batch(settings, input_, day_from, day_to, master=master)
        click.echo(f"batch: {r.input_rows:,} events from {r.files} files in {r.seconds:.1f}s "
                   f"({r.events_per_second:,.0f} events/s); "
                   f"{sum(r.rows_written.values()):,} rows in {len(r.rows_written)} tables")
    else:
        from services.processor.stream import run_stream

        if input_ or day_from or day_to:
            raise ClickstreamError("--input/--from/--to are for --mode batch")
        t0 = time.monotonic()
        router = run_stream(settings, master=master, trigger_seconds=trigger,
                            watermark_seconds=watermark, checkpoint=checkpoint,
                            max_offsets=max_offsets, available_now=available_now,
                            timeout=timeout)
        click.echo(f"stream: stopped after {router.batches} micro-batches, "
                   f"{router.dead_letters} dead letters")
        ended_by_itself = available_now or (timeout and time.monotonic() - t0 >= timeout)
        if not ended_by_itself and signals.received() is None:
            # A stream with no end returns only when interrupted: SIGTERM and SIGHUP are
            # recorded by shared.signals, but the SparkContext replaces the SIGINT handler
            # with its own (cancel jobs, KeyboardInterrupt), which run_stream absorbs.
            signals.record(signal.SIGINT)


COMMANDS = [process]
