"""The runner's loop: answer migctl's requests one at a time, on a private socket."""

from __future__ import annotations

import contextlib
import os
import platform
import socket
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .channel import Channel, Message

if TYPE_CHECKING:
    from .project import Project

PROTOCOL_VERSION = 1
ALEMBIC_FLOOR = (1, 10)
Handler = Callable[["Project", Message, "list[int]", Channel], Any]


def main() -> None:
    """argv: <runner dir> <socket fd>. Starts as the interpreter's template, which forks a
    runner per project (template.py). stdout becomes stderr: prints cannot garble us."""
    fd = int(sys.argv[2])
    os.dup2(2, 1)
    sys.stdin.close()
    channel = Channel(socket.socket(fileno=fd))
    hello = _hello()
    channel.send(hello)
    if hello["problem"] is None:
        from .template import serve_template  # alembic and SQLAlchemy are known to be there

        serve_template(channel, hello)


def _hello() -> Message:
    """Who we are, and what in this environment keeps us from serving, if anything."""
    hello: Message = {
        "event": "hello",
        "protocol": PROTOCOL_VERSION,
        "pid": os.getpid(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "alembic": None,
        "sqlalchemy": None,
        "problem": None,
    }
    try:
        import sqlalchemy

        hello["sqlalchemy"] = sqlalchemy.__version__
        import alembic

        hello["alembic"] = alembic.__version__
    except ImportError as exc:
        hello["problem"] = f"{exc} (install alembic and SQLAlchemy in that environment)"
        return hello
    if _version_tuple(alembic.__version__) < ALEMBIC_FLOOR:
        hello["problem"] = (
            f"alembic {alembic.__version__} is older than 1.10, the oldest migctl drives"
        )
    return hello


def serve(channel: Channel, project: Project) -> None:
    children: set[int] = set()
    while True:
        message, fds = channel.receive_with_fds(2)
        if message is None:
            return  # migctl closed the socket or died: nothing left to serve
        _reap(children)
        reply = _answer(project, message, fds, channel)
        if message.get("op") == "job" and "result" in reply:
            children.add(int(reply["result"]["pid"]))
        channel.send(reply)


def _answer(project: Project, message: Message, fds: list[int], channel: Channel) -> Message:
    import sqlalchemy as sa

    from . import state
    from .errors import RunnerError

    reply: Message = {"id": message.get("id")}
    handler = HANDLERS.get(str(message.get("op")))
    try:
        if handler is None:
            raise RunnerError("runner-protocol", f"Unknown request {message.get('op')!r}.")
        reply["result"] = handler(project, message, fds, channel)
    except RunnerError as exc:
        reply["error"] = exc.as_message()
    except sa.exc.SQLAlchemyError as exc:
        reply["error"] = state.unavailable(exc, str(message.get("database"))).as_message()
    except Exception as exc:  # a bug of ours: say what, keep serving
        traceback.print_exc()
        reply["error"] = {"code": "runner-failed", "detail": f"{type(exc).__name__}: {exc}"}
    return reply


def _load(project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from .errors import RunnerError

    with contextlib.suppress(RunnerError):  # export() says why, beside the files to watch
        project.loaded(message["signature"])
    return project.export()


def _discover(project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import state

    return state.discover(project, message)


def _heads(_project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import state

    return state.read_heads(message)


def _preview(project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import preview

    return preview.render(project, message)


def _drift(project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import drift

    return drift.check(project, message)


def _locks(_project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import lockinfo

    return lockinfo.inspect(message)


def _release_lease(_project: Project, message: Message, _fds: list[int], _channel: Channel) -> Any:
    from . import lockinfo

    return lockinfo.release_lease(message)


def _job(project: Project, message: Message, fds: list[int], channel: Channel) -> Any:
    from . import job

    return {"pid": job.start(project, message, fds, channel)}


HANDLERS: dict[str, Handler] = {
    "load": _load,
    "discover": _discover,
    "heads": _heads,
    "preview": _preview,
    "job": _job,
    "drift": _drift,
    "locks": _locks,
    "release-lease": _release_lease,
}


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:2]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
