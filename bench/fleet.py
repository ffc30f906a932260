"""Benchmark fleets: one rollout over N databases sharing a project, and GET /fleet at 1,000."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from read_api import (
    BIN,
    THREADS,
    WORKERS,
    Project,
    fetch_once,
    generate_project,
    interrupted,
    p50,
    percentile,
    running_server,
    server_environ,
    throwaway_database,
)

REVISIONS = 3
MAX_PARALLEL = 8
WORKER_PROCESSES = 2
CONCURRENCY = 4
SINGLES = 5  # databases upgraded one at a time first: one database's upgrade time
COLD = 2  # of them, the first ones: they start runners and load the project, not counted
GOAL_RATIO = 1.3
GOAL_P99_MS = 50.0
GOAL_FLEET_MS = 50.0
FLEET_REQUESTS = 200
TIMEOUT_S = 1800


@dataclass
class Figures:
    single_s: list[float] = field(default_factory=list)
    rollout_s: float = 0.0
    cpu_busy: float = 0.0  # of all cores, during the rollout (every process, PostgreSQL too)
    single_cpu_s: list[float] = field(default_factory=list)  # CPU seconds, all processes
    double_runs: int = 0
    not_at_head: int = 0
    max_running: int = 0
    api_ms: dict[str, list[float]] = field(default_factory=dict)
    refresh_s: float = 0.0
    fleet_ms: list[float] = field(default_factory=list)
    filtered_ms: list[float] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # mean seconds, rollout operations
    wrk: str = ""  # wrk's summary of GET /status: requests/s, latency percentiles, errors


def call(port: int, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data)
    finally:
        connection.close()


def databases_file(work: Path, project: Project, names: Sequence[str]) -> Path:
    path = work / "databases.toml"
    path.write_text(
        "".join(
            f'[databases.{name}]\nurl = "sqlite:///{work / name}.db"\n'
            f'alembic_config = "{project.ini}"\nenvironment = "bench"\n'
            f'labels = {{ shard = "{i % 4}" }}\n'
            for i, name in enumerate(names)
        ),
        encoding="utf-8",
    )
    return path


@contextmanager
def workers(work: Path, environ: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`migctl worker --concurrency 4` processes besides serve's own, stopped at the end."""
    started = []
    for index in range(WORKER_PROCESSES - 1):
        log = (work / f"worker-{index}.log").open("wb")
        command = [str(BIN / "migctl"), "worker", "--concurrency", str(CONCURRENCY)]
        started.append(
            subprocess.Popen(command, env=environ, cwd=work, stdout=log, stderr=subprocess.STDOUT)
        )
    try:
        yield started
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_operation(port: int, operation_id: int) -> dict[str, Any]:
    found: dict[str, Any] = call(port, "GET", f"/api/v1/operations/{operation_id}?wait=60")
    if found["status"] != "succeeded":
        raise RuntimeError(f"operation {operation_id} {found['status']}: {found.get('error')}")
    return found


def wait_until_quiet(limit_s: float = 60.0) -> None:
    """Until the machine is nearly idle (the worker's first read of every state is done), so
    that one database's figures are its own."""
    deadline = time.monotonic() + limit_s
    busy, total = cpu_ticks()
    while time.monotonic() < deadline:
        time.sleep(1.0)
        busy_now, total_now = cpu_ticks()
        if (busy_now - busy) / max(1, total_now - total) < QUIET:
            return
        busy, total = busy_now, total_now


def single_upgrades(port: int, names: Sequence[str], figures: Figures) -> None:
    """One database at a time, request to end: what one database's upgrade costs."""
    wait_until_quiet()
    for name in names:
        started = time.perf_counter()
        busy_before, _total = cpu_ticks()
        body = {"action": "upgrade", "revision": "heads"}
        queued = call(port, "POST", f"/api/v1/databases/{name}/operations", body)
        ended = wait_operation(port, queued["id"])
        figures.single_s.append(time.perf_counter() - started)
        figures.single_cpu_s.append((cpu_ticks()[0] - busy_before) / TICKS_PER_SECOND)
        print(
            f"  {name}: requested {ended['requested_at']} started {ended['started_at']} "
            f"finished {ended['finished_at']} ({time.perf_counter() - started:.2f} s)"
        )


