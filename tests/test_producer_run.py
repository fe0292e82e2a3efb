"""The produce loop against a fake sink (the real broker is in integration_tests)."""

from __future__ import annotations

import os
import signal
import time

import pytest
from click.testing import CliRunner

from services.cli import cli
from services.producer import kafka_sink
from services.producer.kafka_sink import Counts
from services.producer.run import batches, density, run_produce
from services.simulator.model import Noise, SimConfig
from shared.errors import ClickstreamError
from shared.events import InvalidEvent, decode
from shared.settings import Settings

START = 1767571200000


class FakeSink:
    """Acknowledges everything except the values listed in `fail`."""

    def __init__(self, fail_after: int | None = None):
        self.counts = Counts()
        self.bootstrap = "fake:9092"
        self.records: list[tuple[bytes, bytes]] = []
        self.fail_after = fail_after
        self.closed = False

    def send_many(self, pairs):
        for key, value in pairs:
            self.counts.sent += 1
            if self.fail_after is not None and self.counts.sent > self.fail_after:
                self.counts.failed += 1
                self.counts.last_error = "KafkaTimeoutError: boom"
            else:
                self.records.append((key, value))
                self.counts.acked += 1

    def send_chunk(self, chunk):
        self.send_many(chunk.pairs())

    def flush(self, timeout=None):
        pass

    def close(self, timeout=None):
        self.closed = True


def settings():
    return Settings(_env_file=None)


def test_producer_sends_count_events_keyed_by_session():
    sink = FakeSink()
    cfg = SimConfig(seed=1, events_per_second=density(0, 1))
    result = run_produce(settings(), cfg, START, rate=0, count=5000, feeder=False, sink=sink,
                         report=lambda line: None)
    assert result.sent == result.acked == 5000 and result.failed == 0
    assert sink.closed
    for key, value in sink.records[:500]:
        assert decode(value)["session_id"].encode() == key


def test_producer_feeder_process_gives_the_same_events():
    cfg = SimConfig(seed=2, events_per_second=50)
    a, b = FakeSink(), FakeSink()
    run_produce(settings(), cfg, START, rate=0, count=3000, feeder=True, sink=a,
                report=lambda line: None)
    run_produce(settings(), cfg, START, rate=0, count=3000, feeder=False, sink=b,
                report=lambda line: None)
    assert a.records == b.records


def test_producer_paces_to_the_rate_and_reports():
    lines = []
    cfg = SimConfig(seed=3, events_per_second=density(4000, 20))
    t0 = time.monotonic()
    result = run_produce(settings(), cfg, START + 19 * 3_600_000, rate=4000, speed=20,
                         duration=1.5, feeder=False, sink=FakeSink(), report=lines.append,
                         report_every=0.5)
    elapsed = time.monotonic() - t0
    assert result.stopped_by == "duration" and 1.4 < elapsed < 60  # incl. simulator set-up
    assert 300 < result.acked < 20_000  # paced, not flat out (and a cold start ramps up)
    assert lines[-1].startswith("done") and "acknowledged" in lines[-1]
    assert len(lines) >= 2


def test_producer_failures_are_never_silent():
    with pytest.raises(ClickstreamError, match="not acknowledged"):
        run_produce(settings(), SimConfig(seed=1), START, rate=0, count=10_000,
                    feeder=False, sink=FakeSink(fail_after=2500), report=lambda line: None)


class SigtermSink(FakeSink):
    def send_many(self, pairs):
        super().send_many(pairs)
        if self.counts.sent >= 500 and not getattr(self, "signalled", False):
            self.signalled = True
            os.kill(os.getpid(), signal.SIGTERM)


def test_producer_stops_on_sigterm_and_flushes():
    sink = SigtermSink()
    result = run_produce(settings(), SimConfig(seed=1, events_per_second=density(2000, 20)),
                         START, rate=2000, speed=20, feeder=False, sink=sink,
                         report=lambda line: None)
    assert result.stopped_by == "signal"
    assert sink.closed and result.acked == result.sent > 0


def test_batches_are_deterministic():
    cfg = SimConfig(seed=8)
    a = [p for _, ps in batches(cfg, START, 3000) for p in ps]
    b = [p for _, ps in batches(cfg, START, 3000) for p in ps]
    assert a == b and len(a) == 3000


def test_produce_unreachable_broker_is_one_line_error(monkeypatch):
    monkeypatch.setattr(kafka_sink, "CONNECT_ATTEMPTS", 2)
    monkeypatch.setattr(kafka_sink, "CONNECT_WAIT_S", 0.1)
    monkeypatch.setattr(kafka_sink, "BOOTSTRAP_TIMEOUT_MS", 500)
    monkeypatch.setenv("CLICKSTREAM_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    from shared import settings as settings_mod

    settings_mod.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["produce", "--count", "10", "--no-feeder"])
    finally:
        settings_mod.get_settings.cache_clear()
    assert result.exit_code == 1
    assert "error: cannot reach Kafka at 127.0.0.1:9" in result.output


@pytest.mark.parametrize("args", [["--rate", "-5"], ["--speed", "0"], ["--count", "-1"],
                                  ["--nope"]])
def test_produce_bad_input_is_one_line_error(args):
    result = CliRunner().invoke(cli, ["produce", *args])
    assert result.exit_code == 1
    assert result.output.startswith("error: ") and result.output.count("\n") == 1


def test_sink_explicit_partition_matches_the_default_partitioner():
    from kafka.partitioner.default import DefaultPartitioner

    from services.producer.kafka_sink import default_partition

    class Cluster:
        def topics(self):
            return {"t"}

        def partitions_for_topic(self, topic):
            return {2, 0, 1}

        def available_partitions_for_topic(self, topic):
            return {0, 1, 2}

    ref = DefaultPartitioner()
    for i in range(500):
        key = f"abc{i:x}-{i % 7}".encode()
        assert default_partition(key, [0, 1, 2]) == ref.partition("t", key, key, b"", b"",
                                                                   Cluster())


def test_feeder_that_dies_is_an_error_not_a_hang():
    from services.producer.run import Feeder

    feeder = Feeder(SimConfig(seed=1, events_per_second=10.0), START, None)
    try:
        feeder.process.kill()
        feeder.process.join(5)
        with pytest.raises(ClickstreamError, match="feeder process died"):
            for _ in feeder:
                pass
    finally:
        feeder.stop()


def test_feeder_that_fails_is_an_error_not_a_short_run():
    from services.producer.run import Feeder

    # the encoder refuses the version in the feeder process: its end is an error
    feeder = Feeder(SimConfig(seed=1, events_per_second=10.0), START, 100,
                    schema_version="9")
    try:
        with pytest.raises(ClickstreamError, match="feeder process failed: ValueError"):
            for _ in feeder:
                pass
    finally:
        feeder.stop()


def test_producer_keys_a_malformed_payload_by_its_events_session():
    noise = Noise(malformed_rate=1.0)  # every event is followed by a broken copy
    _, records = next(batches(SimConfig(seed=4, events_per_second=8, noise=noise), START, 400))
    broken = 0
    for (prev_key, _), (key, value) in zip(records, records[1:], strict=False):
        try:
            decode(value)
        except InvalidEvent:
            broken += 1
            assert key == prev_key  # the event it was made from was delivered just before
    assert broken > 150
