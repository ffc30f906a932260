"""Workers outlive control-database restarts, and `serve` replaces a worker that dies."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from service.retrying import Backoff
from service.store.db import ControlStore
from service.store.notifications import QueueListener
from service.store.operations import QUEUE_CHANNEL
from tests.helpers import MIGCTL, Processes, free_port, wait_for
from tests.private_postgres import PrivatePostgres
from tests.test_worker_processes import (
    call,
    current,
    queue,
    single,
    wait_steps,
    with_slow_revision,
)

BACK_WITHIN_SECONDS = 10


@pytest.fixture
def control_server() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres()
    yield server
    server.destroy()


def serve_logged(group: Processes, log: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`migctl serve` (with its worker unless told otherwise), its log kept in `log`."""
    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1", *args],
            cwd=group.cwd,
            env=group.env,
            text=True,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    group.started.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/health/live")
    return process, base


def worker_pids(root: int) -> list[int]:
    """The `migctl worker` processes below `root`: not a supervisor, not a job."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, pending = [], [root]
    while pending:
        pid = pending.pop()
        pending.extend(children.get(pid, []))
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if command[-2:] == [b"worker", b""]:
            found.append(pid)
    return sorted(found)


def ended_by(api: str, operation_id: int, deadline: float) -> dict[str, Any]:
    """The operation once it ends; fails when it has not ended by `deadline` (monotonic)."""
    answer: Any = None
    while (left := deadline - time.monotonic()) > 0:
        status, answer = call("GET", f"{api}/operations/{operation_id}?wait={max(1, int(left))}")
        if status == 200 and answer["status"] not in ("queued", "running"):
            return dict(answer)
        if status != 200:
            time.sleep(0.2)  # the API's own connections come back too
    raise AssertionError(f"operation {operation_id} had not ended in time: {answer}")


def queue_when_back(api: str, **body: Any) -> dict[str, Any]:
    for _ in range(50):
        status, answer = call("POST", f"{api}/databases/default/operations", body)
        if status == 202:
            return dict(answer)
        time.sleep(0.2)
    raise AssertionError(f"cannot queue: {answer}")


@pytest.mark.postgresql
def test_a_worker_picks_work_up_again_after_the_control_database_restarts(
    control_server: PrivatePostgres,
    project: Callable[[str], Path],
    processes: Callable[..., Processes],
    tmp_path: Path,
) -> None:
    ini = project("linear")
    control = control_server.create_database("control")
    group = processes(single(ini, f"sqlite:///{tmp_path / 'managed.db'}", control))
    serve, base = serve_logged(group, tmp_path / "serve.log")
    api = f"{base}/api/v1"
    first = ended_by(
        api,
        queue(api, "default", action="upgrade", revision="a1000001")["id"],
        time.monotonic() + 60,
    )
    assert first["status"] == "succeeded"
    (worker,) = worker_pids(serve.pid)
    control_server.stop()
    time.sleep(2)  # the idle worker meets the outage in its listener, reaper and claims
    control_server.start()
    back = time.monotonic()
    operation = queue_when_back(api, action="upgrade", revision="heads")
    ended = ended_by(api, operation["id"], back + BACK_WITHIN_SECONDS)
    assert ended["status"] == "succeeded" and ended["heads_after"] == ["a4000004"]
    assert worker_pids(serve.pid) == [worker]  # the same worker: it never died


@pytest.mark.postgresql
def test_an_operation_cut_off_by_a_control_database_restart_ends_interrupted_at_the_real_heads(
    control_server: PrivatePostgres,
    project: Callable[[str], Path],
    processes: Callable[..., Processes],
    tmp_path: Path,
) -> None:
    ini = with_slow_revision(project("linear"), 3)
    managed = f"sqlite:///{tmp_path / 'managed.db'}"
    control = control_server.create_database("control")
    group = processes({**single(ini, managed, control), "MIGCTL_LEASE_SECONDS": "3"})
    api = group.api()  # serve --no-worker, and a worker of its own
    worker = group.start("worker")
    operation = queue(api, "default", action="upgrade", revision="heads")
    wait_steps(api, operation["id"], 4)  # a5000005 sleeps for 3 s from now
    control_server.stop()
    time.sleep(4)  # the lease cannot be renewed: the worker stops the job
    control_server.start()
    back = time.monotonic()
    # Queued at once, it runs as soon as the interrupted one has ended (one at a time).
    following = queue_when_back(api, action="downgrade", revision="a3000003")
    ended = ended_by(api, operation["id"], back + BACK_WITHIN_SECONDS)
    following = ended_by(api, following["id"], back + BACK_WITHIN_SECONDS)
    # Not `failed`: no revision failed. Not left `running`: the worker ends it once it can.
    assert ended["status"] == "interrupted" and ended["error"]["code"] == "interrupted"
    # ...where the next operation, under the database's lock, found the database.
    assert ended["heads_after"] == following["heads_before"]
    assert ended["heads_after"] in (["a4000004"], ["a5000005"])
    assert following["status"] == "succeeded" and current(ini, managed) == ["a3000003"]
    assert worker.poll() is None


@pytest.mark.postgresql
def test_an_outage_shorter_than_the_lease_loses_nothing_the_job_reported(
    control_server: PrivatePostgres,
    project: Callable[[str], Path],
    processes: Callable[..., Processes],
    tmp_path: Path,
) -> None:
    ini = with_slow_revision(project("linear"), 3)
    managed = f"sqlite:///{tmp_path / 'managed.db'}"
    control = control_server.create_database("control")
    group = processes({**single(ini, managed, control), "MIGCTL_LEASE_SECONDS": "30"})
    api = group.api()
    group.start("worker")
    operation = queue(api, "default", action="upgrade", revision="heads")
    wait_steps(api, operation["id"], 4)
    control_server.stop()
    time.sleep(4)  # the job finishes meanwhile; the worker keeps what it reported
    control_server.start()
    back = time.monotonic()
    ended = ended_by(api, operation["id"], back + BACK_WITHIN_SECONDS)
    assert ended["status"] == "succeeded" and ended["heads_after"] == ["a5000005"]
    assert [step["revision"] for step in ended["steps"]][-1] == "a5000005"
    assert len(ended["steps"]) == 5 and current(ini, managed) == ["a5000005"]


def readiness(base: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{base}/health/ready", timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def worker_check(answer: dict[str, Any]) -> dict[str, Any]:
    return next(check for check in answer["checks"] if check["name"] == "worker")


def test_serve_restarts_a_killed_worker_and_is_unready_until_the_new_one_heartbeats(
    project: Callable[[str], Path], processes: Callable[..., Processes], tmp_path: Path
) -> None:
    ini = project("linear")
    group = processes(single(ini, f"sqlite:///{tmp_path / 'managed.db'}"))
    serve, base = serve_logged(group, tmp_path / "serve.log")
    assert wait_for(f"{base}/health/ready") == 200
    (killed,) = worker_pids(serve.pid)
    os.kill(killed, signal.SIGKILL)
    seen: list[tuple[int, str | None]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (not seen or seen[-1][0] != 200 or len(seen) < 2):
        status, answer = readiness(base)
        seen.append((status, worker_check(answer)["code"]))
        time.sleep(0.1)
    assert (503, "worker-down") in seen and seen[-1] == (200, None), seen
    (replacement,) = worker_pids(serve.pid)
    assert replacement != killed
    log = (tmp_path / "serve.log").read_text()
    assert f"worker process {killed} was killed by SIGKILL (exit code -9)" in log
    api = f"{base}/api/v1"
    operation = queue(api, "default", action="upgrade", revision="heads")
    ended = ended_by(api, operation["id"], time.monotonic() + 60)
    assert ended["status"] == "succeeded"


def notify(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"NOTIFY {QUEUE_CHANNEL}"))
    engine.dispose()


def woken_by_notify(listener: QueueListener, url: str) -> bool:
    """Whether a NOTIFY sent 0.3 s into a 5-second `wait()` ends it early."""
    timer = threading.Timer(0.3, notify, args=(url,))
    timer.start()
    started = time.monotonic()
    listener.wait(5, threading.Event())
    timer.join()
    return time.monotonic() - started < 3


@pytest.mark.postgresql
def test_the_queue_listener_listens_again_after_a_server_restart_and_logs_the_outage_once(
    control_server: PrivatePostgres, caplog: pytest.LogCaptureFixture
) -> None:
    store = ControlStore(control_server.url())
    with QueueListener(store, Backoff(first=0.1, cap=0.4)) as listener:
        assert woken_by_notify(listener, control_server.url())
        control_server.stop()
        with caplog.at_level(logging.WARNING, logger="service.store.notifications"):
            for _ in range(20):  # about ten attempts to reconnect while it is down
                listener.wait(0.1, threading.Event())
            control_server.start()
            deadline = time.monotonic() + 15
            while not woken_by_notify(listener, control_server.url()):
                assert time.monotonic() < deadline, "not woken by NOTIFY after the restart"
    store.dispose()
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2, messages
    assert "retrying until it answers" in messages[0] and "answers again" in messages[1]
