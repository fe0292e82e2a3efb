"""The project's own images, one per server, built once and reused until an input changes.

    clickstream images            # the same as `make images`

Each image's build context is rendered under `<data_dir>/images/<name>/`: its Dockerfile
from `docker/<name>/`, the jars of `.stack/jars/<server>` (hard links), and the very
configuration the local stack writes, rendered by the same Python code
(`Kafka.properties()`, `Cassandra.yaml()`, their JVM command lines). The hash of every file
in the context is the image's `clickstream.inputs` label: a build is skipped while the
label matches, as the jar stamp skips Maven.

The Dockerfiles start `FROM debian:bookworm-slim`. A registry pulls it; here, where none is
reachable, it is made with debootstrap from the machine's Debian mirror and `docker import`,
under that same name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.stack.cassandra import LOGBACK, Cassandra
from services.stack.engine import ensure_packages
from services.stack.kafka import LOG4J2, Kafka
from services.stack.stack import COMPONENTS, PORT_SETTINGS
from shared.errors import ClickstreamError
from shared.settings import REPO_ROOT, Settings

log = logging.getLogger(__name__)

DOCKER_DIR = REPO_ROOT / "docker"
SPARK_LOG4J2 = REPO_ROOT / "shared" / "conf" / "spark-log4j2.properties"
BASE_IMAGE = "debian:bookworm-slim"
INPUTS_LABEL = "clickstream.inputs"
# Where things live inside the images (the local stack's layout, rooted elsewhere).
IMAGE_DATA = Path("/var/lib/clickstream")
IMAGE_JARS = Path("/opt/clickstream/jars")


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    render: Callable[[Settings, Path], None]

    @property
    def ref(self) -> str:
        return f"clickstream/{self.name}:{self.tag}"


# ------------------------------------------------------------------------ build contexts
def _link_tree(src: Path, dst: Path) -> None:
    """Copy a folder by hard links (same file system) or plain copies."""
    def link(s, d):
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)
    shutil.copytree(src, dst, copy_function=link, ignore=shutil.ignore_patterns("__pycache__"))


def _common(name: str, ctx: Path) -> None:
    for f in (DOCKER_DIR / name).iterdir():
        shutil.copy2(f, ctx / f.name)
    shutil.copy2(DOCKER_DIR / "probe.sh", ctx / "probe.sh")


def _server_jars(settings: Settings, server: str, ctx: Path) -> None:
    src = settings.jars_dir / server
    if not any(src.glob("*.jar")):
        raise ClickstreamError(f"no jars in {src}: run `make setup`")
    _link_tree(src, ctx / "jars" / server)
    (ctx / "jars" / server / ".stamp").unlink(missing_ok=True)


def _image_settings(settings: Settings, ctx: Path) -> Settings:
    """The local stack's settings, rooted where the image keeps its data, with jars
    looked up in the build context (so the rendered command finds e.g. jamm's file name).
    Inside its container a server listens on the default ports (Settings' defaults), whatever
    this machine's settings say: the publications choose the host's ports."""
    default_ports = {name: Settings.model_fields[name].default for name in PORT_SETTINGS}
    return settings.model_copy(update={"data_dir": IMAGE_DATA, "jars_dir": ctx / "jars",
                                       "kafka_host": "127.0.0.1",
                                       "cassandra_host": "127.0.0.1",
                                       **default_ports,
                                       "cassandra_password": None})


def _args_file(path: Path, args: list[str], ctx: Path) -> None:
    """One argument per line, with the context's jar folder named as the image's."""
    jars = str(ctx / "jars")
    path.write_text("".join(a.replace(jars, str(IMAGE_JARS)) + "\n" for a in args))


#: where a server listens INSIDE its container. Not a default bind for this machine: Docker
#: forwards a published port to the container's own interface, never to its loopback, so
#: 127.0.0.1 there would be unreachable. What reaches the host is the publication, and
#: every one binds the host's 127.0.0.1 (compose/docker-compose.yml,
#: integration_tests/backends.py `_publish_on_loopback`). The local stack keeps 127.0.0.1.
CONTAINER_BIND = "0.0.0.0"


def render_kafka(settings: Settings, ctx: Path) -> None:
    _common("kafka", ctx)
    _server_jars(settings, "kafka", ctx)
    kafka = Kafka(_image_settings(settings, ctx), java="java")
    (ctx / "conf").mkdir()
    (ctx / "conf" / "server.properties").write_text(kafka.properties(bind_host=CONTAINER_BIND))
    (ctx / "conf" / "log4j2.xml").write_text(LOG4J2)
    _args_file(ctx / "format.args", kafka.format_command("CLUSTER_ID"), ctx)
    _args_file(ctx / "command.args", kafka.command()[0], ctx)


def render_cassandra(settings: Settings, ctx: Path) -> None:
    _common("cassandra", ctx)
    _server_jars(settings, "cassandra", ctx)
    node = Cassandra(_image_settings(settings, ctx), java="java")
    (ctx / "conf").mkdir()
    (ctx / "conf" / "cassandra.yaml").write_text(node.yaml(rpc_address=CONTAINER_BIND))
    (ctx / "conf" / "logback.xml").write_text(LOGBACK)
    _args_file(ctx / "command.args", node.java_command(), ctx)


def render_spark(settings: Settings, ctx: Path) -> None:
    import py4j

    from services.stack.spark import spark_home

    _common("spark", ctx)
    _link_tree(spark_home(), ctx / "python" / "pyspark")
    _link_tree(Path(py4j.__file__).resolve().parent, ctx / "python" / "py4j")
    (ctx / "conf").mkdir()
    shutil.copy2(SPARK_LOG4J2, ctx / "conf" / "log4j2.properties")


APP_SOURCES = ("pyproject.toml", "shared", "services", "dashboards")


def _dependencies() -> list[str]:
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _wheels(settings: Settings) -> Path:
    """Wheels of the pinned dependencies, made once per dependency list by the venv's pip
    (from its cache where it can), so the app image installs them without an index."""
    deps = _dependencies()
    key = hashlib.sha256("\n".join(deps).encode()).hexdigest()[:16]
    folder = settings.data_dir / "images" / "_wheels" / key
    if (folder / "requirements.txt").exists():
        return folder
    tmp = folder.with_name(key + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / "requirements.txt").write_text("\n".join(deps) + "\n")
    import sys

    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(tmp),
                        "-r", str(tmp / "requirements.txt")], capture_output=True, text=True)
    if r.returncode != 0:
        raise ClickstreamError("pip could not make the app's wheels:\n"
                               + _last_lines(r.stdout + r.stderr))
    tmp.rename(folder)
    return folder


def render_app(settings: Settings, ctx: Path) -> None:
    _common("app", ctx)
    (ctx / "probe.sh").unlink()
    _link_tree(_wheels(settings), ctx / "wheels")
    _server_jars(settings, "spark", ctx)
    (ctx / "src").mkdir()
    for name in APP_SOURCES:
        src = REPO_ROOT / name
        if src.is_dir():
            _link_tree(src, ctx / "src" / name)
        else:
            shutil.copy2(src, ctx / "src" / name)


def _pin(package: str) -> str:
    text = (REPO_ROOT / "pyproject.toml").read_text()
    m = re.search(rf'"{package}==([^"]+)"', text)
    if not m:
        raise ClickstreamError(f"pyproject.toml pins no {package}")
    return m.group(1)


def _version() -> str:
    import tomllib

    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"]


def images() -> list[Image]:
    """The images, in build order. Tags are the server versions (the app's: the project's).
    The app image is for compose; the test backend needs only the three servers."""
    return [
        Image("kafka", "4.1.1", render_kafka),
        Image("cassandra", "5.0.9", render_cassandra),
        Image("spark", _pin("pyspark"), render_spark),
        Image("app", _version(), render_app),
    ]


SERVER_IMAGES = COMPONENTS  # one image per component of the stack, plus the app's
IMAGE_NAMES = (*SERVER_IMAGES, "app")


def ref(name: str) -> str:
    """The reference (`clickstream/<name>:<tag>`) of the image called `name`."""
    return next(i.ref for i in images() if i.name == name)


def inputs_hash(ctx: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in ctx.rglob("*") if p.is_file()):
        rel = f.relative_to(ctx).as_posix()
        st = f.stat()
        h.update(f"{rel}\0{st.st_mode & 0o111}\0".encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def render(settings: Settings, image: Image) -> Path:
    ctx = settings.data_dir / "images" / image.name
    if ctx.exists():
        shutil.rmtree(ctx)
    ctx.mkdir(parents=True)
    image.render(settings, ctx)
    return ctx


# ------------------------------------------------------------------------ the base image
def debian_mirror(files: list[Path] | None = None) -> str:
    """The Debian mirror this machine's apt uses (one-line and deb822 formats)."""
    if files is None:
        files = [Path("/etc/apt/sources.list"),
                 *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for f in files:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        for m in re.finditer(r"(?:^deb\s+(?:\[[^\]]*\]\s+)?|^URIs:\s*)(\S+)", text, re.M):
            if m.group(1).rstrip("/").endswith("/debian"):
                return m.group(1)
    return "http://deb.debian.org/debian"


def ensure_base(client, echo=print) -> bool:
    """Make `debian:bookworm-slim` with debootstrap + docker import if the engine lacks
    it. True if it was made now."""
    import docker

    try:
        client.images.get(BASE_IMAGE)
        return False
    except docker.errors.ImageNotFound:
        pass
    ensure_packages("debootstrap")
    mirror = debian_mirror()
    echo(f"making the base image {BASE_IMAGE} with debootstrap from {mirror} ...")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="clickstream-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        r = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(rootfs), mirror],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise ClickstreamError("debootstrap failed:\n" + _last_lines(r.stdout + r.stderr))
        tarball = Path(tmp) / "rootfs.tar"
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        repo, tag = BASE_IMAGE.split(":")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=tag)
    echo(f"  {BASE_IMAGE}: made in {time.monotonic() - t0:.0f}s")
    return True


# ------------------------------------------------------------------------ builds
def _last_lines(text: str, n: int = 20) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # the engine colours a step's stderr
    return "\n".join(text.strip().splitlines()[-n:])


def current_inputs(client, ref: str) -> str | None:
    import docker

    try:
        return (client.images.get(ref).labels or {}).get(INPUTS_LABEL)
    except docker.errors.ImageNotFound:
        return None


def build(client, image: Image, ctx: Path, echo=print) -> bool:
    """Build `image` from `ctx` unless an image with the same inputs exists. True if built."""
    key = inputs_hash(ctx)
    if current_inputs(client, image.ref) == key:
        echo(f"{image.ref}: up to date ({key})")
        return False
    echo(f"building {image.ref} ({key}) ...")
    previous = _image_id(client, image.ref)
    t0 = time.monotonic()
    output: list[str] = []
    # network host: the engine may have no bridge, and a bridge here has no way out
    for chunk in client.api.build(path=str(ctx), tag=image.ref, labels={INPUTS_LABEL: key},
                                  network_mode="host", rm=True, forcerm=True, decode=True):
        if "stream" in chunk:
            output.append(chunk["stream"])
            line = chunk["stream"].strip()
            if line.startswith("Step "):
                log.info("%s: %s", image.name, line)
        if "error" in chunk:
            raise ClickstreamError(f"building {image.ref} failed: {chunk['error'].strip()}\n"
                                   + _last_lines("".join(output)))
    echo(f"  {image.ref}: built in {time.monotonic() - t0:.0f}s")
    if previous and previous != _image_id(client, image.ref):
        _remove_quietly(client, previous)  # the old build, now untagged: its disk is freed
    return True


def _image_id(client, ref: str) -> str | None:
    import docker

    try:
        return client.images.get(ref).id
    except docker.errors.ImageNotFound:
        return None


def _remove_quietly(client, image_id: str) -> None:
    import docker

    try:
        client.images.remove(image_id)
    except docker.errors.APIError as e:  # still used by a container: it stays
        log.info("kept the previous image %s: %s", image_id[:19], e)


def build_all(settings: Settings, docker_host: str, make_base: bool, echo=print,
              only: list[str] | None = None) -> dict[str, str]:
    """Render and build every image (or `only` those); return name -> image ref."""
    import docker

    client = docker.DockerClient(base_url=docker_host, timeout=600)
    try:
        if make_base:
            ensure_base(client, echo)
        refs = {}
        for image in images():
            if only and image.name not in only:
                continue
            build(client, image, render(settings, image), echo)
            refs[image.name] = image.ref
        return refs
    finally:
        client.close()
