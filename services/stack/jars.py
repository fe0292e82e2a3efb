"""Resolve each server's jars from Maven Central once, into `.stack/jars/<server>`.

One pom per server under `poms/` (never mix the Kafka, Cassandra and Spark classpaths).
A stamp holding the pom's hash makes re-runs instant until the pom changes.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import time
from pathlib import Path

from shared.errors import ClickstreamError
from shared.settings import Settings

log = logging.getLogger(__name__)
POMS = Path(__file__).resolve().parent / "poms"


def _digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def is_resolved(settings: Settings, server: str) -> bool:
    stamp = settings.jars_dir / server / ".stamp"
    return stamp.exists() and stamp.read_text() == _digest(POMS / server / "pom.xml")


def resolve(settings: Settings, server: str, echo=print) -> bool:
    """Copy `server`'s jars into place if they are missing or stale. True if it downloaded."""
    if is_resolved(settings, server):
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ClickstreamError("Maven is needed once to fetch the server jars: "
                               "`apt-get install -y maven`")
    out_dir = settings.jars_dir / server
    if out_dir.exists():
        shutil.rmtree(out_dir)  # stale: the pom changed
    out_dir.mkdir(parents=True)
    echo(f"resolving {server} jars from Maven Central into {out_dir} ...")
    t0 = time.monotonic()
    proc = subprocess.run(
        [mvn, "-q", "-B", "-f", str(POMS / server / "pom.xml"), "dependency:copy-dependencies",
         "-DexcludeScope=provided", f"-DoutputDirectory={out_dir}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        shutil.rmtree(out_dir, ignore_errors=True)
        raise ClickstreamError(f"mvn could not resolve the {server} jars:\n"
                               f"{(proc.stdout + proc.stderr).strip()[-2000:]}")
    (out_dir / ".stamp").write_text(_digest(POMS / server / "pom.xml"))
    n = len(list(out_dir.glob("*.jar")))
    echo(f"  {server}: {n} jars in {time.monotonic() - t0:.1f}s")
    return True
