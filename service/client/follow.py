"""Follow an operation to its end: server-sent events, resumed by id; else `?wait=` polling."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from service.client.exits import FINISHED
from service.client.sse import Event, events
from service.client.transport import TRANSPORT_ERRORS, ClientError, Server

POLL_SECONDS = 30  # each `?wait=` call; the server allows up to 60
STREAM_READ_SECONDS = 45.0  # keep-alives come every 15 s: silence this long is a dead link

BUSY = "too-many-streams"
AWAITING = "awaiting_approval"
NEVER_QUEUED = ("rejected", "expired", "cancelled")

OnEvent = Callable[[Event], None]


def follow(server: Server, operation_id: int, deadline: float, on_event: OnEvent) -> Any:
    """The operation once it has ended, or None when `deadline` (monotonic) came first.

    A stream cut short (a server restart, a deploy) resumes after the last event seen; when
    the server has no free stream, polling takes over and reports the steps it finds.
    """
    last = 0
    while time.monotonic() < deadline:
        try:
            last, ended = _stream(server, operation_id, last, deadline, on_event)
        except _NoStream:
            return _poll(server, operation_id, deadline, on_event)
        if ended:
            return _operation(server, operation_id, deadline)
    return None


class _NoStream(Exception):
    """The server cannot stream now (too many streams, or a server without streams)."""


def _stream(
    server: Server, operation_id: int, last: int, deadline: float, on_event: OnEvent
) -> tuple[int, bool]:
    """Read one stream; the last event id seen and whether the operation ended."""
    headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
    try:
        response = server.open(
            "GET",
            f"/operations/{operation_id}/events",
            headers=headers,
            deadline=deadline,
            timeout=min(STREAM_READ_SECONDS, max(1.0, deadline - time.monotonic())),
            final=frozenset({BUSY}),
        )
    except ClientError as exc:
        # Busy, or a server older than event streams (its 404 is Flask's `not-found`).
        if exc.code in (BUSY, "not-found"):
            raise _NoStream from exc
        raise
    try:
        with response:
            for event in events(response):
                last = event.id
                on_event(event)
                if event.data.get("status") in FINISHED:
                    return last, True
                if time.monotonic() >= deadline:
                    break
    except TRANSPORT_ERRORS:
        pass  # cut short: resume from `last`
    return last, False


def _poll(server: Server, operation_id: int, deadline: float, on_event: OnEvent) -> Any:
    """`GET /operations/{id}?wait=` until it ends; the steps recorded so far are reported
    each time (the reporter prints each once), and the approval it awaits and gets. The first
    call does not wait, so that an operation awaiting approval says so at once."""
    wait, status = 0, ""
    while True:
        answer = server.call("GET", f"/operations/{operation_id}?wait={wait}", deadline=deadline)
        operation = answer.json()
        status = _report_status(status, operation, on_event)
        wait = max(0, min(POLL_SECONDS, int(deadline - time.monotonic())))
        for step in operation.get("steps") or []:
            on_event(Event(0, "step.finished", _as_event(operation, step)))
        if operation["status"] in FINISHED:
            return operation
        if time.monotonic() >= deadline:
            return None
        if "Retry-After" in answer.headers:  # no free waiting slot: do not spin
            time.sleep(min(float(answer.headers["Retry-After"]), 5.0))


def _report_status(seen: str, operation: dict[str, Any], on_event: OnEvent) -> str:
    """The awaiting approval and queued events a stream would have carried; the status now."""
    status = str(operation["status"])
    if status == AWAITING and seen != AWAITING:
        on_event(Event(0, f"operation.{AWAITING}", {"status": status}))
    elif seen == AWAITING and status not in (AWAITING, *NEVER_QUEUED):
        on_event(Event(0, "operation.queued", {"status": "queued"}))
    return status


def _as_event(operation: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    return {
        "status": operation["status"],
        "done": step["position"],
        "total": len(operation.get("planned_steps") or []),
        "eta_seconds": None,
        "step": step,
    }


def _operation(server: Server, operation_id: int, deadline: float) -> Any:
    return server.call("GET", f"/operations/{operation_id}", deadline=deadline).json()
