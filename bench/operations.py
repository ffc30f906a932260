"""Benchmark migctl's queued operations against `alembic upgrade heads` and their start latency."""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from project_venv import alembic_of, project_python
from read_api import (
    ADMIN_URL,
    PROJECT_BIN,
    THREADS,
    WORKERS,
    Project,
    Server,
    Worker,
    admin_execute,
    fetch_once,
    generate_project,
    get,
    interrupted,
    p50,
    running_server,
    server_environ,
    upgrade,
    worker_figures,
    worker_pids,
)

RUNS = 3
SMALL_REVISIONS = 2
WARMUP_OPERATIONS = 2  # small operations before any timing: the worker's connections are open
STATUS_PRIMES = 6  # GET /status per database before timing: the gunicorn workers hold the graph
WAIT_S = 60
HTTP_TIMEOUT_S = WAIT_S + 30
FINISHED = ("succeeded", "failed", "interrupted", "cancelled")
SMALL = "small"
PAUSE_S = 1.0  # a client that comes back after a while, as a pipeline does: the worker is idle
LOG_TAIL = 4000  # characters of the server's log printed when an operation goes wrong
GOAL_RATIO = 1.1
GOAL_FIRST_STEP_MS = 100.0
_SERIAL = itertools.count(1)

# Where the time of one operation goes: consecutive intervals, from the client's POST to the
# client reading the final answer (same host, so client and server clocks agree).
PHASES = (
    ("POST sent -> requested_at (API: plan, insert)", "sent", "requested"),
    ("requested_at -> started_at (claim)", "requested", "claimed"),
    ("started_at -> first step started (job start)", "claimed", "first_step"),
    ("first step started -> last step ended (steps)", "first_step", "last_step_end"),
    ("last step ended -> finished_at (finish)", "last_step_end", "finished"),
    ("finished_at -> answer read (long poll)", "finished", "answered"),
)


@dataclass(frozen=True)
class Timeline:
    """The instants of one operation, from the client and from the operation's JSON."""

    sent: datetime
    answered: datetime
    requested: datetime
    claimed: datetime
    first_step: datetime
    last_step_end: datetime
    finished: datetime
    steps: int
    in_steps_ms: float  # the sum of the steps' duration_ms; the rest of their span is between

    def ms(self, start: str, end: str) -> float:
        delta: timedelta = getattr(self, end) - getattr(self, start)
        return delta.total_seconds() * 1000

    @property
    def total_s(self) -> float:
        return self.ms("sent", "answered") / 1000


@dataclass
class Results:
    cli_s: list[float] = field(default_factory=list)
    api: list[Timeline] = field(default_factory=list)
    # short operations by series: "back to back" and "after <pause> s idle"
    small: dict[str, list[Timeline]] = field(default_factory=dict)
    worker: Worker | None = None


# --- databases ------------------------------------------------------------------------------


