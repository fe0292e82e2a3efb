"""What every local server has in common: its folders, pid file, ports, start and stop.

A server subclass says how to prepare its config, the command line, and how to check
readiness over its own protocol. `start()` is a no-op when it already runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from services.stack.process import Pidfile, spawn, terminate, wait_gone
from services.stack.readiness import tail, wait_until
from shared.clients import ports
from shared.errors import ClickstreamError
from shared.settings import Settings, env_var

log = logging.getLogger(__name__)


@dataclass
class Status:
    name: str
    pid: int | None
    ready: bool
    endpoint: str
    detail: str = ""


class Server:
    name: str = "server"
    start_timeout: float = 90.0
    stop_timeout: float = 30.0

    def __init__(self, settings: Settings, java: str = "java"):
        self.settings = settings
        self.java = java

    # ---- folders
    @property
    def home(self) -> Path:
        return self.settings.data_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.settings.data_dir / "logs" / f"{self.name}.log"

    @property
    def own_log(self) -> Path | None:
        """The log the server writes itself, besides its captured output (`log_file`)."""
        return None

    @property
    def pidfile(self) -> Pidfile:
        return Pidfile(self.settings.data_dir / "run" / f"{self.name}.pid")

    @property
    def jars(self) -> Path:
        return self.settings.jars_dir / self.name

    #: the settings (`Settings` field names) of the ports this server binds
    port_settings: tuple[str, ...] = ()

    def ports(self) -> list[tuple[int, str]]:
        """(port, environment variable) of each port this server binds."""
        return [(getattr(self.settings, name), env_var(name)) for name in self.port_settings]

    # ---- to be provided by each server
    def prepare(self) -> None:
        """Write configs, format storage; idempotent."""

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError

    def check(self) -> None:
        """Raise unless the server answers its own protocol."""
        raise NotImplementedError

    @property
    def endpoint(self) -> str:
        raise NotImplementedError

    # ---- shared behaviour
    def require_jars(self) -> None:
        if not any(self.jars.glob("*.jar")):
            raise ClickstreamError(f"{self.name}: no jars in {self.jars}: run `make setup`")

    def running(self) -> int | None:
        p = self.pidfile.process()
        return p.pid if p else None

    def launch(self, die_with_parent: bool = False) -> int | None:
        """Spawn the server unless it runs already. Returns the new pid, or None if it was
        already running. Does not wait for readiness. `die_with_parent`: the server gets
        SIGTERM when this process (its calling thread) ends."""
        if self.running():
            log.info("%s already running (pid %s)", self.name, self.pidfile.pid())
            return None
        self.require_jars()
        for port, setting in self.ports():
            ports.require_free(port, setting)
        self.prepare()
        cmd, env = self.command()
        log.info("starting %s: %s", self.name, " ".join(cmd[:3]) + " ...")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as f:
            f.write(f"\n==== {self.name} starting at {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n")
        proc = spawn(cmd, self.log_file, env=env, cwd=self.home, die_with_parent=die_with_parent)
        self.pidfile.write(proc.pid)
        self._proc = proc
        return proc.pid

    def wait_ready(self, timeout: float | None = None) -> None:
        proc = getattr(self, "_proc", None)
        alive = (lambda: proc.poll() is None) if proc is not None else None
        try:
            wait_until(self.check, timeout or self.start_timeout, f"{self.name} at {self.endpoint}",
                       log=self.log_file, alive=alive)
        except ClickstreamError:
            if proc is not None and proc.poll() is not None:
                self.pidfile.remove()
            raise

    def start(self, timeout: float | None = None, die_with_parent: bool = False) -> bool:
        """Start and wait until ready. True if it was started now, False if already up."""
        started = self.launch(die_with_parent) is not None
        self.wait_ready(timeout)
        return started

    def stop(self) -> bool:
        """Stop if running. True if something was stopped."""
        p = self.pidfile.process()
        if p is None:
            return False
        pid = p.pid
        terminate(p, self.name, timeout=self.stop_timeout)
        wait_gone(pid)
        self.pidfile.remove()
        return True

    def status(self) -> Status:
        pid = self.running()
        if pid is None:
            return Status(self.name, None, False, self.endpoint, "not running")
        try:
            self.check()
            return Status(self.name, pid, True, self.endpoint, "ready")
        except Exception as e:  # noqa: BLE001
            return Status(self.name, pid, False, self.endpoint, f"not answering: {e}")

    def last_log_lines(self, n: int = 50) -> str:
        return tail(self.log_file, n)
