"""The checksum ledger: the sha256 of each revision file when migctl applied or stamped it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from service.store.db import aware
from service.store.tables import revision_checksums as ledger


@dataclass(frozen=True)
class Checksum:
    database: str
    revision: str
    path: str
    sha256: str
    recorded_at: dt.datetime
    actor: str
    operation_id: int | None


def for_database(connection: sa.Connection, database: str) -> dict[str, Checksum]:
    rows = connection.execute(sa.select(ledger).where(ledger.c.database == database))
    found = {}
    for row in rows:
        values = dict(row._mapping)
        values["recorded_at"] = aware(values["recorded_at"])
        found[row.revision] = Checksum(**values)
    return found


def record(connection: sa.Connection, checksums: Iterable[Checksum]) -> None:
    """Insert or replace each revision's row (delete then insert: any dialect), in two
    statements: a row at a time took 160 ms at the end of a 200-revision upgrade."""
    rows = [checksum.__dict__ for checksum in checksums]
    by_database: dict[str, list[str]] = {}
    for row in rows:
        by_database.setdefault(row["database"], []).append(row["revision"])
    for database, revisions in by_database.items():
        forget(connection, database, revisions)
    if rows:
        connection.execute(ledger.insert(), rows)


def forget(connection: sa.Connection, database: str, revisions: Iterable[str]) -> None:
    wanted = list(revisions)
    if wanted:
        connection.execute(
            ledger.delete().where(ledger.c.database == database, ledger.c.revision.in_(wanted))
        )
