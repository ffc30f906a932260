"""The API and workers as real processes: end to end, crashes, hangs, shutdown, concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from service.worker.signals import set_soon
from tests.helpers import (
    PostgresServer,
    Processes,
    alembic,
    first_token_lines,
    free_port,
    wait_for,
)


def call(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=90) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def queue(api: str, db: str, **body: Any) -> dict[str, Any]:
    status, answer = call("POST", f"{api}/databases/{db}/operations", body)
    assert status == 202, answer
    return answer


def wait_end(api: str, operation_id: int) -> dict[str, Any]:
    for _ in range(4):
        _, answer = call("GET", f"{api}/operations/{operation_id}?wait=30")
        if answer["status"] not in ("queued", "running"):
            return answer
    raise AssertionError(f"operation {operation_id} did not end: {answer}")


def current(ini: Path, url: str) -> list[str]:
    return sorted(first_token_lines(alembic(ini, url, "current")))


def single(ini: Path, url: str, control: str | None = None) -> dict[str, str]:
    environ = {"MIGCTL_DATABASE_URL": url, "MIGCTL_ALEMBIC_CONFIG": str(ini)}
    if control:
        environ["MIGCTL_CONTROL_DATABASE_URL"] = control
    return environ


def test_serve_runs_upgrade_downgrade_and_stamp_end_to_end(
    project: Callable[[str], Path], database_url: str, processes: Callable[..., Processes]
) -> None:
    ini = project("example")
    group = processes(single(ini, database_url))
    port = free_port()
    group.start("serve", "--bind", f"127.0.0.1:{port}")  # the API and one worker, as a user runs it
    api = f"http://127.0.0.1:{port}/api/v1"
    wait_for(f"http://127.0.0.1:{port}/health/ready")
    upgrade = wait_end(api, queue(api, "default", action="upgrade", revision="heads")["id"])
    assert upgrade["status"] == "succeeded" and len(upgrade["steps"]) == 12
    assert current(ini, database_url) == ["5a3e9f7b0c64"]
    down = wait_end(api, queue(api, "default", action="downgrade", revision="4f2c9d81a6e3")["id"])
    assert down["status"] == "succeeded" and current(ini, database_url) == ["4f2c9d81a6e3"]
    stamp = wait_end(api, queue(api, "default", action="stamp", revision="heads")["id"])
    assert stamp["status"] == "succeeded" and current(ini, database_url) == ["5a3e9f7b0c64"]


SLOW = '''"""takes its time
"""
import time

from alembic import context

revision = "a5000005"
down_revision = "a4000004"
branch_labels = None
depends_on = None


def upgrade():
    if not context.is_offline_mode():  # rendering its SQL (a preview, lint) is quick
        time.sleep({seconds})


def downgrade():
    pass
'''


def with_slow_revision(ini: Path, seconds: float) -> Path:
    versions = ini.parent / "migrations" / "versions"
    (versions / "a5000005_slow.py").write_text(SLOW.replace("{seconds}", str(seconds)))
    return ini


def children_of(pid: int) -> list[int]:
    """Children of every thread of `pid` (runner templates are started from a thread)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue
    return found


def job_process(worker: subprocess.Popen[str]) -> int:
    """The running job: forked by a runner, itself forked by the worker's runner template."""
    for _ in range(200):
        jobs = [
            job
            for template in children_of(worker.pid)
            for runner in children_of(template)
            for job in children_of(runner)
        ]
        if jobs:
            return jobs[0]
        time.sleep(0.05)
    raise AssertionError("no job process")


def wait_steps(api: str, operation_id: int, count: int) -> None:
    for _ in range(400):
        _, answer = call("GET", f"{api}/operations/{operation_id}")
        if len(answer["steps"]) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} steps")


