"""Benchmark migctl's SQL previews against `alembic upgrade --sql` on a generated project."""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from project_venv import alembic_of, project_python
from read_api import (
    ENDPOINTS,
    PENDING,
    PROJECT_BIN,
    THREADS,
    WORKERS,
    Project,
    Worker,
    first_request_ms,
    generate_project,
    get,
    interrupted,
    p50,
    percentile,
    run_alembic,
    running_server,
    server_environ,
    throwaway_database,
    timed_get,
    upgrade,
    warm_up,
    worker_figures,
    worker_pids,
    write_databases_file,
)

SQL_PATH = "/api/v1/databases/bench/sql"
FORMS = {"JSON": {"Accept": "application/json"}, "text": {"Accept": "text/plain"}}
COLD_RANGES = 30  # distinct 10-revision ranges, besides <rev N-10>:heads, rendered once each
PRIME_REQUESTS = 20  # GET /status on the measuring connection: its worker has loaded the graph
WARMUP_REQUESTS = 5  # per cached figure, before timing
CLI_RUNS = 5
# What the CLI needs to render offline exactly as `migctl serve` does (it fixes the hash seed).
CLI_OFFLINE = {"DATABASE_URL": "postgresql://", "PYTHONHASHSEED": "0"}
GOAL_CACHED_P50_MS = 5.0
GOAL_COLD_SPEEDUP = 20.0


@dataclass(frozen=True)
class Range:
    label: str
    start: str  # the `from` parameter
    to: str
    cli: tuple[str, ...] | None = None  # the alembic command for the same range, if compared

    def path(self) -> str:
        query = {"action": "upgrade", "from": self.start, "to": self.to, "dialect": "postgresql"}
        return f"{SQL_PATH}?{urlencode(query)}"


@dataclass
class Results:
    upgrade_s: float = 0.0
    fresh_ms: dict[str, float] = field(default_factory=dict)  # first request after start
    full_render_ms: float = 0.0  # first full preview on a warm worker: rendered, not cached
    cold_renders_ms: list[float] = field(default_factory=list)  # distinct 10-revision ranges
    cached_ms: dict[str, list[float]] = field(default_factory=dict)
    reconnects: int = 0
    sizes: dict[str, int] = field(default_factory=dict)
    texts: dict[str, bytes] = field(default_factory=dict)  # API text/plain, by range label
    cli_ms: dict[str, list[float]] = field(default_factory=dict)
    workers: dict[int, Worker] = field(default_factory=dict)


def ranges(project: Project) -> dict[str, Range]:
    """The full range, <rev N-10>:heads by explicit id, and the same range from=current."""
    start = project.revisions[-PENDING - 1]
    return {
        "full": Range(f"base:heads ({len(project.revisions)} rev)", "base", "heads", ("heads",)),
        "ten": Range(f"{start}:heads ({PENDING} rev)", start, "heads", (f"{start}:heads",)),
        "current": Range(f"current:heads ({PENDING} rev)", "current", "heads"),
    }


def cold_ranges(project: Project) -> list[Range]:
    """Ranges of 10 revisions ending 1..COLD_RANGES revisions below the head: none cached yet."""
    ids, first = project.revisions, len(project.revisions) - PENDING - 1 - COLD_RANGES
    return [Range(ids[i], ids[i], ids[i + PENDING]) for i in range(first, first + COLD_RANGES)]


def key(name: str, form: str) -> str:
    return f"{name} {form}"


# --- HTTP measurements ---------------------------------------------------------------------


@contextmanager
def keep_alive(port: int) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        yield connection
    finally:
        connection.close()


def measure_fresh(
    work: Path, environ: dict[str, str], todo: dict[str, Range], results: Results
) -> None:
    """The first request of a freshly started server: loads the project, then renders."""
    for name, form in (("full", "JSON"), ("full", "text"), ("ten", "JSON")):
        tag = f"fresh-{name}-{form}"
        results.fresh_ms[key(name, form)] = first_request_ms(
            work, environ, tag, todo[name].path(), FORMS[form]
        )


def prime(connection: http.client.HTTPConnection) -> None:
    for _ in range(PRIME_REQUESTS):
        timed_get(connection, ENDPOINTS["status"])


def measure_renders(
    connection: http.client.HTTPConnection,
    project: Project,
    todo: dict[str, Range],
    results: Results,
) -> None:
    """Previews not cached yet on a worker that has loaded the graph: each request renders."""
    for preview in [todo["ten"], *cold_ranges(project)]:
        results.cold_renders_ms.append(timed_get(connection, preview.path(), FORMS["JSON"]))
    results.full_render_ms = timed_get(connection, todo["full"].path(), FORMS["JSON"])


def measure_cached(
    connection: http.client.HTTPConnection, todo: dict[str, Range], requests: int, results: Results
) -> None:
    """`requests` sequential GETs per range and form on one keep-alive connection."""
    for name, preview in todo.items():
        for form, headers in FORMS.items():
            for _ in range(WARMUP_REQUESTS):
                timed_get(connection, preview.path(), headers)
            timings = []
            for _ in range(requests):
                sock = connection.sock
                timings.append(timed_get(connection, preview.path(), headers))
                results.reconnects += sock is not None and connection.sock is not sock
            results.cached_ms[key(name, form)] = timings


