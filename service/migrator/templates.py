"""Runner templates: one process per interpreter, with alembic imported, that forks runners."""

from __future__ import annotations

import itertools
import logging
import os
import queue
import socket
import subprocess
import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.errors import MigctlError
from service.migrator.links import Link, LinkBroken, LinkedProcess, Output

logger = logging.getLogger("service.runner")

RUNNER_DIR = Path(__file__).resolve().parent.parent / "runner"
# Loads the runner package by path under its own name, so that a project's own `service`
# package (a common name) can neither shadow it nor be shadowed by it.
BOOTSTRAP = (
    "import sys, importlib.util as u\n"
    "d = sys.argv[1]\n"
    "s = u.spec_from_file_location('migctl_runner', d + '/__init__.py', "
    "submodule_search_locations=[d])\n"
    "m = u.module_from_spec(s); sys.modules['migctl_runner'] = m; s.loader.exec_module(m)\n"
    "sys.path[:] = [p for p in sys.path if p not in ('', '.')]\n"
    "import migctl_runner.main as r; r.main()\n"
)


@dataclass(frozen=True)
class RunnerInfo:
    """What a runner (or its template) said about itself when it started."""

    pid: int
    python: str
    executable: str
    alembic: str
    sqlalchemy: str


def runner_info(hello: Mapping[str, Any]) -> RunnerInfo:
    return RunnerInfo(
        pid=int(hello["pid"]),
        python=str(hello["python"]),
        executable=str(hello["executable"]),
        alembic=str(hello["alembic"]),
        sqlalchemy=str(hello["sqlalchemy"]),
    )


class RunnerTemplate(LinkedProcess):
    """The template of one interpreter: started on first use, restarted when it died."""

    def __init__(self, python: tuple[str, ...], environ: Mapping[str, str], timeout: float) -> None:
        self.python, self.environ, self.timeout = python, environ, timeout
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._link: Link | None = None
        self._output: Output | None = None
        self._ids = itertools.count(1)
        self.info: RunnerInfo | None = None

    @property
    def label(self) -> str:
        return " ".join(self.python)

    def spawn(self, ini: Path, section: str, runner_fd: int, output_fd: int) -> int:
        """Fork a runner for the project; it speaks on `runner_fd`, writes to `output_fd`."""
        message = {"op": "spawn", "ini": str(ini), "section": section}
        return int(self._request(message, [runner_fd, output_fd])["pid"])

    def exit_code(self, pid: int) -> int | None:
        """How one of its runners ended (None when unknown)."""
        try:
            found = self._request({"op": "exit_code", "pid": pid}, [])
        except MigctlError:
            return None
        code = found.get("code")
        return None if code is None else int(code)

    def close(self) -> None:
        with self._lock:
            self._stop()

    def _request(self, message: dict[str, Any], fds: list[int]) -> Any:
        with self._lock:
            self._ensure_started()
            assert self._link is not None
            try:
                reply = self._link.request({"id": next(self._ids), **message}, fds, self.timeout)
            except LinkBroken as exc:
                raise self._broken(exc) from None
        if "error" in reply:
            raise self._unavailable(str(reply["error"].get("detail")))
        return reply["result"]

    def _ensure_started(self) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        self._stop()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [*self.python, "-c", BOOTSTRAP, str(RUNNER_DIR), str(theirs.fileno())]
        try:
            self._process = SPAWNER.popen(argv, pass_fds=[theirs.fileno()], env=dict(self.environ))
        except OSError as exc:
            mine.close()
            raise self._unavailable(f"cannot start: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        assert self._process.stderr is not None
        self._link, self._output = Link(mine), Output(self._process.stderr, lambda: self.label)
        self.info = self._hello()

    def _hello(self) -> RunnerInfo:
        assert self._link is not None
        try:
            hello = self._link.receive(self.timeout, waiting_for="to start")
        except LinkBroken as exc:
            raise self._broken(exc) from None
        if hello.get("event") != "hello":
            self._stop()
            raise self._unavailable("spoke something else than migctl's runner protocol")
        if hello.get("problem"):
            self._stop()
            raise self._unavailable(f"cannot serve: {hello['problem']}")
        info = runner_info(hello)
        logger.info(
            "runner template %d started: %s (Python %s, alembic %s, SQLAlchemy %s)",
            info.pid,
            self.label,
            info.python,
            info.alembic,
            info.sqlalchemy,
        )
        return info

    def _stop(self) -> int | None:
        process, self._process = self._process, None
        self._close_link()
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        if self._output is not None:
            self._output.finish()
        return code


_TEMPLATES: dict[tuple[tuple[str, ...], frozenset[tuple[str, str]], float], RunnerTemplate] = {}
_TEMPLATES_LOCK = threading.Lock()


def template_for(
    python: tuple[str, ...], environ: Mapping[str, str], timeout: float
) -> RunnerTemplate:
    """The process's template of an interpreter (and environment): shared by every pool.

    Templates hold nothing of a project, so sharing them is safe, and a registry built
    again (a test, a reload) forks its runners at once instead of starting Python anew.
    They end with this process (PR_SET_PDEATHSIG, and their socket closing).
    """
    key = (python, frozenset(environ.items()), timeout)
    with _TEMPLATES_LOCK:
        found = _TEMPLATES.get(key)
        if found is None:
            found = _TEMPLATES[key] = RunnerTemplate(python, environ, timeout)
        return found


class _Spawner:
    """Starts child processes from one long-lived thread of this process.

    PR_SET_PDEATHSIG fires when the *thread* that forked a child ends, not the process: a
    template started from a short-lived request thread (the Flask development server makes
    one per request) would be killed with it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.Queue[tuple[list[str], dict[str, Any], Future[Any]]] = queue.Queue()
        self._owner: int | None = None

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._owner != os.getpid():  # never started, or this is a forked child
                self._requests = queue.Queue()
                threading.Thread(target=self._serve, name="migctl-spawner", daemon=True).start()
                self._owner = os.getpid()
        done: Future[subprocess.Popen[bytes]] = Future()
        options = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.DEVNULL,
            "stderr": subprocess.PIPE,
            "preexec_fn": die_with_parent,
            **kwargs,
        }
        self._requests.put((argv, options, done))
        return done.result()

    def _serve(self) -> None:
        requests = self._requests
        while True:
            argv, kwargs, done = requests.get()
            try:
                done.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # handed to the caller, who raises it
                done.set_exception(exc)


SPAWNER = _Spawner()


def die_with_parent() -> None:
    """In a child: SIGKILL when migctl dies, so no template, runner or job outlives it."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