def database_url(name: str) -> str:
    return sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def fresh_databases(count: int) -> Iterator[list[str]]:
    """`count` new databases' URLs; every one created is dropped on exit, whatever happened."""
    created: list[str] = []
    try:
        for _ in range(count):
            name = f"migctl_bench_ops_{os.getpid()}_{next(_SERIAL)}"
            admin_execute(f'CREATE DATABASE "{name}"')
            created.append(name)
        yield [database_url(name) for name in created]
    finally:
        for name in created:
            admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def database_heads(url: str) -> list[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return sorted(row[0] for row in rows)
    finally:
        engine.dispose()


def check_heads(url: str, expected: list[str], what: str) -> None:
    heads = database_heads(url)
    if heads != expected:
        raise RuntimeError(f"{what}: the database is at {heads}, expected {expected}")


# --- the alembic CLI ------------------------------------------------------------------------


def cli_upgrade_s(project: Project) -> float:
    """Wall clock of `alembic upgrade heads` on a fresh database."""
    with fresh_databases(1) as [url]:
        seconds = upgrade(project, url, "heads")
        check_heads(url, [project.revisions[-1]], "alembic upgrade heads")
    return seconds


# --- the migctl server ----------------------------------------------------------------------


def write_databases_file(work: Path, databases: Mapping[str, tuple[str, Project]]) -> Path:
    path = work / "databases.toml"
    python = PROJECT_BIN["python"]
    text = "".join(
        f'[databases.{name}]\nurl = "{url}"\nalembic_config = "{project.ini}"\n'
        f'python = "{python}"\n\n'
        for name, (url, project) in databases.items()
    )
    path.write_text(text, encoding="utf-8")
    return path


def operations_environ(work: Path, databases_file: Path, control_url: str) -> dict[str, str]:
    return {**server_environ(work, databases_file), "MIGCTL_CONTROL_DATABASE_URL": control_url}


def prime(port: int, names: Sequence[str]) -> None:
    """GET /status on fresh connections, so both gunicorn workers have loaded the graphs."""
    for name in names:
        for _ in range(STATUS_PRIMES):
            status, body = fetch_once(port, f"/api/v1/databases/{name}/status")
            if status != 200:
                raise RuntimeError(f"GET /status of {name}: {status} {body[:300]!r}")


def migctl_worker(server: Server) -> Worker | None:
    """Figures of the `migctl worker` process that `migctl serve` started beside gunicorn."""
    for pid in worker_pids(server.process.pid):
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"worker" in command:
            return worker_figures(pid)
    return None


# --- operations over HTTP -------------------------------------------------------------------


def post_operation(
    connection: http.client.HTTPConnection, name: str, action: str, revision: str
) -> dict[str, Any]:
    body = json.dumps({"action": action, "revision": revision})
    headers = {"Content-Type": "application/json"}
    connection.request("POST", f"/api/v1/databases/{name}/operations", body, headers)
    response = connection.getresponse()
    data = response.read()
    if response.status != 202:
        raise RuntimeError(f"POST {action} {revision} to {name}: {response.status} {data[:500]!r}")
    operation: dict[str, Any] = json.loads(data)
    return operation


def wait_for_end(connection: http.client.HTTPConnection, operation_id: int) -> dict[str, Any]:
    """GET ?wait=60 until the operation has ended."""
    while True:
        status, body = get(connection, f"/api/v1/operations/{operation_id}?wait={WAIT_S}")
        if status != 200:
            raise RuntimeError(f"GET operation {operation_id}: {status} {body[:500]!r}")
        operation: dict[str, Any] = json.loads(body)
        if operation["status"] in FINISHED:
            return operation


def run_operation(
    connection: http.client.HTTPConnection, name: str, action: str, revision: str, steps: int
) -> Timeline:
    """POST, then wait for the end; check it succeeded with `steps` steps."""
    sent = datetime.now(UTC)
    operation = wait_for_end(connection, post_operation(connection, name, action, revision)["id"])
    answered = datetime.now(UTC)
    check_operation(operation, steps)
    return timeline(operation, sent, answered)


def check_operation(operation: Mapping[str, Any], steps: int) -> None:
    done = [step for step in operation["steps"] if step["outcome"] == "succeeded"]
    if operation["status"] != "succeeded" or len(done) != steps:
        error = operation.get("error")
        raise RuntimeError(
            f"operation {operation['id']} ({operation['action']}): {operation['status']}, "
            f"{len(done)}/{steps} steps succeeded; error: {error}"
        )


def timeline(operation: Mapping[str, Any], sent: datetime, answered: datetime) -> Timeline:
    steps = operation["steps"]
    last = steps[-1]
    last_end = instant(last["started_at"]) + timedelta(milliseconds=last["duration_ms"])
    return Timeline(
        sent=sent,
        answered=answered,
        requested=instant(operation["requested_at"]),
        claimed=instant(operation["started_at"]),
        first_step=instant(steps[0]["started_at"]),
        last_step_end=last_end,
        finished=instant(operation["finished_at"]),
        steps=len(steps),
        in_steps_ms=sum(step["duration_ms"] for step in steps),
    )


def instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@contextmanager
def keep_alive(port: int) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
    try:
        yield connection
    finally:
        connection.close()


def measure_upgrades(port: int, names: Sequence[str], project: Project, results: Results) -> None:
    """The CLI, then migctl, on a fresh database each, in turn: both meet the same load."""
    count = len(project.revisions)
    for name in names:
        results.cli_s.append(cli_upgrade_s(project))
        with keep_alive(port) as connection:  # gunicorn closes a keep-alive idle for 2 s
            results.api.append(run_operation(connection, name, "upgrade", "heads", count))
        print(
            f"upgrade heads: alembic CLI {results.cli_s[-1]:.2f} s, "
            f"migctl {results.api[-1].total_s:.2f} s"
        )


def measure_small(
    port: int, operations: int, project: Project, pause_s: float = 0.0
) -> list[Timeline]:
    """Alternately upgrade heads and downgrade base the small database, `pause_s` apart."""
    count = len(project.revisions)
    moves = itertools.cycle((("upgrade", "heads"), ("downgrade", "base")))
    timelines = []
    with keep_alive(port) as connection:
        for _ in range(operations):
            time.sleep(pause_s)
            timelines.append(run_operation(connection, SMALL, *next(moves), count))
    return timelines


def warm_up(port: int, project: Project) -> None:
    """The first operations pay one-time costs (connections, imports in the worker)."""
    measure_small(port, WARMUP_OPERATIONS, project)


# --- report ---------------------------------------------------------------------------------


def report(results: Results, args: argparse.Namespace) -> bool:
    """Print every figure and the goals; True when every goal is met."""
    print(
        f"\nmigctl queued operations, {os.cpu_count()} cores, "
        f"{WORKERS} gunicorn workers x {THREADS} threads + 1 migctl worker, PostgreSQL control DB"
    )
    print_upgrades(results, args)
    print_phases(f"upgrade heads, {args.revisions} revisions (p50 of {args.runs})", results.api)
    for series, timelines in results.small.items():
        print_small(series, timelines)
        print_phases(f"{SMALL_REVISIONS}-revision operations, {series}", timelines)
    if results.worker is not None:
        worker = results.worker
        print(
            f"\nmigctl worker process: VmRSS {worker.rss_mb:.1f} MB "
            f"(peak VmHWM {worker.peak_rss_mb:.1f} MB), {worker.cpu_s:.1f} s CPU"
        )
    return report_goals(results)


def print_upgrades(results: Results, args: argparse.Namespace) -> None:
    api_s = [line.total_s for line in results.api]
    print(
        f"\nupgrade heads of {args.revisions} revisions, fresh database each "
        f"({args.runs} runs)    p50 s   min s   max s"
    )
    for label, timings in (("alembic upgrade heads (CLI)", results.cli_s), ("migctl", api_s)):
        print(f"  {label:55} {p50(timings):7.2f} {min(timings):7.2f} {max(timings):7.2f}")
    print(f"  ratio migctl / CLI (p50s): {ratio(results):.2f}")


def print_small(series: str, timelines: Sequence[Timeline]) -> None:
    figures = {
        "POST -> first step started (first step started_at - requested_at)": first_steps_ms(
            timelines
        ),
        "POST -> claim (started_at - requested_at)": [
            line.ms("requested", "claimed") for line in timelines
        ],
        "POST sent -> final answer read (client)": [line.total_s * 1000 for line in timelines],
    }
    print(
        f"\n{len(timelines)} {SMALL_REVISIONS}-revision operations, {series}: upgrade heads and "
        "downgrade base alternately"
    )
    print(f"  {'':66} {'p50 ms':>8} {'min ms':>8} {'max ms':>8}")
    for label, timings in figures.items():
        print(f"  {label:66} {p50(timings):8.1f} {min(timings):8.1f} {max(timings):8.1f}")


def print_phases(title: str, timelines: Sequence[Timeline]) -> None:
    print(f"\nwhere the time goes: {title}, ms")
    for label, start, end in PHASES:
        print(f"  {label:55} {p50([line.ms(start, end) for line in timelines]):9.1f}")
        if start == "first_step":
            inside = [line.in_steps_ms for line in timelines]
            between = [line.ms(start, end) - line.in_steps_ms for line in timelines]
            print(f"    {'in the steps (sum of duration_ms)':53} {p50(inside):9.1f}")
            print(f"    {'between the steps (each one recorded)':53} {p50(between):9.1f}")


def first_steps_ms(timelines: Sequence[Timeline]) -> list[float]:
    return [line.ms("requested", "first_step") for line in timelines]


def ratio(results: Results) -> float:
    return p50([line.total_s for line in results.api]) / p50(results.cli_s)


def report_goals(results: Results) -> bool:
    goals = [
        (
            f"migctl / CLI upgrade p50 <= {GOAL_RATIO:g}",
            ratio(results) <= GOAL_RATIO,
            f"{ratio(results):.2f}",
        )
    ]
    for series, timelines in results.small.items():
        first_step = p50(first_steps_ms(timelines))
        goals.append(
            (
                f"POST -> first step p50 < {GOAL_FIRST_STEP_MS:g} ms, {series}",
                first_step < GOAL_FIRST_STEP_MS,
                f"{first_step:.0f} ms",
            )
        )
    print("\ngoals")
    for label, passed, figure in goals:
        print(f"  {'PASS' if passed else 'FAIL'}  {label:55} {figure}")
    return all(passed for _label, passed, _figure in goals)


# --- main -----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> bool:
    python = project_python(args.python)
    PROJECT_BIN.update(python=python, alembic=alembic_of(python))
    print(f"the projects run in {python} (migctl: {sys.executable})")
    big = generate_project(work / "big", args.revisions)
    small = generate_project(work / "small", SMALL_REVISIONS)
    print(f"generated {args.revisions} and {SMALL_REVISIONS} revisions in {work}")
    results = Results()
    with fresh_databases(args.runs + 2) as urls:
        control_url, small_url, *big_urls = urls
        names = [f"big{i}" for i in range(1, args.runs + 1)]
        databases = {SMALL: (small_url, small)} | {
            name: (url, big) for name, url in zip(names, big_urls, strict=True)
        }
        environ = operations_environ(work, write_databases_file(work, databases), control_url)
        with running_server(work, environ, "operations") as server:
            try:
                measure_server(server, names, big, small, results, args)
            except RuntimeError:
                print(f"server log (last lines):\n{server.log.read_text()[-LOG_TAIL:]}")
                raise
        for url in big_urls:
            check_heads(url, [big.revisions[-1]], "migctl upgrade heads")
    return report(results, args)


def measure_server(
    server: Server,
    names: Sequence[str],
    big: Project,
    small: Project,
    results: Results,
    args: argparse.Namespace,
) -> None:
    prime(server.port, [SMALL, *names])
    warm_up(server.port, small)
    measure_upgrades(server.port, names, big, results)
    results.small["back to back"] = measure_small(server.port, args.operations, small)
    idle = f"after {args.pause:g} s idle"
    results.small[idle] = measure_small(server.port, args.operations, small, args.pause)
    results.worker = migctl_worker(server)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=200, help="revisions of the upgrade")
    parser.add_argument("--operations", type=int, default=20, help="short operations to time")
    parser.add_argument("--runs", type=int, default=RUNS, help="upgrades each of CLI and migctl")
    parser.add_argument(
        "--pause",
        type=float,
        default=PAUSE_S,
        help="idle seconds before each operation of series 2",
    )
    parser.add_argument(
        "--python", help="the projects' interpreter (default: a venv of their own, built once)"
    )
    args = parser.parse_args(argv)
    if args.revisions < 1 or args.operations < 1 or args.runs < 1 or args.pause < 0:
        parser.error("--revisions, --operations, --runs must be positive, --pause not negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)  # clean up (finally blocks) on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="migctl-bench-ops-"))
    try:
        return 0 if run(args, work) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
