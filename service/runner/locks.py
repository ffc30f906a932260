"""A database's migration lock, held for a whole job: advisory, lease table, GET_LOCK or flock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from .errors import RunnerError

LOCK_NAME = "migctl:migration"
# One constant key: advisory locks belong to one database already, however its host is
# spelled (DNS name, IP, a pooler) in different configurations. Derived from LOCK_NAME as
# migctl always has, so versions of migctl running side by side exclude each other.
ADVISORY_KEY = int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big", signed=True)
LEASE_TABLE = "migctl_migration_lock"
LEASE_SECONDS = 30.0
POOLER_PROBES = 8


@contextlib.contextmanager
def pooler_probe(engine: Any, url: str, kind: str) -> Iterator[Future[Any] | None]:
    """The pooler check's second connection (advisory locks on PostgreSQL), opened while the
    job opens its own: one after the other, the two took 30 ms of each job's start."""
    if make_url(url).get_backend_name() != "postgresql" or kind == "table":
        yield None
        return
    with ThreadPoolExecutor(1, thread_name_prefix="pooler-probe") as pool:
        probe = pool.submit(engine.connect)
        try:
            yield probe
        finally:
            if probe.exception() is None:  # waits for it: never leave a connection behind
                probe.result().close()


@contextlib.contextmanager
def migration_lock(
    url: str, connection: Any, kind: str, wait_seconds: float, probe: Future[Any] | None = None
) -> Iterator[None]:
    """Hold the lock for the block; `database-locked` after waiting `wait_seconds`."""
    backend = make_url(url).get_backend_name()
    if backend == "postgresql" and kind == "table":
        with _lease(url, wait_seconds):
            yield
    elif backend == "postgresql":
        _refuse_transaction_pooler(connection, probe)
        with _advisory(connection, wait_seconds):
            yield
    elif backend in ("mysql", "mariadb"):
        with _named_lock(connection, wait_seconds):
            yield
    elif backend == "sqlite":
        with _file_lock(make_url(url).database or "", wait_seconds):
            yield
    else:  # no lock of this database's own: the control database's one-running rule remains
        yield


def _backend_pid(connection: Any) -> int:
    pid = connection.execute(sa.text("SELECT pg_backend_pid()")).scalar()
    connection.commit()
    return int(pid)


def _refuse_transaction_pooler(connection: Any, probe: Future[Any] | None) -> None:
    """A session lock through a transaction pooler lands on a server connection others reuse.

    A direct (or session-pooled) connection keeps one backend for its whole life, and no other
    connection can ever see that backend's pid. Through a transaction pooler (PgBouncer
    pool_mode=transaction hands out the most recently freed server connection), a second
    client connection that holds a transaction open gets the backend the migration connection
    just freed, or pushes the migration connection's next transaction onto another backend.
    Other clients' traffic through the pooler can hide both for one probe, so probe a few times.
    """
    other = probe.result() if probe is not None else connection.engine.connect()
    try:
        pooled = any(_changes_backend(connection, other) for _probe in range(POOLER_PROBES))
    finally:
        other.close()
    if pooled:
        raise RunnerError(
            "transaction-pooler",
            "The migration connection goes through a transaction pooler (PgBouncer "
            "pool_mode=transaction?): its transactions land on different server sessions, so "
            "a session advisory lock would leak. Give the database a direct connection for "
            "migrations (migration_url or migration_url_env in the databases file), or set "
            'lock = "table".',
        )


def _changes_backend(connection: Any, other: Any) -> bool:
    first = _backend_pid(connection)
    seen = other.execute(sa.text("SELECT pg_backend_pid()")).scalar()  # its transaction stays open
    try:
        return bool(seen == first or _backend_pid(connection) != first)
    finally:
        other.rollback()  # through a pooler, frees its server connection for the next probe