class Prober(threading.Thread):
    """Reads the API while the rollout runs, one request at a time, as a portal would."""

    def __init__(self, port: int, paths: dict[str, str], figures: Figures) -> None:
        super().__init__(daemon=True)
        self.port, self.paths, self.figures = port, paths, figures
        self.halt = threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self.halt.is_set():
            for name, path in self.paths.items():
                started = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                elapsed = (time.perf_counter() - started) * 1000
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
                self.figures.api_ms.setdefault(name, []).append(elapsed)
            time.sleep(0.02)
        connection.close()


TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1
QUIET = 0.15  # of all cores busy: idle enough to time one database alone


def cpu_ticks() -> tuple[int, int]:
    """Busy and total ticks of all cores since boot (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle and iowait
    return sum(fields) - idle, sum(fields)


def rollout(port: int, names: Sequence[str], figures: Figures) -> dict[str, Any]:
    body = {
        "action": "upgrade",
        "revision": "heads",
        "selector": {"names": list(names)},
        "max_parallel": MAX_PARALLEL,
    }
    paths = {
        "status": f"/api/v1/databases/{names[-1]}/status",
        "rollout": "/api/v1/rollouts/1",
        "fleet": "/api/v1/fleet",
    }
    started = time.perf_counter()
    busy_before, total_before = cpu_ticks()
    created = call(port, "POST", "/api/v1/rollouts", body)
    paths["rollout"] = f"/api/v1/rollouts/{created['id']}"
    prober = Prober(port, paths, figures)
    prober.start()
    try:
        while True:
            found: dict[str, Any] = call(port, "GET", paths["rollout"])
            running = found["totals"].get("running", 0) + found["totals"].get("queued", 0)
            figures.max_running = max(figures.max_running, running)
            if found["status"] != "running":
                break
            if time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError(f"rollout not done after {TIMEOUT_S} s: {found['totals']}")
            time.sleep(0.2)
    finally:
        prober.halt.set()
        prober.join()
    busy_after, total_after = cpu_ticks()
    figures.cpu_busy = (busy_after - busy_before) / max(1, total_after - total_before)
    created_at = datetime.fromisoformat(found["created_at"])
    figures.rollout_s = (datetime.fromisoformat(found["finished_at"]) - created_at).total_seconds()
    return found


def check_runs(control_url: str, work: Path, names: Sequence[str], figures: Figures) -> None:
    """Each database: one operation, each revision applied once (steps), at head."""
    engine = sa.create_engine(control_url)
    try:
        with engine.connect() as connection:
            per_database = connection.execute(
                sa.text(
                    "SELECT o.database, count(DISTINCT o.id), count(s.id) "
                    "FROM migctl_operations o LEFT JOIN migctl_operation_steps s "
                    "ON s.operation_id = o.id GROUP BY o.database"
                )
            ).all()
            phases = connection.execute(
                sa.text(
                    "SELECT avg(extract(epoch FROM started_at - requested_at)), "
                    "avg(extract(epoch FROM executing_at - started_at)), "
                    "avg(extract(epoch FROM finished_at - executing_at)), "
                    "extract(epoch FROM max(requested_at) - min(requested_at)) / count(*) "
                    "FROM migctl_operations WHERE rollout_id IS NOT NULL"
                )
            ).one()
    finally:
        engine.dispose()
    counts = {row[0]: (row[1], row[2]) for row in per_database}
    figures.phases = {
        "queued -> claimed": float(phases[0]),
        "claimed -> migrating (job start)": float(phases[1]),
        "migrating -> ended": float(phases[2]),
        "between two operations queued": float(phases[3]),
    }
    figures.double_runs = sum(counts.get(n, (0, 0)) != (1, REVISIONS) for n in names)
    for name in names:
        with sqlite3.connect(work / f"{name}.db") as connection:
            rows = connection.execute("SELECT count(*) FROM alembic_version").fetchone()
        figures.not_at_head += rows != (1,)


def wrk_status(port: int, name: str, seconds: int) -> str:
    """Throughput of GET /status: wrk (Debian's), loopback, 2 threads x 8 connections."""
    url = f"http://127.0.0.1:{port}/api/v1/databases/{name}/status"
    command = ["wrk", "-t2", "-c8", f"-d{seconds}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    wanted = ("Requests/sec", "50%", "99%", "Non-2xx", "Socket errors", "requests in")
    return "\n".join(
        f"  {line.strip()}"
        for line in output.splitlines()
        if line.strip().startswith(wanted) or "requests in" in line
    )


def measure_fleet(work: Path, project: Project, count: int, figures: Figures) -> None:
    """GET /fleet and a filtered list at `count` databases, once a worker filled the cache."""
    fleet_dir = work / "fleet"
    fleet_dir.mkdir()
    names = [f"tenant-{i:04d}" for i in range(count)]
    for name in names[::2]:  # half of them at head already, half never migrated
        with sqlite3.connect(fleet_dir / f"{name}.db") as connection:
            connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32))")
            connection.execute("INSERT INTO alembic_version VALUES (?)", (project.revisions[-1],))
    environ = server_environ(fleet_dir, databases_file(fleet_dir, project, names))
    environ["MIGCTL_STATE_REFRESH_SECONDS"] = "3600"
    with running_server(fleet_dir, environ, "fleet") as server:
        started = time.perf_counter()
        while True:
            found = call(server.port, "GET", "/api/v1/fleet")
            if "unknown" not in found["by_environment"].get("bench", {"unknown": 1}):
                break
            if time.perf_counter() - started > TIMEOUT_S:
                raise RuntimeError(f"states not read after {TIMEOUT_S} s: {found}")
            time.sleep(0.5)
        figures.refresh_s = time.perf_counter() - started
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        for path, into in (
            ("/api/v1/fleet", figures.fleet_ms),
            ("/api/v1/databases?state=behind&label=shard=1&page_size=100", figures.filtered_ms),
        ):
            for round_ in range(FLEET_REQUESTS + 5):
                started = time.perf_counter()
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status}")
                if round_ >= 5:  # the first ones warm each gunicorn worker
                    into.append((time.perf_counter() - started) * 1000)
        connection.close()