def fetch(connection: http.client.HTTPConnection, preview: Range, form: str) -> bytes:
    status, body = get(connection, preview.path(), FORMS[form])
    if status != 200:
        raise RuntimeError(f"GET {preview.path()}: {status} {body[:500]!r}")
    return body


def check_previews(
    connection: http.client.HTTPConnection,
    project: Project,
    todo: dict[str, Range],
    results: Results,
) -> None:
    """The figures mean nothing unless the previews hold the revisions asked for."""
    bodies = {
        name: json.loads(fetch(connection, preview, "JSON")) for name, preview in todo.items()
    }
    start = project.revisions[-PENDING - 1]
    problems = check_body(bodies["full"], [], project.revisions, project)
    problems += check_body(bodies["ten"], [start], project.revisions[-PENDING:], project)
    if bodies["current"] != bodies["ten"]:
        problems.append("from=current differs from the same range by explicit id")
    for name, preview in todo.items():
        text = fetch(connection, preview, "text")
        if text != bodies[name]["sql"].encode():
            problems.append(f"{name}: text/plain differs from the JSON's sql")
        results.texts[name] = text
        results.sizes[key(name, "JSON")] = len(fetch(connection, preview, "JSON"))
        results.sizes[key(name, "text")] = len(text)
    if problems:
        raise RuntimeError("unexpected previews: " + "; ".join(problems))


def check_body(
    body: dict[str, Any], start: list[str], expected: Sequence[str], project: Project
) -> list[str]:
    segments = body["revisions"]
    problems = []
    if body["from"] != start or body["to_revisions"] != [project.revisions[-1]]:
        problems.append(f"range from {body['from']} to {body['to_revisions']}")
    if [segment["revision"] for segment in segments] != list(expected):
        problems.append(f"{len(segments)} revisions, not the {len(expected)} expected")
    if "".join(segment["sql"] for segment in segments) != body["sql"]:
        problems.append("the segments do not add up to the script")
    if hashlib.sha256(body["sql"].encode()).hexdigest() != body["sha256"]:
        problems.append("sha256 does not match the script")
    return problems


def measure_server(
    work: Path,
    environ: dict[str, str],
    project: Project,
    args: argparse.Namespace,
    results: Results,
) -> None:
    todo = ranges(project)
    measure_fresh(work, environ, todo, results)
    print("first requests of fresh servers measured")
    with running_server(work, environ, "warm") as server:
        warm_up(server.port)
        with keep_alive(server.port) as connection:
            prime(connection)
            measure_renders(connection, project, todo, results)
            measure_cached(connection, todo, args.requests, results)
            check_previews(connection, project, todo, results)
        results.workers = {pid: worker_figures(pid) for pid in worker_pids(server.process.pid)}
    print("renders and cached previews measured")


# --- alembic CLI measurements --------------------------------------------------------------


def measure_cli(project: Project, runs: int, results: Results) -> None:
    """`alembic upgrade ... --sql`, offline; its output must be the API's text, byte for byte."""
    for name, preview in ranges(project).items():
        if preview.cli is None:
            continue
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            output = run_alembic(project, CLI_OFFLINE, "upgrade", *preview.cli, "--sql").stdout
            timings.append((time.perf_counter() - started) * 1000)
            compare(name, results.texts[name], output)
        results.cli_ms[name] = timings


def compare(name: str, api: bytes, cli: bytes) -> None:
    if api == cli:
        return
    offset = next((i for i, (a, c) in enumerate(zip(api, cli, strict=False)) if a != c), None)
    offset = min(len(api), len(cli)) if offset is None else offset
    raise RuntimeError(
        f"{name}: the API's text differs from alembic's --sql output at byte {offset} "
        f"({len(api)} vs {len(cli)} bytes):\n"
        f"API: {api[offset - 200 : offset + 200]!r}\nCLI: {cli[offset - 200 : offset + 200]!r}"
    )


# --- report --------------------------------------------------------------------------------


def report(results: Results, project: Project, args: argparse.Namespace) -> bool:
    """Print every figure and the goals; True when every goal is met."""
    print(
        f"\nmigctl SQL previews (upgrade, dialect postgresql), {args.revisions} revisions, "
        f"{os.cpu_count()} cores, {WORKERS} workers x {THREADS} threads"
    )
    print(f"alembic upgrade to revision {args.revisions - PENDING}: {results.upgrade_s:.1f} s")
    print_http(results, project, args.requests)
    print_cli(results, project, args.cli_runs)
    speedups = ratios(results)
    print("\nratios of p50s")
    for label, ratio in speedups.items():
        print(f"  {label:58} {ratio:8.0f}x")
    print_workers(results)
    return report_goals(results, speedups)