def test_a_killed_job_ends_interrupted_releases_the_lock_and_the_next_operation_runs(
    project: Callable[[str], Path],
    database_url: str,
    backend: str,
    processes: Callable[..., Processes],
) -> None:
    ini = with_slow_revision(project("linear"), 60)
    group = processes(single(ini, database_url))
    api = group.api()
    worker = group.start("worker")
    operation = queue(api, "default", action="upgrade", revision="heads")
    wait_steps(api, operation["id"], 4)
    os.kill(job_process(worker), signal.SIGKILL)
    ended = wait_end(api, operation["id"])
    # One transaction on PostgreSQL (this env.py's default) rolls back; SQLite keeps each step.
    consistent = [] if backend == "postgresql" else ["a4000004"]
    assert ended["status"] == "interrupted" and ended["heads_after"] == consistent
    assert current(ini, database_url) == consistent
    following = wait_end(api, queue(api, "default", action="upgrade", revision="a4000004")["id"])
    assert following["status"] == "succeeded" and current(ini, database_url) == ["a4000004"]


def test_a_dead_workers_operation_is_interrupted_by_another_worker_once_its_lease_expires(
    project: Callable[[str], Path],
    database_url: str,
    backend: str,
    processes: Callable[..., Processes],
) -> None:
    ini = with_slow_revision(project("linear"), 60)
    group = processes(single(ini, database_url))
    api = group.api()
    first = group.start("worker")
    operation = queue(api, "default", action="upgrade", revision="heads")
    wait_steps(api, operation["id"], 4)
    first.kill()  # the job dies with it (PR_SET_PDEATHSIG)
    group.start("worker")
    ended = wait_end(api, operation["id"])
    assert ended["status"] == "interrupted" and "lease expired" in ended["error"]["message"]
    consistent = [] if backend == "postgresql" else ["a4000004"]
    assert current(ini, database_url) == consistent == ended["heads_after"]


def test_a_hanging_import_in_env_py_fails_after_the_start_timeout_and_the_worker_lives_on(
    project: Callable[[str], Path], database_url: str, processes: Callable[..., Processes]
) -> None:
    ini = project("linear")
    env_py = ini.parent / "migrations" / "env.py"
    hang = ini.parent / "HANG"
    env_py.write_text(
        f"import pathlib, time\nif pathlib.Path({str(hang)!r}).exists():\n    time.sleep(600)\n"
        + env_py.read_text()
    )
    group = processes({**single(ini, database_url), "MIGCTL_JOB_START_TIMEOUT_SECONDS": "3"})
    api = group.api()
    operation = queue(api, "default", action="upgrade", revision="heads")
    hang.touch()
    group.start("worker")
    ended = wait_end(api, operation["id"])
    assert ended["status"] == "failed" and ended["error"]["code"] == "job-start-failed"
    assert "did not start within 3 s" in ended["error"]["message"]
    hang.unlink()
    following = wait_end(api, queue(api, "default", action="upgrade", revision="heads")["id"])
    assert following["status"] == "succeeded"


@pytest.mark.parametrize(
    ("sleep", "grace", "expected"), [(2, 30, "succeeded"), (60, 1, "interrupted")]
)
def test_sigterm_lets_the_running_operation_finish_within_the_grace_period(
    project: Callable[[str], Path],
    database_url: str,
    processes: Callable[..., Processes],
    sleep: float,
    grace: float,
    expected: str,
) -> None:
    ini = with_slow_revision(project("linear"), sleep)
    group = processes({**single(ini, database_url), "MIGCTL_SHUTDOWN_GRACE_SECONDS": str(grace)})
    api = group.api()
    worker = group.start("worker")
    operation = queue(api, "default", action="upgrade", revision="heads")
    wait_steps(api, operation["id"], 4)
    worker.terminate()
    assert worker.wait(timeout=60) == 0
    assert wait_end(api, operation["id"])["status"] == expected
    queued = queue(api, "default", action="downgrade", revision="base")
    time.sleep(1)
    _, still = call("GET", f"{api}/operations/{queued['id']}")
    assert still["status"] == "queued"  # a stopped worker claims nothing more


