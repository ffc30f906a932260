"""Benchmark migctl's read API against the alembic CLI on a generated N-revision project."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import math
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from project_venv import alembic_of, project_python

ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
PENDING = 10
WORKERS, THREADS = 2, 4
CLI_RUNS = 10
WARMUP_ROUNDS = 5
START_TIMEOUT_S = 60.0
BIN = Path(sys.executable).parent
PROJECT_BIN: dict[str, Path] = {}  # the project's own venv: its python and its alembic CLI
ENDPOINTS = {
    "status": "/api/v1/databases/bench/status",
    "pending": "/api/v1/databases/bench/pending",
    "revisions": "/api/v1/databases/bench/revisions?page_size=100",
}
# The floor of the HTTP stack (gunicorn, Flask, flask-smorest) with no Alembic work at all.
BASELINE = {"live": "/health/live"}
GOAL_PENDING_P50_MS = 5.0
GOAL_SPEEDUP = 50.0
GOAL_WORKER_RSS_MB = 150.0

ALEMBIC_INI = """\
[alembic]
script_location = %(here)s/migrations
path_separator = os

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
"""

ENV_PY = '''\
"""Generic env.py: a connection handed over in config.attributes, else sqlalchemy.url."""

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name)


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ["DATABASE_URL"]


def run_migrations_offline() -> None:
    context.configure(url=database_url(), literal_binds=True, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations(connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    handed = config.attributes.get("connection")
    if handed is not None:
        run_migrations(handed)
        return
    engine = create_engine(database_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        run_migrations(connection)
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
'''

REVISION_PY = string.Template('''\
"""$message

Revision ID: $revision
Revises: $down_comment
Create Date: $create_date

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "$revision"
down_revision: str | None = $down_literal
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "$table",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=True),
    )
    op.create_index("ix_${table}_name", "$table", ["name"])


def downgrade() -> None:
    op.drop_index("ix_${table}_name", table_name="$table")
    op.drop_table("$table")
