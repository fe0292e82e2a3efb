"""A Docker engine for the images, the testcontainers backend and compose.

    with docker_engine(settings) as docker_host:   # "unix:///…/.stack/docker/docker.sock"
        ...

`DOCKER_HOST` set: that engine is used as it is (never started, never stopped). Unset:
a private `dockerd` of this checkout runs on its own socket under `<data_dir>/docker/`,
started here when it does not run yet (installing Debian's `docker.io` first if root may)
and stopped when the last `with` block using it ends (several commands of one checkout
may share it: a test run and `clickstream images`, say). The daemon never touches
iptables or IP forwarding (`--iptables=false --ip-forward=false ...`), and has no default
bridge (`--bridge=none`): several such daemons on one machine would share `docker0`; the
tests' own networks are user-defined bridges, whose subnets each daemon picks free.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil

from services.stack.readiness import tail, wait_until
from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)

HOW_TO_GET_ONE = ("install Docker (`apt-get install -y docker.io`, as root) or point "
                  "DOCKER_HOST at a running engine")


def engine_dir(settings: Settings) -> Path:
    return settings.data_dir / "docker"


def private_host(settings: Settings) -> str:
    return f"unix://{engine_dir(settings) / 'docker.sock'}"


def answers(docker_host: str, timeout: float = 3) -> bool:
    """True when the engine at `docker_host` answers a ping."""
    import docker

    try:
        client = docker.DockerClient(base_url=docker_host, timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - any failure means "no engine there"
        return False


def available(settings: Settings) -> str | None:
    """Why no engine can be had here (one line), or None when one can."""
    if os.environ.get("DOCKER_HOST"):
        if answers(os.environ["DOCKER_HOST"]):
            return None
        return f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer"
    if shutil.which("dockerd") or (os.geteuid() == 0 and shutil.which("apt-get")):
        return None
    return f"no Docker engine and not root: {HOW_TO_GET_ONE}"


def ensure_packages(*packages: str) -> None:
    """apt-get install what is missing (root only); one line naming them otherwise."""
    missing = [p for p in packages if not _dpkg_installed(p)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ClickstreamError(f"{', '.join(missing)} missing and not root: "
                               f"`sudo apt-get install -y {' '.join(missing)}`")
    log.warning("installing %s (apt-get)", " ".join(missing))
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", *missing]):
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode != 0:
            raise ClickstreamError(f"`{' '.join(cmd)}` failed:\n{r.stderr.strip()[-1500:]}")


def _dpkg_installed(package: str) -> bool:
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package],
                       capture_output=True, text=True)
    return r.returncode == 0 and "install ok installed" in r.stdout


def _dockerd_pid(settings: Settings) -> int | None:
    """The pid of this checkout's dockerd, if its pid file names a live dockerd."""
    try:
        pid = int((engine_dir(settings) / "dockerd.pid").read_text().strip())
        p = psutil.Process(pid)
        if p.status() != psutil.STATUS_ZOMBIE and p.name() == "dockerd":
            return pid
    except (FileNotFoundError, ValueError, psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return None


def start_private(settings: Settings, timeout: float = 60) -> int:
    """Start this checkout's dockerd; return its pid. Raises with its last log lines."""
    ensure_packages("docker.io")
    d = engine_dir(settings)
    d.mkdir(parents=True, exist_ok=True)
    (d / "docker.sock").unlink(missing_ok=True)
    logfile = d / "dockerd.log"
    cmd = [
        "dockerd", "--storage-driver=overlay2",
        # never touch the host's firewall or forwarding (no net.ipv4.ip_forward=1)
        "--iptables=false", "--ip6tables=false", "--ip-forward=false", "--ip-masq=false",
        "--userland-proxy=true", "--bridge=none",
        f"--data-root={d / 'data'}", f"--exec-root={d / 'exec'}",
        f"--pidfile={d / 'dockerd.pid'}", "-H", private_host(settings),
    ]
    with open(logfile, "a") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # Ctrl-C reaches us, not the daemon
    wait_until(lambda: answers(private_host(settings)) or _raise("no answer yet"), timeout,
               f"dockerd at {private_host(settings)}", log=logfile,
               alive=lambda: proc.poll() is None)
    log.info("started dockerd (pid %s) on %s", proc.pid, private_host(settings))
    return proc.pid


def stop_private(settings: Settings, pid: int, timeout: float = 30) -> None:
    """Stop the dockerd we started, and its containerd (they go with it)."""
    try:
        p = psutil.Process(pid)
        p.send_signal(signal.SIGTERM)
        p.wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        log.warning("dockerd did not stop in %ss; killing it\n%s", timeout,
                    tail(engine_dir(settings) / "dockerd.log"))
        p.kill()
        p.wait(10)
    unmount_leftovers(engine_dir(settings))


def unmount_leftovers(folder: Path) -> list[str]:
    """Unmount what a stopped dockerd left mounted under `folder` (it keeps the
    `exec/netns/default` namespace mount), deepest first, so the folder can be removed."""
    prefix = str(folder.resolve()) + "/"
    with open("/proc/self/mounts") as f:
        points = [line.split()[1] for line in f]
    points = [p.replace("\\040", " ") for p in points if p.startswith(prefix)]
    for point in sorted(points, key=len, reverse=True):
        r = subprocess.run(["umount", point], capture_output=True, text=True)
        if r.returncode != 0:
            log.warning("could not unmount %s: %s", point, r.stderr.strip())
    return points


def _raise(message: str):
    raise RuntimeError(message)


@contextlib.contextmanager
def _lock(settings: Settings) -> Iterator[None]:
    import fcntl

    engine_dir(settings).mkdir(parents=True, exist_ok=True)
    with open(engine_dir(settings) / "lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def _live_users(users: Path) -> list[Path]:
    """Lease files (`<pid>-<id>`) of processes still alive; stale ones are removed."""
    live = []
    for lease in users.iterdir():
        try:
            alive = psutil.pid_exists(int(lease.name.split("-")[0]))
        except ValueError:
            alive = False
        if alive:
            live.append(lease)
        else:
            lease.unlink(missing_ok=True)
    return live


@contextlib.contextmanager
def docker_engine(settings: Settings) -> Iterator[str]:
    """Yield a DOCKER_HOST that answers: the user's, or this checkout's private daemon.
    Every user of the private daemon holds a lease under `<data_dir>/docker/users/`; the
    first starts the daemon, the last one out stops it (a crashed user's lease is ignored)."""
    if os.environ.get("DOCKER_HOST"):
        if not answers(os.environ["DOCKER_HOST"]):
            raise ClickstreamError(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer: "
                                   "start that engine or unset DOCKER_HOST")
        yield os.environ["DOCKER_HOST"]
        return
    host = private_host(settings)
    users = engine_dir(settings) / "users"
    lease = users / f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with _lock(settings):
        if not (_dockerd_pid(settings) and answers(host)):
            reason = available(settings)
            if reason:
                raise ClickstreamError(reason)
            start_private(settings)
        users.mkdir(exist_ok=True)
        lease.touch()
    t0 = time.monotonic()
    try:
        yield host
    finally:
        with _lock(settings):
            lease.unlink(missing_ok=True)
            pid = _dockerd_pid(settings)
            if pid and not _live_users(users):
                stop_private(settings, pid)
                log.info("stopped dockerd (pid %s) after %.0fs", pid, time.monotonic() - t0)
