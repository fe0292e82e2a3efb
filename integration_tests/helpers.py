"""Run the real `clickstream` CLI against a given Settings (as its environment)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.settings import Settings, settings_env

CLI = [sys.executable, "-m", "services.cli"]
REPO = Path(__file__).resolve().parent.parent


def run_cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def popen_cli(settings: Settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=settings_env(settings), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
