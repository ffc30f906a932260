"""Engines and connections for a managed database, the same on SQLAlchemy 1.4 and 2.x."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

_LEGACY = sa.__version__.startswith("1.")
# A dead host must not keep a migration's lock for two hours of TCP keepalive defaults.
_PG_KEEPALIVES = "-c tcp_keepalives_idle=30 -c tcp_keepalives_interval=10 -c tcp_keepalives_count=3"


def backend(url: str) -> str:
    return str(make_url(url).get_backend_name())


_DRIVERS_LOADED: set[str] = set()


def load_driver(url: str) -> None:
    """Import the URL's dialect and DBAPI module in this process, once, so that the jobs it
    forks start with them: importing psycopg2 in each job took 20 ms of its start. Never
    raises: a bad URL or a missing driver is the job's to report, with its cause."""
    try:
        drivername = make_url(url).drivername
        if drivername not in _DRIVERS_LOADED:
            _DRIVERS_LOADED.add(drivername)
            sa.create_engine(url, poolclass=NullPool).dispose()  # imports; never connects
    except Exception:
        return


def create_engine(url: str, *, migrating: bool) -> sa.engine.Engine:
    """One connection's engine; SQLite gets real transactions so a failed revision rolls back."""
    parsed = make_url(url)
    kwargs: dict[str, Any] = {"poolclass": NullPool}
    if _LEGACY:
        kwargs["future"] = True  # commit()/begin() on connections, as in 2.x
    name = parsed.get_backend_name()
    if name == "postgresql":
        # Fail in seconds on an unreachable host rather than hold a request for minutes.
        connect_args: dict[str, Any] = {"connect_timeout": 5}
        if migrating:
            connect_args["options"] = _PG_KEEPALIVES
        kwargs["connect_args"] = connect_args
    engine = sa.create_engine(parsed, **kwargs)
    if name == "sqlite":
        event.listen(engine, "connect", _sqlite_real_transactions)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_real_transactions(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite lets DDL autocommit before its implicit BEGIN: take control of transactions.
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN")
