"""Alembic environment of migctl's own control schema (version table migctl_version)."""

import os

from alembic import context
from sqlalchemy import create_engine, pool

VERSION_TABLE = "migctl_version"
config = context.config


def url() -> str:
    return (
        config.get_main_option("sqlalchemy.url")
        or os.environ.get("MIGCTL_CONTROL_DATABASE_URL")
        or "sqlite:///var/migctl.db"
    )


def run_offline() -> None:
    context.configure(url=url(), literal_binds=True, version_table=VERSION_TABLE)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # migctl hands its own connection over
        context.configure(connection=connection, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=VERSION_TABLE)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
