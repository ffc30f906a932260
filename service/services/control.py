"""The control database's schema: apply it at start (under a lock), and check it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import sqlalchemy as sa

from service.migrator import control_schema
from service.store.db import DATABASE_ERRORS as DATABASE_ERRORS  # for api/, worker/ and cli
from service.store.db import UNAVAILABLE as UNAVAILABLE
from service.store.db import ControlStore as ControlStore

logger = logging.getLogger(__name__)

# Any constant works: it only has to be the same in every migctl process.
_SCHEMA_LOCK_KEY = 0x6D6967_6374_6C


@dataclass(frozen=True)
class SchemaChange:
    """The control schema's revisions before and after an upgrade."""

    before: tuple[str, ...]
    after: tuple[str, ...]

    def __str__(self) -> str:
        after = ", ".join(self.after)
        if not self.before:
            return f"control schema created at {after}"
        if self.before == self.after:
            return f"control schema already up to date at {after}"
        return f"control schema upgraded from {', '.join(self.before)} to {after}"


def upgrade_control_schema(store: ControlStore, *, log: bool = True) -> SchemaChange:
    """Bring the control schema to head; concurrent starters wait for each other. Logged
    unless `log` is false (`migctl control-db upgrade` prints it instead)."""
    with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        try:
            change = SchemaChange(*control_schema.upgrade(connection))
            connection.commit()
        finally:
            if store.dialect == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK_KEY}
                )
                connection.commit()
    if log:
        logger.info("%s", change, extra={"action": "control_schema_upgraded"})
    return change


def control_schema_behind(store: ControlStore) -> bool:
    with store.engine.connect() as connection:
        return control_schema.is_behind(connection)
