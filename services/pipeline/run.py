"""The whole pipeline on the local stack: servers, producer, streaming job, dashboard.

`clickstream demo` runs all of it, `clickstream stream` all but the dashboard. Each part is
the ordinary `clickstream <command>` in a child process with its own log under
`.stack/logs/`, so what the demo runs is exactly what a user can run by hand. Ctrl-C,
SIGTERM and SIGHUP stop the children in a safe order (the producer first, so it flushes
what is in flight) and then the servers this run started; servers that were already
running are left alone. If this process dies without stopping them (SIGKILL, a crash),
every child and server it started is sent SIGTERM by the kernel and stops on its own.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from services.stack.readiness import tail, wait_until
from services.stack.stack import LocalStack
from shared import signals
from shared.errors import ClickstreamError
from shared.events import SCHEMA_VERSION
from shared.settings import Settings, settings_env

DEFAULT_SEED = 7  # the demo data's (`clickstream dashboard --seed-demo`)


@dataclass
class Child:
    name: str
    args: list[str]
    log: Path
    env: dict[str, str]  # settings_env(): the child sees the pipeline's settings exactly
    proc: subprocess.Popen | None = None
    stop_signal: int = signal.SIGTERM

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            banner = f"\n==== {' '.join(self.args)} at {time.strftime('%H:%M:%S')} ====\n"
            out.write(banner.encode())
            out.flush()
            # own session: the terminal's Ctrl-C reaches us only, and we stop children in
            # order; SIGTERM from the kernel if we die without doing so
            self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", *self.args],
                                         env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         preexec_fn=signals.parent_death_hook())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> bool:
        if not self.alive():
            return False
        self.proc.send_signal(self.stop_signal)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        return True


@dataclass
class Pipeline:
    settings: Settings
    dashboard: bool = True
    rate: float = 500.0
    echo: object = print
    #: `--scenario` values (services/simulator/scenarios.py): injected by the producer and
    #: shaded by the dashboard, both given the same absolute window (`absolute`)
    scenarios: tuple[str, ...] = ()
    #: the producer's seed, and the catalogue the dashboard takes each product's category
    #: from (its per-category watch): fixed by default, so that a rerun within the same
    #: hour sends products of the same categories into the same hourly rows
    seed: int = DEFAULT_SEED
    #: the event schema the producer's clients send: "1", "2" or "mix" (`--schema-version`)
    schema_version: str = str(SCHEMA_VERSION)
    children: list[Child] = field(default_factory=list)

    def _child(self, name: str, *args: str, stop_signal=signal.SIGTERM) -> Child:
        c = Child(name, list(args), self.settings.data_dir / "logs" / f"{name}.log",
                  settings_env(self.settings), stop_signal=stop_signal)
        self.children.append(c)
        return c

    def scenario_args(self, now_ms: int) -> list[str]:
        return [arg for s in self.scenarios for arg in ("--scenario", absolute(s, now_ms))]

    def producer_args(self, now_ms: int) -> list[str]:
        return ["produce", "--rate", f"{self.rate:g}", "--seed", str(self.seed),
                "--schema-version", self.schema_version, *self.scenario_args(now_ms)]

    def dashboard_args(self, now_ms: int) -> list[str]:
        return ["dashboard", "--seed", str(self.seed), *self.scenario_args(now_ms)]

    def run(self, duration: float | None = None) -> None:
        stack = LocalStack(self.settings, echo=self.echo)  # the default: Kafka and Cassandra
        before = {s.name for s in stack.servers() if s.running()}
        t0 = time.monotonic()
        started_servers: list[str] = []
        try:
            stack.up(die_with_parent=True)
            started_servers = [s.name for s in stack.servers() if s.name not in before]
            self._child("processor", "process", "--mode", "stream").start()
            # SIGINT: the producer's own Ctrl-C path, which flushes what is in flight
            now_ms = int(time.time() * 1000)
            self._child("producer", *self.producer_args(now_ms),
                        stop_signal=signal.SIGINT).start()
            if self.dashboard:
                self._child("dashboard", *self.dashboard_args(now_ms)).start()
                url = f"http://{self.settings.dashboard_host}:{self.settings.dashboard_port}"
                wait_until(lambda: urllib.request.urlopen(f"{url}/liveness", timeout=2),
                           60, f"dashboard at {url}", log=self.children[-1].log,
                           alive=self.children[-1].alive)
                self.echo(f"dashboard: {url}  ({time.monotonic() - t0:.0f}s after start)")
            self.echo("logs: " + ", ".join(str(c.log) for c in self.children))
            self.echo("Ctrl-C stops everything this run started")
            self._watch(duration)
        except KeyboardInterrupt:
            how = signals.name(signals.received()) if signals.received() else "Ctrl-C"
            self.echo(f"\n{how}: stopping what this run started")
            raise
        finally:
            self._shutdown(stack, started_servers)

    def _watch(self, duration: float | None) -> None:
        end = None if duration is None else time.monotonic() + duration
        last_total, last_t = None, time.monotonic()
        while end is None or time.monotonic() < end:
            time.sleep(5)
            signals.check()  # a signal whose KeyboardInterrupt the Kafka client swallowed
            for c in self.children:
                if not c.alive():
                    raise ClickstreamError(
                        f"{c.name} exited with {c.proc.returncode}; last lines of {c.log}:\n"
                        + tail(c.log, 20))
            total = events_in_topic(self.settings)
            now = time.monotonic()
            if total is not None and last_total is not None:
                rate = (total - last_total) / (now - last_t)
                self.echo(f"{total:,} events in {self.settings.kafka_topic} ({rate:,.0f}/s)")
            last_total, last_t = total, now

    def _shutdown(self, stack: LocalStack, started_servers: list[str]) -> None:
        """The producer first (it flushes into Kafka), the other children, then the servers
        this run started. Each stop is bounded (SIGKILL after its timeout); a second signal
        meanwhile only says that the stop is under way."""
        producer_first = sorted(self.children, key=lambda c: c.name != "producer")
        stopped = [c.name for c in producer_first if c.stop()]
        for s in reversed(stack.servers()):
            if s.name in started_servers and s.stop():
                stopped.append(s.name)
        if stopped:
            self.echo("stopped " + ", ".join(stopped))


def absolute(scenario: str, now_ms: int) -> str:
    """A `--scenario` value with its +OFFSET resolved from `now_ms`: the same window for
    every child, whenever each starts."""
    import datetime as dt

    from services.simulator.scenario_option import parse_scenario

    w = parse_scenario(scenario).window(now_ms)
    start = dt.datetime.fromtimestamp(w.start_ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{w.name}@{start}+{(w.end_ms - w.start_ms) // 1000}s"


def events_in_topic(settings: Settings) -> int | None:
    """Sum of the topic's end offsets (events ever produced), or None if unreachable."""
    from kafka import KafkaConsumer, TopicPartition

    try:
        consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers,
                                 enable_auto_commit=False, request_timeout_ms=5000)
    except Exception:  # noqa: BLE001 - progress is best effort; the children report errors
        return None
    try:
        parts = consumer.partitions_for_topic(settings.kafka_topic) or set()
        tps = [TopicPartition(settings.kafka_topic, p) for p in parts]
        return sum(consumer.end_offsets(tps).values()) if tps else 0
    finally:
        consumer.close()
