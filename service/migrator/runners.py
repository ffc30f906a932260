"""Project runners: one process per project and interpreter, spoken to over a private socket."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import MigctlError, ProjectUnavailableError, error_from_wire
from service.migrator.links import Link, LinkBroken, LinkedProcess, Output
from service.migrator.templates import (
    RunnerInfo,
    RunnerTemplate,
    runner_info,
    template_for,
)

__all__ = ["RunnerInfo", "RunnerKey", "RunnerOptions", "RunnerPool", "RunnerProcess"]


@dataclass(frozen=True)
class RunnerKey:
    """What makes two databases share a runner: the same project in the same interpreter."""

    python: tuple[str, ...]
    ini: Path
    section: str


@dataclass
class RunnerOptions:
    """Timeouts, and the environment runners start with (secrets of migctl left out)."""

    start_timeout: float = 60.0
    request_timeout: float = 30.0
    environ: Mapping[str, str] = field(default_factory=dict)


class RunnerProcess(LinkedProcess):
    """One runner: forked by its interpreter's template on first use, again after it died or
    was killed for hanging. One request at a time."""

    def __init__(self, key: RunnerKey, options: RunnerOptions, template: RunnerTemplate) -> None:
        self.key, self.options, self.template = key, options, template
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._link: Link | None = None
        self._output: Output | None = None
        self._ids = itertools.count(1)
        self.info: RunnerInfo | None = None

    @property
    def label(self) -> str:
        return f"{' '.join(self.key.python)} for {self.key.ini}"

    def request(
        self, op: str, *, timeout: float | None = None, fds: Sequence[int] = (), **params: Any
    ) -> Any:
        """Send one request and wait for its answer; MigctlError when it fails or hangs."""
        limit = self.options.request_timeout if timeout is None else timeout
        if not self._lock.acquire(timeout=limit):
            raise self._unavailable(f"stayed busy for {limit:g} s")
        try:
            self._ensure_started()
            assert self._link is not None
            message = {"id": next(self._ids), "op": op, **params}
            try:
                reply = self._link.request(message, fds, limit)
            except LinkBroken as exc:
                raise self._broken(exc) from None
        finally:
            self._lock.release()
        if "error" in reply:
            raise error_from_wire(reply["error"])
        return reply.get("result")

    def ensure_started(self) -> RunnerInfo:
        with self._lock:
            self._ensure_started()
            assert self.info is not None
            return self.info

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _ensure_started(self) -> None:
        if self._link is not None and not self._link.closed_by_peer():
            return
        self._stop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        output_read, output_write = os.pipe()
        try:
            self._pid = self.template.spawn(
                self.key.ini, self.key.section, theirs.fileno(), output_write
            )
        except MigctlError as exc:
            mine.close()
            os.close(output_read)
            raise ProjectUnavailableError(exc.detail, path=None) from None
        finally:
            theirs.close()
            os.close(output_write)
        self._link = Link(mine)
        self._output = Output.of_descriptor(output_read, lambda: self.label)
        self.info = self._hello()

    def _hello(self) -> RunnerInfo:
        assert self._link is not None
        try:
            hello = self._link.receive(self.options.start_timeout, waiting_for="to start")
        except LinkBroken as exc:
            raise self._broken(exc) from None
        return runner_info(hello)

    def _stop(self) -> int | None:
        """Kill the runner if it lives; how it ended, as far as its template knows."""
        pid, self._pid = self._pid, None
        self._close_link()
        if pid is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        code = self.template.exit_code(pid)
        if self._output is not None:
            self._output.finish()
        return code


class RunnerPool:
    """The runners of one migctl process: a template per interpreter, a runner per project."""

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self._runners: dict[RunnerKey, RunnerProcess] = {}
        self._lock = threading.Lock()

    def runner(self, key: RunnerKey) -> RunnerProcess:
        with self._lock:
            found = self._runners.get(key)
            if found is None:
                options = self.options
                template = template_for(key.python, options.environ, options.start_timeout)
                found = self._runners[key] = RunnerProcess(key, options, template)
            return found

    def close(self) -> None:
        """Stop this pool's runners (the templates stay, for the process's other pools)."""
        with self._lock:
            runners, self._runners = list(self._runners.values()), {}
        for runner in runners:
            runner.close()


def runner_environ(inherited: Mapping[str, str]) -> dict[str, str]:
    """What a runner starts with: `inherited` (Settings.runner_environ, without migctl's own
    settings and URL variables), and PYTHONHASHSEED=0.

    Alembic picks which version row to UPDATE when it unmerges a merge point by iterating a
    set of strings: one seed makes such previews repeatable, and equal to
    `PYTHONHASHSEED=0 alembic ... --sql`.
    """
    return {**inherited, "PYTHONHASHSEED": "0", "PYTHONUNBUFFERED": "1"}
