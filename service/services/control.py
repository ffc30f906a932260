"""The control database's schema: apply it at start (under a lock), and check it."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from service.migrator import control_schema
from service.store.db import DATABASE_ERRORS as DATABASE_ERRORS  # for api/, worker/ and cli
from service.store.db import UNAVAILABLE as UNAVAILABLE
from service.store.db import ControlStore as ControlStore

logger = logging.getLogger(__name__)

# Any constant works: it only has to be the same in every migctl process.
_SCHEMA_LOCK_KEY = 0x6D6967_6374_6C


def upgrade_control_schema(store: ControlStore) -> None:
    """Bring the control schema to head; concurrent starters wait for each other."""
    with store.engine.connect() as connection:
        if store.dialect == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
        try:
            control_schema.upgrade(connection)
            connection.commit()
        finally:
            if store.dialect == "postgresql":
                connection.execute(
                    sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK_KEY}
                )
                connection.commit()
    logger.info("control schema is up to date", extra={"action": "control_schema_upgraded"})


def control_schema_behind(store: ControlStore) -> bool:
    with store.engine.connect() as connection:
        return control_schema.is_behind(connection)