def print_http(results: Results, project: Project, requests: int) -> None:
    print(
        f"\n{'GET .../sql?from=:to=':42} {'form':>5} {'bytes':>9} {'fresh ms':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}  ({requests} cached)"
    )
    for name, preview in ranges(project).items():
        for form in FORMS:
            cached, fresh = (
                results.cached_ms[key(name, form)],
                results.fresh_ms.get(key(name, form)),
            )
            first = f"{fresh:9.0f}" if fresh is not None else f"{'-':>9}"
            print(
                f"{preview.label:42} {form:>5} {results.sizes[key(name, form)]:9d} {first} "
                f"{p50(cached):8.2f} {percentile(cached, 99):8.2f}"
            )
    renders = results.cold_renders_ms
    print(
        f"cold renders (graph loaded, range not cached) of {len(renders)} distinct "
        f"{PENDING}-revision ranges, JSON: p50 {p50(renders):.1f} ms, "
        f"min {min(renders):.1f}, max {max(renders):.1f}; <rev N-10>:heads {renders[0]:.1f} ms"
    )
    print(
        f"full range rendered on a warm worker (not cached), JSON: {results.full_render_ms:.0f} ms"
    )
    print("fresh = the first request of a freshly started server (loads the project, renders)")
    print(f"keep-alive reconnections during the cached runs: {results.reconnects}")


def print_cli(results: Results, project: Project, runs: int) -> None:
    heading = "alembic CLI (offline, PYTHONHASHSEED=0)"
    print(f"\n{heading:42} {'p50 ms':>9} {'min ms':>8} {'max ms':>8}")
    for name, timings in results.cli_ms.items():
        command = f"upgrade {' '.join(ranges(project)[name].cli or ())} --sql"
        print(f"{command:42} {p50(timings):9.0f} {min(timings):8.0f} {max(timings):8.0f}")
    print(f"({runs} runs each; the output equals the API's text/plain byte for byte)")


def ratios(results: Results) -> dict[str, float]:
    ten, full = p50(results.cli_ms["ten"]), p50(results.cli_ms["full"])
    return {
        "alembic <rev>:heads --sql / cold 10-revision render": ten / p50(results.cold_renders_ms),
        "alembic <rev>:heads --sql / cached 10-revision JSON": ten / cached_p50(results, "ten"),
        "alembic heads --sql / full render on a warm worker": full / results.full_render_ms,
        "alembic heads --sql / full, fresh server, JSON": full / results.fresh_ms["full JSON"],
        "alembic heads --sql / cached full JSON": full / cached_p50(results, "full"),
    }


def cached_p50(results: Results, name: str, form: str = "JSON") -> float:
    return p50(results.cached_ms[key(name, form)])


def print_workers(results: Results) -> None:
    print("\ngunicorn workers after the run")
    for pid, worker in results.workers.items():
        print(
            f"  pid {pid}: VmRSS {worker.rss_mb:.1f} MB (peak VmHWM {worker.peak_rss_mb:.1f} MB), "
            f"{worker.cpu_s:.1f} s CPU"
        )


def report_goals(results: Results, speedups: dict[str, float]) -> bool:
    ten = {form: cached_p50(results, "ten", form) for form in FORMS}
    speedup = speedups["alembic <rev>:heads --sql / cold 10-revision render"]
    goals = [
        (
            f"cached {PENDING}-revision preview p50 < {GOAL_CACHED_P50_MS:g} ms (JSON and text)",
            max(ten.values()) < GOAL_CACHED_P50_MS,
            ", ".join(f"{form} {ms:.2f} ms" for form, ms in ten.items()),
        ),
        (
            f"cold {PENDING}-revision render >= {GOAL_COLD_SPEEDUP:g}x faster than the CLI",
            speedup >= GOAL_COLD_SPEEDUP,
            f"{speedup:.0f}x",
        ),
    ]
    print("\ngoals")
    for label, passed, figure in goals:
        print(f"  {'PASS' if passed else 'FAIL'}  {label:58} {figure}")
    print("not goals, for information (under 5 ms or not):")
    for name in ("current", "full"):
        for form in FORMS:
            ms = cached_p50(results, name, form)
            verdict = "under" if ms < GOAL_CACHED_P50_MS else "over"
            print(f"  {verdict:5} cached {name} {form} p50 {ms:.2f} ms")
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
        measure_server(work, environ, project, args, results)
    measure_cli(project, args.cli_runs, results)
    return report(results, project, args)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--revisions", type=int, default=1000, help="revisions to generate")
    parser.add_argument("--requests", type=int, default=200, help="cached requests per figure")
    parser.add_argument("--cli-runs", type=int, default=CLI_RUNS, help="runs per alembic command")
    parser.add_argument(
        "--python", help="the project's interpreter (default: a venv of its own, built once)"
    )
    args = parser.parse_args(argv)
    if args.revisions <= PENDING + COLD_RANGES + 1:
        parser.error(f"--revisions must be more than {PENDING + COLD_RANGES + 1}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, interrupted)  # clean up (finally blocks) on SIGTERM too
    work = Path(tempfile.mkdtemp(prefix="migctl-bench-preview-"))
    try:
        return 0 if run(args, work) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
