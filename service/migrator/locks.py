"""The per-database migration lock: a PostgreSQL session advisory lock, or a file lock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from service.errors import DatabaseLockedError


def advisory_key(identity: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(identity.encode()).digest()[:8], "big", signed=True)


@contextmanager
def migration_lock(url: str, connection: sa.Connection, wait_seconds: float) -> Iterator[None]:
    """Hold the database's migration lock for the block; DatabaseLockedError after waiting.

    On PostgreSQL the session lock lives on `connection` (the one handed to env.py): if the
    process dies the server releases it at once, and Alembic's COMMITs do not release it.
    """
    backend = make_url(url).get_backend_name()
    if backend == "postgresql":
        # Advisory locks belong to one database already: one constant key, however the
        # host is spelled (DNS name, IP, a pooler) in different configurations.
        with _advisory_lock(connection, advisory_key("migctl:migration"), wait_seconds):
            yield
    elif backend == "sqlite":
        with _file_lock(make_url(url).database or "", wait_seconds):
            yield
    else:  # no lock of this database's own: the control database's one-running rule remains
        yield


@contextmanager
def _advisory_lock(connection: sa.Connection, key: int, wait_seconds: float) -> Iterator[None]:
    try_lock = sa.text("SELECT pg_try_advisory_lock(:k)")
    deadline = time.monotonic() + wait_seconds
    while not connection.execute(try_lock, {"k": key}).scalar():
        connection.commit()
        if time.monotonic() >= deadline:
            raise DatabaseLockedError(f"Another migration holds the lock (key {key}).")
        time.sleep(0.5)
    connection.commit()
    try:
        yield
    finally:
        # A broken connection released the lock with it; never hide the real error.
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if not connection.closed:
                connection.rollback()
                connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                connection.commit()


@contextmanager
def _file_lock(database: str, wait_seconds: float) -> Iterator[None]:
    path = Path(f"{database}.migctl-lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_seconds
    try:
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DatabaseLockedError(f"Another migration holds {path}.") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(descriptor)  # closing releases the flock
