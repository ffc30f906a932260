"""Console sessions: create, find (unexpired), end, and prune the expired."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa

from service.store.tables import console_sessions as sessions


@dataclass(frozen=True)
class SessionRecord:
    token_hash: str
    csrf_token: str


def create(
    connection: sa.Connection,
    id_hash: str,
    record: SessionRecord,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> None:
    """Insert the session; sessions that expired are pruned meanwhile (no other sweeper)."""
    connection.execute(sessions.delete().where(sessions.c.expires_at < now))
    values = {"token_hash": record.token_hash, "csrf_token": record.csrf_token}
    connection.execute(
        sessions.insert().values(
            id_hash=id_hash, created_at=now, expires_at=now + lifetime, **values
        )
    )


def find(connection: sa.Connection, id_hash: str, now: dt.datetime) -> SessionRecord | None:
    query = sa.select(sessions.c.token_hash, sessions.c.csrf_token).where(
        sessions.c.id_hash == id_hash, sessions.c.expires_at > now
    )
    row = connection.execute(query).first()
    return None if row is None else SessionRecord(row.token_hash, row.csrf_token)


def end(connection: sa.Connection, id_hash: str) -> None:
    connection.execute(sessions.delete().where(sessions.c.id_hash == id_hash))
