"""The CI and Kubernetes recipes in docs/recipes, run as written against a live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import FAST, wait_for
from tests.serving import served_process
from tests.test_client import client, databases_file

RECIPES = Path(__file__).parent.parent / "docs" / "recipes"
TOKEN = new_token()


def recipe(name: str) -> Any:
    """The YAML block of a recipe, parsed."""
    text = (RECIPES / name).read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert block, name
    return yaml.safe_load(block.group(1))


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A server of `prod` (the slow project) that wants an operator token."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(token_entry("ci", Role.OPERATOR, [], TOKEN))
    environ = {
        **FAST,
        "MIGCTL_DATABASES_FILE": str(databases_file(tmp_path, "prod")),
        "MIGCTL_TOKENS_FILE": str(tokens),
        "SLOW_SECONDS": "0.3",
    }
    with served_process(tmp_path, environ, "--workers", "1") as base:
        wait_for(f"{base}/health/live")
        yield base


def shell(script: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`script` as a CI runner runs it: bash -e, with migctl on PATH and only `env` set."""
    bin_dir = str(Path(sys.executable).parent)
    base = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/")}
    return subprocess.run(
        ["bash", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def container(spec: dict[str, Any], url: str) -> tuple[list[str], dict[str, str]]:
    """A container's command, and its environment with the server and token of the test."""
    env = {e["name"]: str(e.get("value", "")) for e in spec.get("env", [])}
    env.update(MIGCTL_URL=url, MIGCTL_TOKEN=TOKEN)
    return spec["command"], env


def test_the_github_actions_recipe_upgrades_with_a_group_and_a_step_summary(
    url: str, tmp_path: Path
) -> None:
    job = recipe("github-actions.md")["jobs"]["migrate"]
    summary = tmp_path / "summary.md"
    ci = {
        "MIGCTL_URL": url,
        "MIGCTL_TOKEN": TOKEN,
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_SHA": "0123abc",
        "GITHUB_ACTOR": "octocat",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    for step in job["steps"]:
        ran = shell(step["run"], tmp_path, **ci)
        assert ran.returncode == 0, (step["name"], ran.stderr)
    assert "CREATE TABLE slow" in (tmp_path / "upgrade.sql").read_text()
    assert ran.stderr.startswith("::group::migctl: upgrade prod to heads")
    assert "operation 1 succeeded: prod at 53000003" in ran.stdout
    assert "### migctl: upgrade `prod` to `heads`: succeeded" in summary.read_text()
    operations = client(url, "operations", "prod", "--output", "json", MIGCTL_TOKEN=TOKEN)
    assert '"on_behalf_of": "octocat"' in operations.stdout
    assert '"reason": "deploy 0123abc"' in operations.stdout


def test_the_gitlab_recipe_upgrades_in_a_collapsible_section_and_a_retry_queues_nothing(
    url: str, tmp_path: Path
) -> None:
    job = recipe("gitlab-ci.md")["migrate"]
    ci = {
        "MIGCTL_URL": url,
        "MIGCTL_TOKEN": TOKEN,
        "GITLAB_CI": "true",
        "CI_PIPELINE_ID": "77",
        "CI_COMMIT_SHORT_SHA": "0123abc",
    }
    first = shell("\n".join(job["script"]), tmp_path, **ci)
    retried = shell("\n".join(job["script"]), tmp_path, **ci)
    for ran in (first, retried):
        assert ran.returncode == 0, ran.stderr
        assert "\x1b[0Ksection_start:" in ran.stderr and "\x1b[0Ksection_end:" in ran.stderr
        assert "operation 1 succeeded: prod at 53000003 (3 steps)" in ran.stdout


def test_the_kubernetes_job_and_the_init_container_recipes_work_together(
    url: str, tmp_path: Path
) -> None:
    job = recipe("kubernetes-job.md")["spec"]
    assert job["backoffLimit"] == 0
    migrate = container(job["template"]["spec"]["containers"][0], url)
    deployment = recipe("init-container.md")["spec"]["template"]["spec"]
    waiting = container(deployment["initContainers"][0], url)
    with ThreadPoolExecutor(1) as pool:
        init = pool.submit(run, *waiting)
        time.sleep(2)
        assert not init.done()  # the schema is not there yet: the pod waits
        upgraded = run(*migrate)
        waited = init.result()
    assert upgraded.returncode == 0, upgraded.stderr
    assert waited.returncode == 0, waited.stderr
    assert "prod: 53000003 reached (at 53000003)" in waited.stdout
    again = run(*migrate)  # the pod restarted: the same release gives the same operation
    assert again.returncode == 0 and again.stdout == upgraded.stdout


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    return subprocess.run(
        command,
        env={"PATH": f"{bin_dir}:{os.environ['PATH']}", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
