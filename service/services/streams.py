"""Follow operation events as they are committed: what a server-sent event stream sends."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import sqlalchemy as sa

from service.errors import OperationNotFoundError
from service.lifecycle import Status
from service.services.access import ANONYMOUS, Principal
from service.store import events
from service.store import operations as ops
from service.store.db import ControlStore
from service.store.events import EventRecord as EventRecord

POLL_SECONDS = 0.25  # one indexed SELECT; a pipeline hears of a step within this


@dataclass(frozen=True)
class Follow:
    """What to follow: one operation, or every operation of `databases` (None: all)."""

    after: int = 0
    operation_id: int | None = None
    databases: frozenset[str] | None = None
    lifetime: float = 300.0
    keepalive: float = 15.0
    stop: threading.Event = field(default_factory=threading.Event)  # set: end the stream now


def check_operation(store: ControlStore, operation_id: int, principal: Principal) -> None:
    """OperationNotFoundError unless the operation exists and `principal` may see it."""
    with store.transaction() as connection:
        record = ops.get(connection, operation_id)
    if record is None or not principal.sees(record.database):
        raise OperationNotFoundError(operation_id)


def newest_event_id(store: ControlStore) -> int:
    """Where a stream that only wants what happens from now on starts."""
    with store.transaction() as connection:
        return events.last_id(connection)


def follow(
    store: ControlStore, what: Follow, principal: Principal = ANONYMOUS
) -> Iterator[EventRecord | None]:
    """Events after `what.after`, oldest first, as they come; None when a keep-alive is due.

    Ends when the lifetime is over or `what.stop` is set, or once the followed operation has
    ended and its events are all sent.
    """
    databases = _visible(what.databases, principal)
    deadline = time.monotonic() + what.lifetime
    quiet_until = time.monotonic() + what.keepalive
    last = what.after
    while time.monotonic() < deadline and not what.stop.is_set():
        with store.transaction() as connection:
            # Status first: an end seen here has its event committed with it, so the
            # SELECT of events that follows sees that event too.
            ended = what.operation_id is not None and _ended(connection, what.operation_id)
            batch = events.after(
                connection, last, operation_id=what.operation_id, databases=databases
            )
        if ended and not batch:
            return
        for event in batch:
            last = event.id
            yield event
        if batch:
            quiet_until = time.monotonic() + what.keepalive
            continue
        if time.monotonic() >= quiet_until:
            quiet_until = time.monotonic() + what.keepalive
            yield None
        what.stop.wait(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _ended(connection: sa.Connection, operation_id: int) -> bool:
    record = ops.get(connection, operation_id)
    return record is None or Status(record.status).finished


def _visible(asked: frozenset[str] | None, principal: Principal) -> frozenset[str] | None:
    if principal.databases is None:
        return asked
    return principal.databases if asked is None else asked & principal.databases