@pytest.mark.postgresql
def test_fifty_concurrent_requests_on_two_apis_and_two_workers_each_run_exactly_once(
    project: Callable[[str], Path],
    postgres_server: PostgresServer,
    processes: Callable[..., Processes],
    tmp_path: Path,
) -> None:
    ini = project("linear")
    urls = {name: postgres_server.create_database() for name in ("one", "two")}
    databases = tmp_path / "databases.toml"
    databases.write_text(
        "".join(
            f'[databases.{name}]\nurl = "{url}"\nalembic_config = "{ini}"\n'
            for name, url in urls.items()
        )
    )
    control = postgres_server.create_database()
    group = processes(
        {
            "MIGCTL_DATABASES_FILE": str(databases),
            "MIGCTL_CONTROL_DATABASE_URL": control,
        }
    )
    apis = [group.api(), group.api()]
    group.start("worker")
    group.start("worker")
    ids: list[int] = []

    def request(n: int) -> None:
        body = (
            {"action": "upgrade", "revision": "heads"}
            if n % 4 < 2
            else {"action": "downgrade", "revision": "base"}
        )
        ids.append(queue(apis[n % 2], ("one", "two")[(n // 2) % 2], **body)["id"])

    threads = [threading.Thread(target=request, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ended = [wait_end(apis[0], operation_id) for operation_id in sorted(ids)]
    failures = [o["error"] for o in ended if o["status"] != "succeeded"]
    assert len(set(ids)) == 50 and not failures, failures
    for name in urls:
        spans = sorted((o["started_at"], o["finished_at"]) for o in ended if o["database"] == name)
        assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), name
    _, audit_events = call("GET", f"{apis[1]}/audit-events?limit=200")
    per_operation: dict[int, list[str]] = {}
    for event in audit_events:
        per_operation.setdefault(event["operation_id"], []).append(event["action"])
    assert all(
        sorted(per_operation[i])
        == ["operation.requested", "operation.started", "operation.succeeded"]
        for i in ids
    )


@pytest.mark.postgresql
def test_on_postgresql_notify_wakes_an_idle_worker_long_before_its_next_poll(
    project: Callable[[str], Path],
    postgres_server: PostgresServer,
    processes: Callable[..., Processes],
) -> None:
    ini = project("linear")
    url, control = postgres_server.create_database(), postgres_server.create_database()
    group = processes({**single(ini, url, control), "MIGCTL_WORKER_POLL_SECONDS": "30"})
    api = group.api()
    group.start("worker")
    time.sleep(3)  # the worker is idle, waiting for its 30-second poll
    operation = queue(api, "default", action="upgrade", revision="heads")
    ended = wait_end(api, operation["id"])
    assert ended["status"] == "succeeded"
    claimed_after = _seconds_between(ended["requested_at"], ended["started_at"])
    assert claimed_after < 5, claimed_after


def _seconds_between(first: str, second: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(second) - datetime.fromisoformat(first)).total_seconds()


def test_a_worker_with_concurrency_runs_operations_of_different_databases_at_once(
    project: Callable[[str], Path],
    make_database: Callable[[], str],
    processes: Callable[..., Processes],
    tmp_path: Path,
) -> None:
    ini = with_slow_revision(project("linear"), 3)
    names = ("one", "two", "three")
    databases = tmp_path / "databases.toml"
    databases.write_text(
        "".join(
            f'[databases.{name}]\nurl = "{make_database()}"\nalembic_config = "{ini}"\n'
            for name in names
        )
    )
    group = processes({"MIGCTL_DATABASES_FILE": str(databases)})
    api = group.api()
    group.start("worker", "--concurrency", "3")
    queued = [queue(api, name, action="upgrade", revision="heads") for name in names]
    queued.append(queue(api, "one", action="upgrade", revision="heads"))  # waits for the first
    ended = [wait_end(api, operation["id"]) for operation in queued]
    assert [o["status"] for o in ended] == ["succeeded"] * 4
    spans = [(o["started_at"], o["finished_at"]) for o in ended[:3]]
    latest_start, earliest_end = max(s for s, _ in spans), min(e for _, e in spans)
    assert latest_start < earliest_end  # the three upgrades ran at the same time
    assert ended[0]["finished_at"] <= ended[3]["started_at"]  # one database: one at a time


def test_a_stop_signal_landing_inside_the_loops_own_wait_still_stops_it() -> None:
    """A worker hung on SIGTERM: the handler ran inside the main thread's stopping.wait(),
    whose lock stopping.set() needs. A direct set() here would wait for itself forever."""
    stopping = threading.Event()
    with stopping._cond:  # type: ignore[attr-defined]  # where the signal landed
        set_soon(stopping)
    assert stopping.wait(5)
