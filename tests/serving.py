"""`migctl serve` as a subprocess, on a free loopback port, for tests that need a real server."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.helpers import MIGCTL, free_port, wait_for

__all__ = ["served_process", "wait_for"]


@contextmanager
def served_process(cwd: Path, environ: dict[str, str], *args: str) -> Iterator[str]:
    """`migctl serve <args>` in `cwd` with only `environ`'s MIGCTL_* variables; its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    process = subprocess.Popen(
        [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}", *args],
        cwd=cwd,
        env={**env, **environ},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