def run(args: argparse.Namespace, work: Path) -> bool:
    figures = Figures()
    project = generate_project(work / "project", REVISIONS)
    if args.step_wait:
        waiting_steps(work / "project", args.step_wait)
    names = [f"db-{i:04d}" for i in range(args.databases + SINGLES)]
    with ExitStack() as stack:
        control_url = stack.enter_context(throwaway_database())
        environ = server_environ(work, databases_file(work, project, names))
        environ.update(
            MIGCTL_CONTROL_DATABASE_URL=control_url,
            MIGCTL_WORKER_POLL_SECONDS="0.2",
            MIGCTL_WORKER_CONCURRENCY=str(CONCURRENCY),  # serve's worker is the first of two
        )
        server = stack.enter_context(running_server(work, environ, "rollout"))
        stack.enter_context(workers(work, environ))
        fetch_once(server.port, "/health/live")
        single_upgrades(server.port, names[:SINGLES], figures)
        found = rollout(server.port, names[SINGLES:], figures)
        if found["status"] != "succeeded":
            raise RuntimeError(f"rollout {found['status']}: {found['totals']}")
        check_runs(control_url, work, names[SINGLES:], figures)
        if args.wrk and shutil.which("wrk"):
            figures.wrk = wrk_status(server.port, names[-1], args.wrk)
    if args.fleet:
        measure_fleet(work, project, args.fleet, figures)
    return report(args, figures)


