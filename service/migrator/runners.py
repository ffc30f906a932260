"""Project runners: one process per project and interpreter, spoken to over a private socket."""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from service.errors import MigctlError, ProjectUnavailableError, error_from_wire

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
_OUTPUT_KEPT = 40


@dataclass(frozen=True)
class RunnerKey:
    """What makes two databases share a runner: the same project in the same interpreter."""

    python: tuple[str, ...]
    ini: Path
    section: str


@dataclass(frozen=True)
class RunnerInfo:
    """What a runner said about itself when it started."""

    pid: int
    python: str
    executable: str
    alembic: str
    sqlalchemy: str


@dataclass
class RunnerOptions:
    """Timeouts, and the environment a runner starts with (secrets of migctl left out)."""

    start_timeout: float = 60.0
    request_timeout: float = 30.0
    environ: Mapping[str, str] = field(default_factory=dict)


class RunnerProcess:
    """One runner: started on first use, restarted after it dies, killed when it hangs."""

    def __init__(self, key: RunnerKey, options: RunnerOptions) -> None:
        self.key, self.options = key, options
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._buffer = b""
        self._ids = itertools.count(1)
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_KEPT)
        self.info: RunnerInfo | None = None
        self._follower: threading.Thread | None = None

    @property
    def label(self) -> str:
        return f"{' '.join(self.key.python)} for {self.key.ini}"

    def request(
        self, op: str, *, timeout: float | None = None, fds: Sequence[int] = (), **params: Any
    ) -> Any:
        """Send one request and wait for its answer; MigctlError when it fails or hangs."""
        limit = self.options.request_timeout if timeout is None else timeout
        if not self._lock.acquire(timeout=limit):
            raise ProjectUnavailableError(
                f"The runner ({self.label}) stayed busy for {limit:g} s.", path=None
            )
        try:
            self._ensure_started()
            message = {"id": next(self._ids), "op": op, **params}
            reply = self._exchange(message, fds, limit)
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
        if self._process is not None and self._process.poll() is None:
            return
        self._stop()
        self._start()

    def _start(self) -> None:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        argv = [
            *self.key.python,
            "-c",
            BOOTSTRAP,
            str(RUNNER_DIR),
            str(theirs.fileno()),
            str(self.key.ini),
            self.key.section,
        ]
        try:
            process = SPAWNER.popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=[theirs.fileno()],
                env=dict(self.options.environ),
                preexec_fn=die_with_parent,
            )
        except OSError as exc:
            mine.close()
            raise self._unavailable(f"cannot start: {exc.strerror or exc}") from None
        finally:
            theirs.close()
        self._process, self._socket, self._buffer = process, mine, b""
        self._output.clear()
        self._follower = _follow_output(process, self._output, self.label)
        self.info = self._hello()

    def _hello(self) -> RunnerInfo:
        hello = self._receive(self.options.start_timeout, waiting_for="to start")
        if hello.get("event") != "hello":
            self._stop()
            raise self._unavailable("spoke something else than migctl's runner protocol")
        if hello.get("problem"):
            self._stop()
            raise self._unavailable(f"cannot serve: {hello['problem']}")
        info = RunnerInfo(
            pid=int(hello["pid"]),
            python=str(hello["python"]),
            executable=str(hello["executable"]),
            alembic=str(hello["alembic"]),
            sqlalchemy=str(hello["sqlalchemy"]),
        )
        logger.info(
            "runner %d started: %s (Python %s, alembic %s, SQLAlchemy %s)",
            info.pid,
            self.label,
            info.python,
            info.alembic,
            info.sqlalchemy,
        )
        return info

    def _exchange(self, message: dict[str, Any], fds: Sequence[int], limit: float) -> Any:
        assert self._socket is not None
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            if fds:
                socket.send_fds(self._socket, [data], list(fds))
            else:
                self._socket.sendall(data)
        except OSError:
            self._stop()
            raise self._unavailable("stopped taking requests") from None
        while True:
            reply = self._receive(limit, waiting_for=f"to answer {message['op']!r}")
            if reply.get("id") == message["id"]:
                return reply

    def _receive(self, limit: float, waiting_for: str) -> dict[str, Any]:
        assert self._socket is not None
        deadline = time.monotonic() + limit
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._stop()
                raise self._unavailable(f"did not answer within {limit:g} s ({waiting_for})")
            self._socket.settimeout(remaining)
            try:
                chunk = self._socket.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                code = self._stop()
                raise self._unavailable(f"exited{_exit_reason(code)}{self._last_output()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            found: dict[str, Any] = json.loads(line)
        except ValueError:
            self._stop()
            raise self._unavailable("spoke garbage instead of the runner protocol") from None
        return found

    def _stop(self) -> int | None:
        process, self._process = self._process, None
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if process is None:
            return None
        if process.poll() is None:
            process.kill()
        code = process.wait()
        if self._follower is not None:
            self._follower.join(timeout=1)  # it reads the runner's last words, then closes
        return code

    def _last_output(self) -> str:
        lines = [line for line in self._output if line.strip()]
        return f": {lines[-1].strip()}" if lines else ""

    def _unavailable(self, what: str) -> MigctlError:
        return ProjectUnavailableError(f"The runner ({self.label}) {what}.", path=None)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return ""
    return f" with signal {-code}" if code < 0 else f" with code {code}"


def _follow_output(
    process: subprocess.Popen[bytes], kept: collections.deque[str], label: str
) -> threading.Thread:
    """The runner's stderr (env.py's prints and logging): logged, and the last lines kept."""

    def follow() -> None:
        assert process.stderr is not None
        with process.stderr:
            for raw in process.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                kept.append(line)
                logger.debug("%s: %s", label, line)

    thread = threading.Thread(target=follow, name=f"runner-output-{process.pid}", daemon=True)
    thread.start()
    return thread


class _Spawner:
    """Starts child processes from one long-lived thread of this process.

    PR_SET_PDEATHSIG fires when the *thread* that forked a child ends, not the process: a
    runner started from a short-lived request thread (the Flask development server makes one
    per request) would be killed with it.
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
        self._requests.put((argv, kwargs, done))
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
    """In a child: SIGKILL when migctl dies, so no runner or job outlives its supervisor."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class RunnerPool:
    """The runners of one migctl process, one per project and interpreter, made on demand."""

    def __init__(self, options: RunnerOptions) -> None:
        self.options = options
        self._runners: dict[RunnerKey, RunnerProcess] = {}
        self._lock = threading.Lock()

    def runner(self, key: RunnerKey) -> RunnerProcess:
        with self._lock:
            found = self._runners.get(key)
            if found is None:
                found = self._runners[key] = RunnerProcess(key, self.options)
            return found

    def close(self) -> None:
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
