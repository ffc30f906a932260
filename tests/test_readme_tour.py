"""The README's API tour runs top to bottom as written, against the bundled example."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import EXAMPLE, MIGCTL, free_port, wait_for

README = Path(__file__).parent.parent / "README.md"
TOUR = re.compile(r"^## API tour\n(.*?)^## ", re.MULTILINE | re.DOTALL)
SHELL_BLOCK = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPECTED = re.compile(r"\s#\s*(\d{3})\b")  # a trailing comment naming the status it answers


def tour_commands() -> list[str]:
    """Every command of the tour's shell blocks, in order: continuations joined, comments out."""
    tour = TOUR.search(README.read_text())
    assert tour, "the README has no '## API tour' section"
    commands: list[str] = []
    for block in SHELL_BLOCK.findall(tour.group(1)):
        pending = ""
        for line in block.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            pending += line.rstrip("\\").rstrip() + " " if line.endswith("\\") else line
            if not line.endswith("\\"):
                commands.append(pending)
                pending = ""
    return commands


@pytest.fixture
def served_example(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """`migctl serve` with no configuration, from a folder laid out like a fresh clone."""
    (tmp_path / "examples").symlink_to(EXAMPLE.parent)
    (tmp_path / ".venv").mkdir()
    (tmp_path / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    server = subprocess.Popen(
        [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=tmp_path,
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(f"http://127.0.0.1:{port}/health/ready")  # as a person would, or a probe
    yield tmp_path, port
    server.terminate()
    server.wait(timeout=60)


def run(command: str, cwd: Path, port: int) -> tuple[int, str]:
    """Run one tour command; for curl, also the HTTP status it got."""
    command = command.replace("localhost:8000", f"127.0.0.1:{port}")
    is_curl = command.startswith("curl ")
    if is_curl:
        # To stderr: a tour command may redirect the body to a file.
        command = command.replace("curl ", "curl -w '%{stderr}HTTP_STATUS=%{http_code}' ", 1)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    done = subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=environ, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, f"{command}\n{done.stderr}"
    status = re.search(r"HTTP_STATUS=(\d{3})", done.stderr) if is_curl else None
    return (int(status.group(1)) if status else 0), done.stdout


def test_the_api_tour_runs_top_to_bottom_as_written(served_example: tuple[Path, int]) -> None:
    cwd, port = served_example
    commands = tour_commands()
    assert any("/operations" in c for c in commands) and any("alembic" in c for c in commands)
    for command in commands:
        status, output = run(command, cwd, port)
        expected = EXPECTED.search(command)
        if command.startswith("curl "):
            wanted = {int(expected.group(1))} if expected else set(range(200, 400))
            assert status in wanted, f"{shlex.quote(command)} answered {status}:\n{output}"
