"""A template: one per interpreter, with alembic and SQLAlchemy imported, forking runners.

Starting Python and importing alembic and SQLAlchemy takes most of a second; forking a
process that has done so takes milliseconds. migctl asks the template for a runner per
project, and for a new one whenever a runner died or was killed for hanging.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from .channel import Channel, Message
from .process import die_with_parent, exit_code, output_to

_EXIT_WAIT_SECONDS = 2.0


def serve_template(channel: Channel, hello: Message) -> None:
    exits: dict[int, int | None] = {}  # runner pid -> its exit code once reaped
    while True:
        message, fds = channel.receive_with_fds(2)
        if message is None:
            return  # migctl closed the socket or died: its runners die with us
        reply: Message = {"id": message.get("id")}
        if message.get("op") == "spawn" and len(fds) == 2:
            pid = _spawn(channel, hello, message, fds)
            exits[pid] = None
            reply["result"] = {"pid": pid}
        elif message.get("op") == "exit_code":
            reply["result"] = {"code": _exit_code(exits, int(message["pid"]))}
        else:
            for descriptor in fds:
                os.close(descriptor)
            reply["error"] = {"code": "runner-protocol", "detail": "unknown template request"}
        _reap(exits)
        channel.send(reply)


def _spawn(template: Channel, hello: Message, message: Message, fds: list[int]) -> int:
    runner_fd, output_fd = fds
    pid = os.fork()
    if pid == 0:  # the runner: never returns into the template's loop
        try:
            template.close()
            die_with_parent()
            output_to(output_fd)
            _become_runner(Channel(socket.socket(fileno=runner_fd)), hello, message)
        finally:
            os._exit(0)
    os.close(runner_fd)
    os.close(output_fd)
    return pid


def _become_runner(channel: Channel, hello: Message, message: Message) -> None:
    from .main import serve
    from .project import Project

    channel.send({**hello, "pid": os.getpid()})
    serve(channel, Project(message["ini"], message["section"]))


def _reap(exits: dict[int, Any]) -> None:
    for pid in [pid for pid, code in exits.items() if code is None]:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            exits[pid] = exit_code(status)
    if len(exits) > 1000:  # forget long-gone runners nobody asked about
        for pid in [pid for pid, code in exits.items() if code is not None][:500]:
            del exits[pid]


def _exit_code(exits: dict[int, int | None], pid: int) -> int | None:
    """How a runner ended; it may still be on its way out when migctl asks."""
    deadline = time.monotonic() + _EXIT_WAIT_SECONDS
    while exits.get(pid) is None and time.monotonic() < deadline:
        _reap(exits)
        if exits.get(pid) is None:
            time.sleep(0.01)
    return exits.get(pid)
