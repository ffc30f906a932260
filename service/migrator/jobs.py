"""Jobs: an upgrade, downgrade or stamp forked by the project's runner, reporting as it goes."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from service.errors import MigctlError, error_from_wire, redacted
from service.lifecycle import StepOutcome
from service.migrator.scripts import ProjectScripts, RevisionGraph
from service.migrator.state import env_py_environ
from service.settings import ManagedDatabase

logger = logging.getLogger("service.job")


@dataclass(frozen=True)
class Job:
    """What to run: the operation as requested (the plan is made again under the lock)."""

    operation_id: int
    database: ManagedDatabase
    action: str
    revision: str
    purge: bool = False
    expected_current: tuple[str, ...] | None = None
    lock_wait_seconds: float = 30.0
    version_table: tuple[str, str | None] | None = None  # where heads are, if known


@dataclass(frozen=True)
class Started:
    """The plan, made under the lock from the heads the database had then."""

    heads: tuple[str, ...]
    planned: list[dict[str, str]]


@dataclass(frozen=True)
class FinishedStep:
    position: int
    revision: str
    direction: str
    started_at: dt.datetime
    duration_ms: float
    statements: tuple[str, ...]
    statement_count: int
    outcome: StepOutcome = StepOutcome.SUCCEEDED


@dataclass(frozen=True)
class Ended:
    """The job's last word: the heads it left, and the error if it failed."""

    heads_after: list[str] | None
    error: MigctlError | None = None


JobEvent = Started | FinishedStep | Ended


class JobEndedSilently(Exception):
    """The job's process ended without its last word (killed, or crashed hard)."""


class RunningJob:
    """A job in its own process: read its events, or kill it."""

    def __init__(self, pid: int, events: socket.socket, secrets: Sequence[str]) -> None:
        self.pid = pid
        self._events = events
        self._buffer = b""
        self._secrets = list(secrets)
        self.ended = False

    def next_event(self, timeout: float) -> JobEvent | None:
        """The next event, or None when none came within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self._events.settimeout(remaining)
            try:
                chunk = self._events.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                raise JobEndedSilently(f"job process {self.pid} ended without reporting its end")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return self._parse(json.loads(line))

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        self._events.close()

    def _parse(self, event: dict[str, Any]) -> JobEvent | None:
        kind = event.get("event")
        if kind == "started":
            return Started(tuple(event["heads"]), list(event["planned"]))
        if kind == "step":
            return FinishedStep(
                position=int(event["position"]),
                revision=str(event["revision"]),
                direction=str(event["direction"]),
                started_at=dt.datetime.fromisoformat(event["started_at"]),
                duration_ms=float(event["duration_ms"]),
                statements=tuple(event["statements"]),
                statement_count=int(event["statement_count"]),
                outcome=StepOutcome(event.get("outcome", StepOutcome.SUCCEEDED)),
            )
        if kind in ("finished", "failed"):
            self.ended = True
            error = event.get("error")
            found = None if error is None else redacted(error_from_wire(error), self._secrets)
            return Ended(event.get("heads_after"), found)
        return None  # "locked" and future events: nothing to record


def start_job(scripts: ProjectScripts, graph: RevisionGraph, job: Job) -> RunningJob:
    """Ask the project's runner to fork the job; its output is logged with the operation id."""
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    output_read, output_write = os.pipe()
    url = job.database.job_url.reveal()
    try:
        found = scripts.runner.request(
            "job", fds=[theirs.fileno(), output_write], **_job_params(graph, job, url)
        )
    except MigctlError as exc:
        mine.close()
        os.close(output_read)
        raise redacted(exc, _secrets(job.database)) from None
    finally:
        theirs.close()
        os.close(output_write)
    _log_output(output_read, job.operation_id)
    return RunningJob(int(found["pid"]), mine, _secrets(job.database))


def _job_params(graph: RevisionGraph, job: Job, url: str) -> dict[str, Any]:
    table, schema = job.version_table or (None, None)
    return {
        "signature": graph.generation,
        "database": job.database.name,
        "url": url,
        "environ": env_py_environ(job.database, url),
        "action": job.action,
        "revision": job.revision,
        "purge": job.purge,
        "expected_current": None if job.expected_current is None else list(job.expected_current),
        "lock": {"kind": job.database.lock, "wait_seconds": job.lock_wait_seconds},
        "timeouts": {
            "lock_timeout": job.database.effective_lock_timeout,
            "statement_timeout": job.database.statement_timeout,
        },
        "version_table": table,
        "version_table_schema": schema,
    }


def _secrets(database: ManagedDatabase) -> list[str]:
    return database.secret_values()


def _log_output(descriptor: int, operation_id: int) -> None:
    """What env.py and the revisions print, as log lines carrying the operation id."""

    def follow() -> None:
        with os.fdopen(descriptor, "rb") as output:
            for raw in output:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    logger.info("%s", line, extra={"operation_id": operation_id})

    threading.Thread(target=follow, name=f"job-output-{operation_id}", daemon=True).start()
