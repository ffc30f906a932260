"""Runs an upgrade, downgrade or stamp online, step by step, under the migration lock."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from service.errors import (
    DatabaseUnavailableError,
    MigctlError,
    MigrationFailedError,
    PreconditionFailedError,
)
from service.lifecycle import StepOutcome
from service.migrator.locks import migration_lock
from service.migrator.plans import plan_steps, step_direction, step_revision
from service.migrator.sandbox import alembic_environment, env_py_failure
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import env_py_environ
from service.secrets import redact, url_secrets
from service.settings import ManagedDatabase


@dataclass(frozen=True)
class Job:
    """What to run: the operation as requested (the plan is made again under the lock)."""

    database: ManagedDatabase
    action: str
    revision: str
    purge: bool = False
    expected_current: tuple[str, ...] | None = None
    lock_wait_seconds: float = 60.0


@dataclass(frozen=True)
class FinishedStep:
    position: int
    revision: str
    direction: str
    started_at: dt.datetime
    duration_ms: float
    statements: tuple[str, ...]
    outcome: str


@dataclass
class Listener:
    """Told of the plan once it is made under the lock, then of each step as it finishes."""

    on_start: Callable[[tuple[str, ...], list[dict[str, str]]], None]
    on_step: Callable[[FinishedStep], None]


@dataclass
class _Run:
    job: Job
    graph: RevisionGraph
    listener: Listener
    sql: list[str] = field(default_factory=list)
    current: tuple[int, MigrationStep, int, float] | None = None


def run_job(scripts: ProjectScripts, graph: RevisionGraph, job: Job, listener: Listener) -> None:
    """Run `job` through the project's env.py; raises MigctlError on any failure.

    Steps commit as env.py's transaction settings say; the caller reads the heads afterwards.
    """
    url = job.database.url.reveal()
    engine = _engine(url)
    try:
        with (
            _connected(engine, job) as connection,
            migration_lock(url, connection, job.lock_wait_seconds),
        ):
            _run_env(scripts, graph, job, listener, connection)
    finally:
        engine.dispose()


@contextmanager
def _connected(engine: sa.Engine, job: Job) -> Iterator[sa.Connection]:
    try:
        connection = engine.connect()
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        detail = f"Cannot connect to database {job.database.name!r}: {reason}"
        raise DatabaseUnavailableError(redact(detail, secrets_of(job.database))) from None
    with connection:
        yield connection


def secrets_of(database: ManagedDatabase) -> list[str]:
    """What must never be shown of a database: its URL, password and configured env values."""
    url = database.url.reveal()
    return url_secrets(url) + [value.reveal() for value in database.env.values()]


def _run_env(
    scripts: ProjectScripts,
    graph: RevisionGraph,
    job: Job,
    listener: Listener,
    connection: sa.Connection,
) -> None:
    run = _Run(job, graph, listener)
    url = job.database.url.reveal()
    config = scripts.config(attributes={"connection": connection})
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    options = {"fn": run_steps(run), "as_sql": False, "destination_rev": job.revision}
    if job.action == "stamp":
        options["purge"] = job.purge
    secrets = secrets_of(job.database)
    with alembic_environment(env_py_environ(job.database, url), scripts.sys_path):
        try:
            with EnvironmentContext(config, graph.script, **options):
                graph.script.run_env()
        except (MigctlError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # a revision or env.py raised, exited or failed to import
            if run.current is None:
                raise env_py_failure(exc, graph.env_py_path, secrets) from None
            # Failing in a step, or in the COMMIT after the last one: name that revision.
            _, step, mark, _ = run.current
            sql = _joined(run.sql[mark:])
            raise MigrationFailedError(step_revision(step), exc, sql, secrets) from None


def run_steps(run: _Run) -> Callable[[tuple[str, ...], MigrationContext], Iterator[Any]]:
    def fn(heads: tuple[str, ...], context: MigrationContext) -> Iterator[Any]:
        heads = tuple(heads)
        expected = run.job.expected_current
        if expected is not None and set(expected) != set(heads):
            raise PreconditionFailedError(expected, heads)
        start = () if run.job.purge else heads
        steps = plan_steps(run.graph, run.job.action, start, run.job.revision)
        planned = [{"revision": step_revision(s), "direction": step_direction(s)} for s in steps]
        run.listener.on_start(heads, planned)
        event.listen(context.connection, "before_cursor_execute", _capture(run.sql))
        return _each_step(run, steps)

    return fn


def _each_step(run: _Run, steps: Sequence[MigrationStep]) -> Iterator[MigrationStep]:
    for position, step in enumerate(steps, start=1):
        started, mark = time.perf_counter(), len(run.sql)
        at = dt.datetime.now(dt.UTC)
        run.current = (position, step, mark, started)
        yield step  # Alembic runs the revision and moves the version table, then resumes us
        run.listener.on_step(
            FinishedStep(
                position=position,
                revision=step_revision(step),
                direction=step_direction(step),
                started_at=at,
                duration_ms=round((time.perf_counter() - started) * 1000, 3),
                statements=tuple(run.sql[mark:]),
                outcome=StepOutcome.SUCCEEDED,
            )
        )


def _capture(log: list[str]) -> Callable[..., None]:
    def capture(
        _conn: Any, _cursor: Any, statement: str, _parameters: Any, _context: Any, _many: Any
    ) -> None:
        log.append(statement)  # never the bound values: a data migration may carry secrets

    return capture


def _joined(statements: Sequence[str]) -> str:
    return "".join(f"{statement};\n" for statement in statements)


def _engine(url: str) -> sa.Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        # A dead host must not keep the advisory lock for two hours of TCP keepalive defaults.
        options = (
            "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"
        )
        return sa.create_engine(parsed, poolclass=NullPool, connect_args={"options": options})
    engine = sa.create_engine(parsed, poolclass=NullPool)
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine, "connect", _sqlite_real_transactions)
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    return engine


def _sqlite_real_transactions(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite would let DDL autocommit: a failed revision must roll back (notes §3.3).
    dbapi_connection.isolation_level = None
