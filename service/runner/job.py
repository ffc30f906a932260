"""A queued operation, run online in a forked child that reports each step as it finishes."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, MigrationStep
from sqlalchemy import event

from .channel import Channel
from .engines import backend, create_engine, load_driver
from .errors import RunnerError, env_py_failure
from .locks import migration_lock, pooler_probe
from .plans import described, plan_steps, step_direction, step_revision
from .process import die_with_parent, output_to
from .project import Project
from .sandbox import overlaid_environ
from .state import select_heads, unavailable
from .timeouts import apply as apply_timeouts
from .timeouts import blockers, is_lock_timeout

# Transaction control is how a step runs, not what it does: previews leave it out too.
_TRANSACTION_CONTROL = re.compile(
    r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE|START\s+TRANSACTION|END)\b", re.IGNORECASE
)
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE)
# Before the first step Alembic reads the version table and may create it: the creation
# belongs to the first step (the preview renders it there); the reads belong to no step.
_READS = re.compile(r"^\s*(SELECT|WITH|PRAGMA|SHOW|DESCRIBE|EXPLAIN)\b", re.IGNORECASE)
_COMMITTING_DDL_BACKENDS = ("mysql", "mariadb")


def start(project: Project, request: dict[str, Any], fds: Sequence[int], close: Channel) -> int:
    """Fork the job; the child reports on fds[0] and writes its output to fds[1]."""
    events_fd, output_fd = fds
    load_driver(request["url"])
    pid = os.fork()
    if pid == 0:  # the child: never returns into the runner's loop
        code = 1
        try:
            close.close()
            _become_job(output_fd)
            code = run(project, request, Channel(socket.socket(fileno=events_fd)))
        finally:
            os._exit(code)  # skip interpreter shutdown: the next job need not wait for it
    os.close(events_fd)
    os.close(output_fd)
    return pid


def _become_job(output_fd: int) -> None:
    die_with_parent()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    output_to(output_fd)
    # What revisions and Alembic log reaches the worker's log, with the operation's id
    # (unless env.py configures logging its own way, as the CLI would let it).
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


class _Run:
    """What one job knows while it runs; the events it sends say the same."""

    def __init__(self, project: Project, request: dict[str, Any], events: Channel) -> None:
        self.project, self.request, self.events = project, request, events
        self.sql: list[tuple[str, int]] = []
        self.current: tuple[int, MigrationStep, int] | None = None
        self.step_began: tuple[dt.datetime, float] = (dt.datetime.now(dt.timezone.utc), 0.0)
        self.capture: Callable[..., None] = self._captured  # one object: listen() and contains()
        self.quiet = False  # statements of migctl's own (SET lock_timeout) belong to no step
        self.backend_pid: int | None = None
        self.version_table: tuple[str, str | None] = (
            request.get("version_table") or "alembic_version",
            request.get("version_table_schema"),
        )

    def _captured(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool
    ) -> None:
        if self.quiet or _TRANSACTION_CONTROL.match(statement):
            return
        if self.current is None and _READS.match(statement):
            return
        # Never the bound values (a data migration may carry secrets); an executemany counts
        # once per row, as the preview renders one INSERT per row.
        self.sql.append((statement, _rows(parameters) if many else 1))

    def send(self, event_name: str, **values: Any) -> None:
        # The worker may be gone: finish the migration anyway; a reaper reads the heads.
        with contextlib.suppress(OSError):
            self.events.send({"event": event_name, **values})


def run(project: Project, request: dict[str, Any], events: Channel) -> int:
    job = _Run(project, request, events)
    url = request["url"]
    engine = create_engine(url, migrating=True)
    error: RunnerError | None = None
    try:
        _locked_run(job, engine)
    except RunnerError as exc:
        error = exc
    except BaseException as exc:  # a bug of ours, or the interpreter going down
        error = RunnerError("job-failed", f"{type(exc).__name__}: {exc}")
    heads = _heads_after(job, engine)
    engine.dispose()
    if error is None:
        job.send("finished", heads_after=heads)
        return 0
    job.send("failed", error=error.as_message(), heads_after=heads)
    return 1


def _locked_run(job: _Run, engine: Any) -> None:
    request = job.request
    lock = request.get("lock") or {}
    kind = lock.get("kind", "advisory")
    with pooler_probe(engine, request["url"], kind) as probe:
        try:
            connection = engine.connect()
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise unavailable(exc, request["database"]) from None
        with (
            connection,
            migration_lock(request["url"], connection, kind, lock.get("wait_seconds", 30), probe),
        ):
            job.send("locked")
            _run_env(job, connection)


def _run_env(job: _Run, connection: Any) -> None:
    request, project = job.request, job.project
    script = project.loaded(request["signature"])
    config = project.config(attributes={"connection": connection})
    config.set_main_option("sqlalchemy.url", request["url"].replace("%", "%%"))
    options: dict[str, Any] = {
        "fn": _steps_of(job),
        "as_sql": False,
        "destination_rev": request["revision"],
    }
    if request["action"] == "stamp":
        options["purge"] = bool(request.get("purge"))
    event.listen(connection, "before_cursor_execute", job.capture)
    with overlaid_environ(request["environ"]):
        try:
            with EnvironmentContext(config, script, **options):
                script.run_env()
        except (RunnerError, KeyboardInterrupt):
            raise
        except BaseException as exc:  # a revision or env.py raised, exited or failed to import
            if job.current is None:
                raise env_py_failure(exc, project.env_py) from None
            _send_step(job, "failed")  # the step that raised is in `steps` too, with its SQL
            raise _step_failure(job, exc, connection) from None


def _steps_of(job: _Run) -> Callable[[Any, MigrationContext], Iterator[Any]]:
    def fn(heads: Any, context: MigrationContext) -> Iterator[Any]:
        heads = tuple(heads)
        request = job.request
        expected = request.get("expected_current")
        if expected is not None and set(expected) != set(heads):
            raise RunnerError(
                "precondition-failed",
                f"The database is at {', '.join(heads) or 'base'}, not at the expected "
                f"{', '.join(expected) or 'base'}.",
                expected_current=list(expected),
                current=list(heads),
            )
        job.version_table = (context.version_table, context.version_table_schema)
        start = () if request.get("purge") else heads
        script = job.project.loaded(request["signature"])
        steps = plan_steps(script, request["action"], start, request["revision"])
        job.send("started", heads=list(heads), planned=described(steps))
        if context.connection is not None and not event.contains(
            context.connection, "before_cursor_execute", job.capture
        ):  # env.py connected by itself: capture there from now on
            event.listen(context.connection, "before_cursor_execute", job.capture)
        _bound_waits(job, context.connection)
        return _each_step(job, steps)

    return fn


def _bound_waits(job: _Run, connection: Any) -> None:
    """The database's lock_timeout and statement_timeout, for every step of the session
    (and on PostgreSQL a name, so that GET .../locks finds the session)."""
    timeouts = job.request.get("timeouts") or {}
    if connection is None:
        return
    job.quiet = True
    try:
        job.backend_pid = apply_timeouts(connection, job.request["url"], timeouts)
    finally:
        job.quiet = False


def _each_step(job: _Run, steps: Sequence[MigrationStep]) -> Iterator[MigrationStep]:
    for position, step in enumerate(steps, start=1):
        job.step_began = (dt.datetime.now(dt.timezone.utc), time.perf_counter())
        job.current = (position, step, 0 if position == 1 else len(job.sql))
        yield step  # Alembic runs the revision and moves the version table, then resumes us
        _send_step(job, "succeeded")


def _send_step(job: _Run, outcome: str) -> None:
    """Report the current step: it ran (`succeeded`), or raised (`failed`)."""
    assert job.current is not None
    position, step, mark = job.current
    at, started = job.step_began
    statements = job.sql[mark:]
    job.send(
        "step",
        position=position,
        revision=step_revision(step),
        direction=step_direction(step),
        started_at=at.isoformat(),
        duration_ms=round((time.perf_counter() - started) * 1000, 3),
        statements=[_shown(text, count) for text, count in statements],
        statement_count=sum(count for _text, count in statements),
        outcome=outcome,
    )


def _shown(statement: str, rows: int) -> str:
    """A statement as a step records it: an executemany says for how many rows it ran."""
    return statement if rows == 1 else f"{statement}\n-- executed for {rows} rows"


def _rows(parameters: Any) -> int:
    """Rows of an executemany: a list of parameter sets, or one batch of SQLAlchemy's
    "insertmanyvalues" whose keys carry the row number (`code__0`, `code__1` ...)."""
    if isinstance(parameters, Mapping):
        rows = {key.rpartition("__")[2] for key in parameters if "__" in str(key)}
        return max(1, len(rows))
    return max(1, len(parameters or ()))


def _step_failure(job: _Run, exc: BaseException, connection: Any) -> RunnerError:
    assert job.current is not None
    position, step, mark = job.current
    statements = [text for text, _count in job.sql[mark:]]
    reason = str(getattr(exc, "orig", None) or exc).strip()
    revision = step_revision(step)
    context: dict[str, Any] = {
        "revision": revision,
        "error_type": type(exc).__name__,
        "sql": "".join(f"{text};\n" for text in statements),
        "position": position,
    }
    if backend(job.request["url"]) in _COMMITTING_DDL_BACKENDS:
        context["committed_statements"] = _committed(statements, exc)
    if is_lock_timeout(exc):
        return _lock_timeout(job, context, statements, reason)
    return RunnerError("migration-failed", f"{revision}: {type(exc).__name__}: {reason}", **context)


def _lock_timeout(
    job: _Run, context: dict[str, Any], statements: list[str], reason: str
) -> RunnerError:
    """The step waited longer than lock_timeout: name who held the locks it waited for."""
    found = blockers(job.request["url"], statements[-1] if statements else "", job.backend_pid)
    held_by = "; ".join(
        f"pid {b['pid']} ({b['state']}, since {b['query_start']}): {b['query']}" for b in found
    )
    timeout = (job.request.get("timeouts") or {}).get("lock_timeout")
    detail = (
        f"{context['revision']}: waited longer than lock_timeout ({timeout}) for a lock: "
        f"{reason}. " + (f"Held by {held_by}" if found else "No holder was found any more.")
    )
    return RunnerError("lock-timeout", detail, blockers=found, **context)


def _committed(statements: list[str], exc: BaseException) -> list[str]:
    """On MySQL every DDL statement commits the transaction so far, before and after it runs."""
    ran = statements[:-1] if isinstance(exc, sa.exc.DBAPIError) and statements else statements
    failing_ddl = len(ran) < len(statements) and _DDL.match(statements[-1])
    if failing_ddl:
        return ran
    last_ddl = max((i for i, text in enumerate(ran) if _DDL.match(text)), default=-1)
    return ran[: last_ddl + 1]


def _heads_after(job: _Run, engine: Any) -> list[str] | None:
    name, schema = job.version_table
    try:
        with engine.connect() as connection:
            return select_heads(connection, name, schema)
    except (sa.exc.SQLAlchemyError, OSError):
        return None