@contextlib.contextmanager
def _advisory(connection: Any, wait_seconds: float) -> Iterator[None]:
    try_lock = sa.text("SELECT pg_try_advisory_lock(:k)")
    deadline = time.monotonic() + wait_seconds
    while not connection.execute(try_lock, {"k": ADVISORY_KEY}).scalar():
        connection.commit()
        if time.monotonic() >= deadline:
            raise RunnerError(
                "database-locked",
                f"Another migration holds the database's advisory lock (key {ADVISORY_KEY}).",
            )
        time.sleep(0.2)
    connection.commit()
    try:
        yield
    finally:
        # A broken connection released the lock with it; never hide the real error.
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if not connection.closed:
                connection.rollback()
                connection.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
                connection.commit()


@contextlib.contextmanager
def _named_lock(connection: Any, wait_seconds: float) -> Iterator[None]:
    got = connection.execute(
        sa.text("SELECT GET_LOCK(:n, :t)"), {"n": LOCK_NAME, "t": max(0, int(wait_seconds))}
    ).scalar()
    connection.commit()
    if got != 1:
        raise RunnerError("database-locked", f"Another migration holds GET_LOCK('{LOCK_NAME}').")
    try:
        yield
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            if not connection.closed:
                connection.rollback()
                connection.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": LOCK_NAME})
                connection.commit()


@contextlib.contextmanager
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
                    raise RunnerError(
                        "database-locked", f"Another migration holds {path}."
                    ) from None
                time.sleep(0.2)
        yield
    finally:
        os.close(descriptor)  # closing releases the flock


_lease_metadata = sa.MetaData()
_lease_table = sa.Table(
    LEASE_TABLE,
    _lease_metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("holder", sa.String(255)),
    sa.Column("expires_at", sa.DateTime(timezone=True)),
)


@contextlib.contextmanager
def _lease(url: str, wait_seconds: float) -> Iterator[None]:
    """A lease row in the managed database, renewed while held: works through any pooler."""
    from .engines import create_engine

    engine = create_engine(url, migrating=False)
    holder = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    try:
        _lease_metadata.create_all(engine, checkfirst=True)
        deadline = time.monotonic() + wait_seconds
        while not _take_lease(engine, holder):
            if time.monotonic() >= deadline:
                raise RunnerError(
                    "database-locked", f"Another migration holds the lease in {LEASE_TABLE}."
                )
            time.sleep(0.5)
        stop = threading.Event()
        renewer = threading.Thread(target=_renew, args=(engine, holder, stop), daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            _release_lease(engine, holder)
    finally:
        engine.dispose()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _take_lease(engine: Any, holder: str) -> bool:
    table, now = _lease_table, _now()
    with engine.begin() as connection:
        exists = connection.execute(
            sa.select(table.c.name).where(table.c.name == LOCK_NAME)
        ).first()
        if exists is None:
            with contextlib.suppress(sa.exc.IntegrityError), connection.begin_nested():
                connection.execute(table.insert().values(name=LOCK_NAME))
        taken = connection.execute(
            table.update()
            .where(
                table.c.name == LOCK_NAME,
                sa.or_(table.c.holder.is_(None), table.c.expires_at < now),
            )
            .values(holder=holder, expires_at=now + dt.timedelta(seconds=LEASE_SECONDS))
        )
        return bool(taken.rowcount == 1)


def _renew(engine: Any, holder: str, stop: threading.Event) -> None:
    while not stop.wait(LEASE_SECONDS / 3):
        with contextlib.suppress(sa.exc.SQLAlchemyError), engine.begin() as connection:
            connection.execute(
                _lease_table.update()
                .where(_lease_table.c.name == LOCK_NAME, _lease_table.c.holder == holder)
                .values(expires_at=_now() + dt.timedelta(seconds=LEASE_SECONDS))
            )


def _release_lease(engine: Any, holder: str) -> None:
    with contextlib.suppress(sa.exc.SQLAlchemyError), engine.begin() as connection:
        connection.execute(
            _lease_table.update()
            .where(_lease_table.c.name == LOCK_NAME, _lease_table.c.holder == holder)
            .values(holder=None, expires_at=None)
        )
