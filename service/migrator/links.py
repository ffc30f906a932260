"""A socket to a runner or template: whole JSON lines each way, with deadlines; its output."""

from __future__ import annotations

import collections
import json
import logging
import os
import select
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from service.errors import MigctlError, ProjectUnavailableError

logger = logging.getLogger("service.runner")
OUTPUT_KEPT = 40


class LinkBroken(Exception):
    """The other end closed, hung past its deadline, or spoke something else than JSON lines."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Link:
    """One end of a socketpair; not thread-safe: its owner serialises requests."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        try:
            if fds:
                socket.send_fds(self.sock, [data], list(fds))
            else:
                self.sock.sendall(data)
        except OSError:
            raise LinkBroken("stopped taking requests") from None

    def receive(self, limit: float, waiting_for: str) -> dict[str, Any]:
        deadline = time.monotonic() + limit
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LinkBroken(f"did not answer within {limit:g} s ({waiting_for})")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                raise LinkBroken("exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            found: dict[str, Any] = json.loads(line)
        except ValueError:
            raise LinkBroken("spoke garbage instead of the runner protocol") from None
        return found

    def request(self, message: dict[str, Any], fds: Sequence[int], limit: float) -> Any:
        """Send, then wait for the answer with the same id."""
        self.send(message, fds)
        while True:
            reply = self.receive(limit, waiting_for=f"to answer {message.get('op')!r}")
            if reply.get("id") == message.get("id"):
                return reply

    def closed_by_peer(self) -> bool:
        """True when the other end has gone (its process died): no request can succeed."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def close(self) -> None:
        self.sock.close()


class LinkedProcess:
    """A process migctl speaks to over a Link: how its failures are told to the caller."""

    _link: Link | None = None
    _output: Output | None = None

    @property
    def label(self) -> str:
        raise NotImplementedError

    def _stop(self) -> int | None:
        """Stop the process; its exit code when known."""
        raise NotImplementedError

    def _close_link(self) -> None:
        if self._link is not None:
            self._link.close()
            self._link = None

    def _broken(self, exc: LinkBroken) -> MigctlError:
        """Stop it, and say why the request failed (its last words when it exited)."""
        code = self._stop()
        reason = exc.what
        if reason == "exited":
            reason = f"exited{exit_reason(code)}{self._output.last() if self._output else ''}"
        return self._unavailable(reason)

    def _unavailable(self, what: str) -> MigctlError:
        return ProjectUnavailableError(f"The runner ({self.label}) {what}.", path=None)


def exit_reason(code: int | None) -> str:
    if code is None:
        return ""
    return f" with signal {-code}" if code < 0 else f" with code {code}"


class Output:
    """A process's stderr: each line logged at DEBUG, the last ones kept to explain a death."""

    def __init__(self, stream: IO[bytes], label: Callable[[], str]) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_KEPT)
        self._thread = threading.Thread(
            target=self._follow, args=(stream, label), name="runner-output", daemon=True
        )
        self._thread.start()

    @classmethod
    def of_descriptor(cls, descriptor: int, label: Callable[[], str]) -> Output:
        return cls(os.fdopen(descriptor, "rb"), label)

    def last(self) -> str:
        lines = [line for line in self.lines if line.strip()]
        return f": {lines[-1].strip()}" if lines else ""

    def finish(self) -> None:
        """Wait (briefly) for the last words of a process that has ended."""
        self._thread.join(timeout=1)

    def _follow(self, stream: IO[bytes], label: Callable[[], str]) -> None:
        with stream:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip()
                self.lines.append(line)
                logger.debug("%s: %s", label(), line)
