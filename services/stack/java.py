"""Find a Java the servers can run on, or say exactly what is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from shared.errors import ClickstreamError
from shared.settings import Settings

# Cassandra 5.0 runs on Java 11 or 17 only (not 21+: SecurityManager is gone).
SUPPORTED = (11, 17)
FIX = "install one with `apt-get install -y openjdk-17-jre-headless` or set CLICKSTREAM_JAVA_HOME"


def java_binary(settings: Settings) -> str:
    if settings.java_home:
        exe = Path(settings.java_home) / "bin" / "java"
        if not exe.exists():
            raise ClickstreamError(f"CLICKSTREAM_JAVA_HOME={settings.java_home} has no bin/java")
        return str(exe)
    exe = shutil.which("java")
    if exe is None:
        raise ClickstreamError(
            f"Java 17 is needed to run Kafka and Cassandra and none was found: {FIX}")
    return exe


@lru_cache(maxsize=8)
def major_version(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not m:
        raise ClickstreamError(f"could not read the version of {java}: {out.stderr.strip()}")
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 else major


def check_java(settings: Settings) -> str:
    """The java to use; raises a one-line error if it is missing or unsupported."""
    java = java_binary(settings)
    v = major_version(java)
    if v not in SUPPORTED:
        raise ClickstreamError(
            f"{java} is Java {v}; Cassandra 5.0 needs Java 11 or 17: {FIX}"
        )
    return java
