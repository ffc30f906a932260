"""HTTP to a migctl server with the standard library: retries transport errors and 503s."""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import IO, Any

from service.client.exits import Exit

TRANSPORT_ERRORS = (OSError, http.client.HTTPException)  # URLError is an OSError
RETRIED_STATUSES = frozenset({502, 503, 504})  # a proxy or a server that is (re)starting
# 503 problems that do not clear by themselves (a broken env.py waits for a fix): not retried.
LASTING = frozenset({"project-unavailable"})


class ClientError(Exception):
    """Ends the command with `exit_code`; `problem` is the server's answer, if any."""

    def __init__(
        self, message: str, exit_code: Exit, problem: Any = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.problem = problem
        self.status = status

    @property
    def code(self) -> str | None:
        """The problem's `code`, when the server answered with one."""
        return self.problem.get("code") if isinstance(self.problem, dict) else None


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Server:
    """One server, as the command's options name it; `patience` bounds retries (seconds)."""

    url: str
    token: str | None = None
    on_behalf_of: str | None = None
    patience: float = 60.0
    log: IO[str] = field(default_factory=lambda: sys.stderr)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        timeout: float = 75.0,
    ) -> Answer:
        """The answer, read whole; ClientError for a 4xx (REFUSED) or when retries run out."""
        response = self.open(
            method, path, body=body, headers=headers, deadline=deadline, timeout=timeout
        )
        with response:
            return Answer(response.status, dict(response.headers), response.read())

    def open(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        timeout: float = 75.0,
        final: frozenset[str] = frozenset(),
    ) -> http.client.HTTPResponse:
        """A 2xx response, open (a stream is read as it comes), after retries; problems whose
        code is in `final` are not retried."""
        deadline = deadline if deadline is not None else time.monotonic() + self.patience
        delay = 0.5
        while True:
            problem: ClientError | None = None
            try:
                return self._once(method, path, body, headers or {}, timeout)
            except urllib.error.HTTPError as exc:
                answer = Answer(exc.code, dict(exc.headers), exc.read())
                problem = _refusal(method, path, answer)
                if exc.code not in RETRIED_STATUSES or problem.code in final | LASTING:
                    raise problem from None
                reason = f"HTTP {exc.code}" + (f" {problem.code}" if problem.code else "")
                wait = _retry_after(answer, delay)
            except TRANSPORT_ERRORS as exc:
                reason, wait = f"{type(exc).__name__}: {exc}", delay
            if time.monotonic() + wait > deadline:
                if problem is not None and problem.code:
                    raise problem
                raise ClientError(f"{self.url} unreachable: {reason}", Exit.UNREACHABLE)
            print(f"migctl: {reason}; retrying in {wait:g} s", file=self.log, flush=True)
            time.sleep(wait)
            delay = min(delay * 2, 10.0)

    def _once(
        self, method: str, path: str, body: Any, headers: Mapping[str, str], timeout: float
    ) -> http.client.HTTPResponse:
        sent = {"Accept": "application/json", "User-Agent": "migctl-client", **headers}
        if self.token:
            sent["Authorization"] = f"Bearer {self.token}"
        if self.on_behalf_of:
            sent["X-On-Behalf-Of"] = self.on_behalf_of
        data = None
        if body is not None:
            data, sent["Content-Type"] = json.dumps(body).encode(), "application/json"
        url = self.url.rstrip("/") + "/api/v1" + path
        request = urllib.request.Request(url, data=data, headers=sent, method=method)
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
        return response


def _retry_after(answer: Answer, default: float) -> float:
    value = answer.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else default


def _refusal(method: str, path: str, answer: Answer) -> ClientError:
    try:
        problem = answer.json()
    except ValueError:
        problem = None
    detail = problem.get("detail") if isinstance(problem, dict) else None
    code = problem.get("code") if isinstance(problem, dict) else None
    if answer.status == 503 and code:  # unavailable, and the server says why
        message = f"{method} {path}: unavailable (503 {code}): {detail or ''}{_where(problem)}"
        return ClientError(message, Exit.UNAVAILABLE, problem, answer.status)
    if answer.status >= 500:  # a bug on the server, or a proxy: not a refusal
        message = f"{method} {path}: server error {answer.status}: {detail or ''}"
        return ClientError(message, Exit.UNREACHABLE, problem, answer.status)
    message = f"refused ({answer.status} {code or ''}): {detail or method + ' ' + path}"
    return ClientError(message, Exit.REFUSED, problem, answer.status)


def _where(problem: dict[str, Any]) -> str:
    """` (path line N)` when the problem names a file of the project."""
    if not problem.get("path"):
        return ""
    line = f" line {problem['line']}" if problem.get("line") else ""
    return f" ({problem['path']}{line})"


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
