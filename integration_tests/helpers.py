"""Run the real `clickstream` CLI against a given Settings (as its environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.settings import Settings

CLI = [sys.executable, "-m", "services.cli"]
REPO = Path(__file__).resolve().parent.parent


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKSTREAM_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"CLICKSTREAM_{name.upper()}"] = str(value)
    return env


def run_cli(settings: Settings, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], env=settings_env(settings), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


def popen_cli(settings: Settings, *args: str) -> subprocess.Popen:
    return subprocess.Popen([*CLI, *args], env=settings_env(settings), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
