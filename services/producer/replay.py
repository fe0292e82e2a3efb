"""`clickstream replay-dead-letters`: dead letters back into the topic, after a fix.

    clickstream replay-dead-letters --reason 'unknown schema' --since 2026-12-03 --dry-run
    clickstream replay-dead-letters --reason 'unknown schema' --since 2026-12-03

1. Read the `dead_letter` rows received in [since, until) -- one parameterised slice
   query per day partition, no scan -- and keep those whose reason contains `--reason`.
2. Leave out the ones `dead_letter_replays` lists: each dead letter is sent back once.
3. Send their payloads, byte for byte, to the settings' topic with the producer's sink
   (idempotent, acks=all), keyed by the payload's session_id where it has one, as the
   producer keys events (so a session's events share a partition).
4. Once every record is acknowledged, list them in `dead_letter_replays` (replayed_at,
   topic). If any record fails, none is listed and the command fails: run it again;
   the records that had arrived are then sent twice, and the job drops the second copy
   (below).

What the streaming job does with them: a replayed event counts exactly once. It is a new
Kafka record of the same event, and the job deduplicates by event_id within its watermark
(`CLICKSTREAM_PROCESSOR_WATERMARK_SECONDS`, 600 s by default). The limit: the event time
of a replayed event must still be within the watermark of the job's latest events. An
older one is dropped as late and counted in `ingest_quality.late_dropped`, never counted in
the tables (replay into a job that has not yet passed it, or use the batch job). A payload
that still breaks the rules is a dead letter again, under a new offset.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from shared import tables as tb
from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

KEY = ("day", "received_at", "source", "kafka_partition", "kafka_offset")


@dataclass
class ReplayResult:
    matched: int = 0  # dead letters in the window whose reason matches
    already: int = 0  # of those, replayed before (skipped)
    sent: int = 0  # acknowledged by Kafka and marked
    by_reason: dict[str, int] = field(default_factory=dict)  # what was (or would be) sent


def find(session, reason: str, since: dt.datetime, until: dt.datetime):
    """(dead letters to send, how many of the matching ones were replayed before): the rows
    as (key tuple, reason, payload)."""
    cols = ", ".join(KEY)
    where = "WHERE day = ? AND received_at >= ? AND received_at < ?"
    letters = session.prepare(f"SELECT {cols}, reason, payload FROM {tb.DEAD_LETTER.name} "
                              f"{where}")
    marks = session.prepare(f"SELECT {cols} FROM {tb.DEAD_LETTER_REPLAYS.name} {where}")
    todo, already = [], 0
    for day in tb.days_between(since, until):
        done = {tuple(r) for r in session.execute(marks, (day, since, until))}
        for r in session.execute(letters, (day, since, until)):
            if reason not in (r.reason or ""):
                continue
            key = tuple(r[:len(KEY)])
            if key in done:
                already += 1
            else:
                todo.append((key, r.reason, r.payload))
    return todo, already


def session_key(payload: str) -> bytes | None:
    """The producer's record key: the payload's session_id, when it is a JSON object with
    one."""
    import orjson

    try:
        sid = orjson.loads(payload).get("session_id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return sid.encode() if isinstance(sid, str) else None


def run_replay(settings: Settings, reason: str, since: dt.datetime,
               until: dt.datetime | None = None, dry_run: bool = False,
               sink=None) -> ReplayResult:
    """Replay the matching dead letters (see the module doc); with `dry_run`, only count
    them. `sink`: a KafkaSink (default: one to the settings' topic)."""
    from cassandra.concurrent import execute_concurrent_with_args

    from shared.clients.cassandra import connect

    until = until or dt.datetime.now(dt.UTC)
    if until <= since:
        raise ClickstreamError(f"--until ({until:%Y-%m-%dT%H:%M:%SZ}) must be after --since "
                               f"({since:%Y-%m-%dT%H:%M:%SZ})")
    try:
        cluster, session = connect(settings, settings.cassandra_keyspace)
    except Exception as e:  # noqa: BLE001 - the driver's NoHostAvailable and kin
        raise ClickstreamError(
            f"cannot reach Cassandra at {','.join(settings.cassandra_contact_points)}:"
            f"{settings.cassandra_port} ({type(e).__name__}); is it running? "
            "('clickstream status')") from None
    try:
        todo, already = find(session, reason, since, until)
        result = ReplayResult(matched=len(todo) + already, already=already)
        for _, r, _ in todo:
            result.by_reason[r] = result.by_reason.get(r, 0) + 1
        if dry_run or not todo:
            return result
        if sink is None:
            from services.producer.kafka_sink import KafkaSink

            sink = KafkaSink(settings)
        try:
            sink.send_partitioned((session_key(p), p.encode(), None) for _, _, p in todo)
            sink.flush(timeout=35.0)  # covers delivery_timeout_ms: each record ends one way
        finally:
            sink.close(timeout=5.0)
        c = sink.counts
        if c.acked != len(todo):
            raise ClickstreamError(
                f"{len(todo) - c.acked} of {len(todo)} dead letters were not acknowledged by "
                f"Kafka at {sink.bootstrap} (last error: {c.last_error}); none is marked as "
                "replayed: run the command again (the copies that did arrive are dropped by "
                "the job's deduplication)")
        now = dt.datetime.now(dt.UTC)
        mark = session.prepare(
            f"INSERT INTO {tb.DEAD_LETTER_REPLAYS.name} ({', '.join(KEY)}, replayed_at, "
            f"replayed_to) VALUES ({', '.join('?' for _ in KEY)}, ?, ?)")
        execute_concurrent_with_args(session, mark, [(*key, now, sink.topic)
                                                     for key, _, _ in todo],
                                     raise_on_first_error=True)
        result.sent = len(todo)
        return result
    finally:
        cluster.shutdown()