def report(args: argparse.Namespace, figures: Figures) -> bool:
    single = p50(figures.single_s[COLD:])
    ideal = args.databases * single / MAX_PARALLEL
    ratio = figures.rollout_s / ideal
    print(f"one database's upgrade ({REVISIONS} revisions, request to end): p50 {single:.3f} s")
    print(
        f"rollout of {args.databases} databases, max_parallel {MAX_PARALLEL}, "
        f"{WORKER_PROCESSES} workers x {CONCURRENCY}: {figures.rollout_s:.1f} s "
        f"(ideal {ideal:.1f} s, ratio {ratio:.2f}); most in flight seen {figures.max_running}"
    )
    cpu = p50(figures.single_cpu_s[COLD:])
    floor = args.databases * cpu / CORES
    print(
        f"CPU busy during the rollout: {figures.cpu_busy:.0%} of all cores; one database's "
        f"upgrade uses {cpu:.3f} CPU s (every process), so {CORES} cores need at least "
        f"{floor:.1f} s for {args.databases} (ratio {figures.rollout_s / floor:.2f} to that)"
    )
    print(f"double runs {figures.double_runs}, not at head {figures.not_at_head}")
    for phase, seconds in figures.phases.items():
        print(f"  rollout operations, mean {phase}: {seconds:.2f} s")
    for name, values in figures.api_ms.items():
        print(
            f"  during the rollout GET {name}: n={len(values)} p50 {p50(values):.1f} ms "
            f"p99 {percentile(values, 99):.1f} ms"
        )
    worst_p99 = max(percentile(values, 99) for values in figures.api_ms.values())
    goals = [
        (f"wall time within {GOAL_RATIO}x of ideal", ratio <= GOAL_RATIO),
        ("zero double runs, all at head", figures.double_runs == figures.not_at_head == 0),
        (f"max_parallel {MAX_PARALLEL} held", figures.max_running <= MAX_PARALLEL),
        (f"API p99 under {GOAL_P99_MS} ms during the rollout", worst_p99 < GOAL_P99_MS),
    ]
    if figures.wrk:
        print(
            f"GET /status under wrk ({WORKERS} gunicorn workers x {THREADS} threads):",
            figures.wrk,
            sep="\n",
        )
    if args.fleet:
        print(f"fleet of {args.fleet}: a worker read every state in {figures.refresh_s:.1f} s")
        for label, values in (
            ("GET /fleet", figures.fleet_ms),
            ("filtered list", figures.filtered_ms),
        ):
            print(f"  {label}: p50 {p50(values):.1f} ms p99 {percentile(values, 99):.1f} ms")
        goals.append(
            (
                f"GET /fleet p50 under {GOAL_FLEET_MS} ms at {args.fleet}",
                p50(figures.fleet_ms) < GOAL_FLEET_MS,
            )
        )
    for label, passed in goals:
        print(f"{'PASS' if passed else 'FAIL'}  {label}")
    return all(passed for _label, passed in goals)


def waiting_steps(root: Path, seconds: float) -> None:
    """Each revision also waits `seconds`, as a step does on a busy server or a big table:
    the rollout is then bounded by waiting, not by this machine's cores."""
    for path in (root / "migrations" / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        text = text.replace(
            "def upgrade() -> None:\n", f"def upgrade() -> None:\n    sleep({seconds})\n"
        )
        text = text.replace(
            "import sqlalchemy as sa\n", "import sqlalchemy as sa\nfrom time import sleep\n"
        )
        path.write_text(text, encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--databases", type=int, default=200, help="databases in the rollout")
    parser.add_argument(
        "--fleet", type=int, default=1000, help="databases for GET /fleet (0: skip)"
    )
    parser.add_argument(
        "--wrk", type=int, default=10, help="seconds of wrk on GET /status (0: skip)"
    )
    parser.add_argument(
        "--step-wait",
        type=float,
        default=0.0,
        help="seconds each revision waits (sleeps), besides its DDL (default 0)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)  # clean up (finally blocks) on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="migctl-bench-fleet-"))
    try:
        return 0 if run(args, work) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
