"""`migctl serve`, run exactly as the Docker image runs it, starts with no configuration."""

from __future__ import annotations

import os
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import MIGCTL, alembic, serve, wait_for


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    yield from serve(tmp_path, {})


@pytest.fixture
def serve_with(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], str]]:
    started: list[Iterator[str]] = []

    def start(environ: dict[str, str]) -> str:
        started.append(serve(tmp_path, environ))
        return next(started[-1])

    yield start
    for server in started:
        next(server, None)


def test_serve_starts_with_no_configuration_and_answers_health_and_status(
    served: str, tmp_path: Path
) -> None:
    assert wait_for(f"{served}/health/live") == 200
    assert wait_for(f"{served}/health/ready") == 200
    assert wait_for(f"{served}/api/v1/databases/example/status") == 200
    assert (tmp_path / "var").is_dir()


def test_serve_refuses_to_start_on_bad_configuration(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    result = subprocess.run(
        [MIGCTL, "serve"],
        env={**env, "MIGCTL_DATABASES_FILE": str(tmp_path / "missing.toml")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2 and "missing.toml: file not found" in result.stderr


def test_served_previews_equal_the_cli_at_seed_zero_even_through_a_merge_point(
    serve_with: Callable[[dict[str, str]], str], project: Callable[[str], Path], tmp_path: Path
) -> None:
    ini = project("example")
    url = serve_with(
        {"MIGCTL_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}", "MIGCTL_ALEMBIC_CONFIG": str(ini)}
    )
    wait_for(f"{url}/health/live")
    query = "action=downgrade&from=5a3e9f7b0c64&to=base&dialect=postgresql"
    request = urllib.request.Request(
        f"{url}/api/v1/databases/default/sql?{query}", headers={"Accept": "text/plain"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        served_sql = response.read().decode()
    cli = alembic(ini, "postgresql://", "downgrade", "5a3e9f7b0c64:base", "--sql", seed=0)
    assert served_sql == cli
