"""migctl's own schema in the control database: apply it, and tell whether it is behind."""

from __future__ import annotations

import functools
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from service.errors import ConfigError
from service.migrator.sandbox import alembic_environment

VERSION_TABLE = "migctl_version"


def migrations_dir() -> Path:
    """The control schema's migrations: inside the wheel, or in the source checkout."""
    package_dir = Path(__file__).resolve().parent.parent
    for candidate in (package_dir / "control_migrations", package_dir.parent / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise ConfigError("The control schema's migrations are missing from this installation.")


def _config(connection: Connection) -> Config:
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def upgrade(connection: Connection) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Apply every control-schema revision on `connection` (the caller holds the lock);
    return the heads before and after.

    `command.upgrade` reloads every revision file and grows sys.path on each call: fine once
    per process start, never per request (docs/alembic-in-a-service.md, "Scripts are cached").
    """
    before = current_heads(connection)
    with alembic_environment({}):
        command.upgrade(_config(connection), "head")
    return before, current_heads(connection)


def current_heads(connection: Connection) -> tuple[str, ...]:
    """The control schema's revisions recorded in `connection`'s database; () if none."""
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return tuple(sorted(context.get_current_heads()))


@functools.cache
def _installed_heads() -> frozenset[str]:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with alembic_environment({}):
        return frozenset(ScriptDirectory.from_config(config).get_heads())


def is_behind(connection: Connection) -> bool:
    """True while the control database lacks a revision of the installed schema."""
    return set(current_heads(connection)) != _installed_heads()
