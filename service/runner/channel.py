"""JSON lines over a socket: one message a line, UTF-8, in each direction."""

from __future__ import annotations

import json
import socket
from typing import Any

Message = dict[str, Any]
_CHUNK = 65536


class Channel:
    """Reads and writes whole messages on a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, message: Message) -> None:
        data = json.dumps(message, separators=(",", ":"), default=str).encode("utf-8")
        self.sock.sendall(data + b"\n")

    def receive(self) -> Message | None:
        """The next message, or None at end of stream."""
        while b"\n" not in self._buffer:
            chunk = self.sock.recv(_CHUNK)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        found: Message = json.loads(line.decode("utf-8"))
        return found

    def receive_with_fds(self, max_fds: int) -> tuple[Message | None, list[int]]:
        """A message that may carry file descriptors (sent with socket.send_fds)."""
        if b"\n" in self._buffer:
            return self.receive(), []
        data, fds, _flags, _addr = socket.recv_fds(self.sock, _CHUNK, max_fds)
        if not data:
            return None, list(fds)
        self._buffer += data
        return self.receive(), list(fds)

    def close(self) -> None:
        self.sock.close()