''')


@dataclass(frozen=True)
class Project:
    ini: Path
    revisions: tuple[str, ...]  # oldest first


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    started_s: float = 0.0


@dataclass(frozen=True)
class Worker:
    rss_mb: float
    peak_rss_mb: float
    cpu_s: float  # shows whether the worker served real requests (loading the graph costs CPU)


@dataclass
class Results:
    upgrade_s: float = 0.0
    start_s: float = 0.0
    cold_ms: dict[str, float] = field(default_factory=dict)
    warm_ms: dict[str, list[float]] = field(default_factory=dict)
    reconnects: int = 0
    cli_ms: dict[str, list[float]] = field(default_factory=dict)
    workers: dict[int, Worker] = field(default_factory=dict)


# --- the Alembic project -------------------------------------------------------------------


def generate_project(root: Path, count: int) -> Project:
    """alembic.ini, env.py and `count` linear revisions, each creating one small table."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    (root / "alembic.ini").write_text(ALEMBIC_INI, encoding="utf-8")
    (root / "migrations" / "env.py").write_text(ENV_PY, encoding="utf-8")
    revisions = tuple(revision_id(i) for i in range(count))
    if len(set(revisions)) != count:
        raise RuntimeError("generated revision ids collide")
    start = datetime(2026, 1, 1, 9, 0)
    for i, revision in enumerate(revisions):
        down = revisions[i - 1] if i else None
        text = revision_source(i, revision, down, start + timedelta(hours=i))
        (versions / f"{revision}_create_table_{i:04d}.py").write_text(text, encoding="utf-8")
    return Project(root / "alembic.ini", revisions)


def revision_id(index: int) -> str:
    return hashlib.sha256(f"migctl-bench-{index}".encode()).hexdigest()[:12]


def revision_source(index: int, revision: str, down: str | None, created: datetime) -> str:
    table = f"bench_{index:04d}"
    return REVISION_PY.substitute(
        message=f"create table {table}",
        revision=revision,
        down_comment=down or "",
        down_literal=f'"{down}"' if down else "None",
        create_date=created.isoformat(sep=" ", timespec="microseconds"),
        table=table,
    )


# --- the database --------------------------------------------------------------------------


def admin_execute(statement: str) -> None:
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(statement))
    finally:
        engine.dispose()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A fresh database's URL; the database is dropped on exit, whatever happened."""
    name = f"migctl_bench_{os.getpid()}_{int(time.time())}"
    admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def alembic(project: Project, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_alembic(project, {"DATABASE_URL": url}, *args)
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    return subprocess.CompletedProcess(result.args, result.returncode, stdout, stderr)


def run_alembic(
    project: Project, environ: Mapping[str, str], *args: str
) -> subprocess.CompletedProcess[bytes]:
    """The alembic CLI on the project, `environ` added to ours; output as bytes, unchanged."""
    command = [str(PROJECT_BIN["alembic"]), "-c", str(project.ini), *args]
    merged = {**os.environ, **environ}
    result = subprocess.run(command, env=merged, capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace")
        raise RuntimeError(f"{' '.join(args)} failed:\n{stderr[-2000:]}")
    return result


def upgrade(project: Project, url: str, target: str) -> float:
    started = time.perf_counter()
    alembic(project, url, "upgrade", target)
    return time.perf_counter() - started


# --- the migctl server ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_databases_file(work: Path, project: Project, url: str) -> Path:
    path = work / "databases.toml"
    path.write_text(
        f'[databases.bench]\nurl = "{url}"\nalembic_config = "{project.ini}"\n'
        f'python = "{PROJECT_BIN["python"]}"\n',
        encoding="utf-8",
    )
    return path


def server_environ(work: Path, databases_file: Path) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    environ.update(
        MIGCTL_DATABASES_FILE=str(databases_file),
        MIGCTL_DATA_DIR=str(work / "data"),
        MIGCTL_LOG_LEVEL="WARNING",
    )
    return environ


def start_server(work: Path, environ: dict[str, str], tag: str) -> Server:
    port = free_port()
    command = [str(BIN / "migctl"), "serve", "--bind", f"127.0.0.1:{port}"]
    command += ["--workers", str(WORKERS), "--threads", str(THREADS)]
    log = work / f"server-{tag}.log"
    with log.open("wb") as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, env=environ, cwd=work, stdout=output, stderr=subprocess.STDOUT
        )
    server = Server(process, port, log)
    try:
        wait_until_live(server)
    except BaseException:
        stop_server(server)
        raise
    server.started_s = time.perf_counter() - started
    return server


def wait_until_live(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"migctl exited early:\n{server.log.read_text()[-2000:]}")
        try:
            status, _body = fetch_once(server.port, "/health/live")
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"migctl not live after {START_TIMEOUT_S} s:\n{server.log.read_text()}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


@contextmanager
def running_server(work: Path, environ: dict[str, str], tag: str) -> Iterator[Server]:
    server = start_server(work, environ, tag)
    try:
        yield server
    finally:
        stop_server(server)


def worker_pids(master: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return sorted(children)


def worker_figures(pid: int) -> Worker:
    """VmRSS and VmHWM from /proc/<pid>/status, user + system CPU from /proc/<pid>/stat."""
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            memory[key] = int(value.split()[0]) / 1024
    stat = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = int(stat[11]) + int(stat[12])  # utime, stime: fields 14 and 15 of proc(5)
    return Worker(memory["VmRSS"], memory["VmHWM"], ticks / os.sysconf("SC_CLK_TCK"))


# --- HTTP measurements ---------------------------------------------------------------------


def fetch_once(port: int, path: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return get(connection, path)
    finally:
        connection.close()


def get(
    connection: http.client.HTTPConnection, path: str, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    connection.request("GET", path, headers=dict(headers or {}))
    response = connection.getresponse()
    return response.status, response.read()


def timed_get(
    connection: http.client.HTTPConnection, path: str, headers: Mapping[str, str] | None = None
) -> float:
    started = time.perf_counter()
    status, body = get(connection, path, headers)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:500]!r}")
    return elapsed_ms


def cold_request_ms(work: Path, environ: dict[str, str], name: str) -> float:
    """The first request to a freshly started server: both workers are cold."""
    return first_request_ms(work, environ, f"cold-{name}", ENDPOINTS[name])


def first_request_ms(
    work: Path,
    environ: dict[str, str],
    tag: str,
    path: str,
    headers: Mapping[str, str] | None = None,
) -> float:
    """Start a server, time its very first request (`path`), stop it."""
    with running_server(work, environ, tag) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        try:
            return timed_get(connection, path, headers)
        finally:
            connection.close()


def warm_up(port: int) -> None:
    """Concurrent connections; gunicorn may still give them all to one worker (see its CPU)."""
    with ThreadPoolExecutor(WORKERS * THREADS) as pool:
        list(pool.map(lambda _: warm_up_connection(port), range(WORKERS * THREADS)))


def warm_up_connection(port: int) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for _ in range(WARMUP_ROUNDS):
            for path in ENDPOINTS.values():
                timed_get(connection, path)
    finally:
        connection.close()


def measure_warm(port: int, requests: int, results: Results) -> None:
    """`requests` sequential GETs per endpoint on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        for name, path in {**ENDPOINTS, **BASELINE}.items():
            timings = []
            for _ in range(requests):
                sock = connection.sock
                timings.append(timed_get(connection, path))
                results.reconnects += sock is not None and connection.sock is not sock
            results.warm_ms[name] = timings
    finally:
        connection.close()


def check_answers(port: int, project: Project) -> None:
    """The figures mean nothing unless the API says what the database really is."""
    expected_current = project.revisions[-PENDING - 1]
    status = json.loads(fetch_once(port, ENDPOINTS["status"])[1])
    pending = json.loads(fetch_once(port, ENDPOINTS["pending"])[1])
    revisions = json.loads(fetch_once(port, ENDPOINTS["revisions"])[1])
    problems = []
    if status.get("current_heads") != [expected_current] or status.get("pending_count") != PENDING:
        problems.append(f"status: {status}")
    if pending.get("count") != PENDING:
        problems.append(f"pending count: {pending.get('count')}")
    if len(revisions) != 100 or revisions[0]["revision"] != project.revisions[-1]:
        problems.append(f"revisions: {len(revisions)} items")
    if problems:
        raise RuntimeError("unexpected answers: " + "; ".join(problems))


# --- alembic CLI measurements --------------------------------------------------------------


def measure_cli(project: Project, url: str, runs: int, results: Results) -> None:
    expected_current = project.revisions[-PENDING - 1]
    checks: dict[str, Callable[[str], bool]] = {
        "current": lambda out: expected_current in out,
        "history": lambda out: len(out.splitlines()) >= len(project.revisions),
    }
    for command, check in checks.items():
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            output = alembic(project, url, command).stdout
            timings.append((time.perf_counter() - started) * 1000)
            if not check(output):
                raise RuntimeError(f"alembic {command} printed unexpected output:\n{output}")
        results.cli_ms[command] = timings


# --- report --------------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def p50(values: Sequence[float]) -> float:
    return percentile(values, 50)


def report(results: Results, args: argparse.Namespace) -> bool:
    """Print every figure and the goals; True when every goal is met."""
    print(
        f"\nmigctl read API, {args.revisions} revisions ({PENDING} pending), "
        f"{os.cpu_count()} cores, {WORKERS} workers x {THREADS} threads"
    )
    print(
        f"alembic upgrade to revision {args.revisions - PENDING}: {results.upgrade_s:.1f} s; "
        f"server start to live: {results.start_s:.2f} s"
    )
    print_http(results, args.requests)
    print_cli(results, args.cli_runs)
    speedups = ratios(results)
    print("\nratios of p50s")
    for label, ratio in speedups.items():
        print(f"  {label:40} {ratio:8.0f}x")
    print("\ngunicorn workers after the run")
    for pid, worker in results.workers.items():
        print(
            f"  pid {pid}: VmRSS {worker.rss_mb:.1f} MB (peak VmHWM {worker.peak_rss_mb:.1f} MB), "
            f"{worker.cpu_s:.1f} s CPU"
        )
    return report_goals(results, speedups["alembic current / GET /pending"])


def print_http(results: Results, requests: int) -> None:
    print(f"\n{'endpoint':34} {'cold ms':>9} {'p50 ms':>8} {'p99 ms':>8}  ({requests} warm)")
    for name, path in {**ENDPOINTS, **BASELINE}.items():
        warm = results.warm_ms[name]
        cold = f"{results.cold_ms[name]:9.1f}" if name in results.cold_ms else f"{'-':>9}"
        print(
            f"GET {path.removeprefix('/api/v1/databases/bench'):30} "
            f"{cold} {p50(warm):8.2f} {percentile(warm, 99):8.2f}"
        )
    print(f"keep-alive reconnections during the warm runs: {results.reconnects}")


def print_cli(results: Results, runs: int) -> None:
    print(f"\n{'alembic CLI':34} {'p50 ms':>9} {'min ms':>8} {'max ms':>8}  ({runs} runs)")
    for command, timings in results.cli_ms.items():
        print(f"alembic {command:26} {p50(timings):9.0f} {min(timings):8.0f} {max(timings):8.0f}")


def ratios(results: Results) -> dict[str, float]:
    current, history = p50(results.cli_ms["current"]), p50(results.cli_ms["history"])
    return {
        "alembic current / GET /pending": current / p50_warm(results, "pending"),
        "alembic current / GET /status": current / p50_warm(results, "status"),
        "alembic history / GET /revisions": history / p50_warm(results, "revisions"),
    }


def p50_warm(results: Results, name: str) -> float:
    return p50(results.warm_ms[name])


def report_goals(results: Results, speedup: float) -> bool:
    pending_p50 = p50_warm(results, "pending")
    largest_rss = max(worker.rss_mb for worker in results.workers.values())
    goals = [
        (
            f"warm GET /pending p50 < {GOAL_PENDING_P50_MS:g} ms",
            pending_p50 < GOAL_PENDING_P50_MS,
            f"{pending_p50:.2f} ms",
        ),
        (
            f"GET /pending >= {GOAL_SPEEDUP:g}x faster than alembic current",
            speedup >= GOAL_SPEEDUP,
            f"{speedup:.0f}x",
        ),
        (
            f"RSS of each gunicorn worker < {GOAL_WORKER_RSS_MB:g} MB",
            largest_rss < GOAL_WORKER_RSS_MB,
            f"largest {largest_rss:.1f} MB",
        ),
    ]
    print("\ngoals")
    for label, passed, figure in goals:
        print(f"  {'PASS' if passed else 'FAIL'}  {label:50} {figure}")
    return all(passed for _label, passed, _figure in goals)


# --- main ----------------------------------------------------------------------------------


def run(args: argparse.Namespace, work: Path) -> bool:
    python = project_python(args.python)
    PROJECT_BIN.update(python=python, alembic=alembic_of(python))
    print(f"the project runs in {python} (migctl: {sys.executable})")
    project = generate_project(work / "project", args.revisions)
    print(f"generated {args.revisions} revisions in {project.ini.parent}")
    results = Results()
    with throwaway_database() as url:
        results.upgrade_s = upgrade(project, url, project.revisions[-PENDING - 1])
        print(f"alembic upgrade took {results.upgrade_s:.1f} s")
        environ = server_environ(work, write_databases_file(work, project, url))
        for name in ENDPOINTS:
            results.cold_ms[name] = cold_request_ms(work, environ, name)
        print("cold requests measured")
        with running_server(work, environ, "warm") as server:
            results.start_s = server.started_s
            warm_up(server.port)
            check_answers(server.port, project)
            measure_warm(server.port, args.requests, results)
            results.workers = {pid: worker_figures(pid) for pid in worker_pids(server.process.pid)}
        print("warm requests measured")
        measure_cli(project, url, args.cli_runs, results)
    return report(results, args)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=1000, help="revisions to generate")
    parser.add_argument("--requests", type=int, default=300, help="warm requests per endpoint")
    parser.add_argument("--cli-runs", type=int, default=CLI_RUNS, help="runs per alembic command")
    parser.add_argument(
        "--python", help="the project's interpreter (default: a venv of its own, built once)"
    )
    args = parser.parse_args(argv)
    if args.revisions <= PENDING + 100:
        parser.error(f"--revisions must be more than {PENDING + 100}")
    return args


def interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)  # clean up (finally blocks) on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="migctl-bench-"))
    try:
        return 0 if run(args, work) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
