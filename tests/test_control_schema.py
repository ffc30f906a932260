"""The control schema: its migrations build exactly the tables the code declares."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from service.services.control import upgrade_control_schema
from service.store.db import ControlStore
from service.store.tables import metadata


def migrated(url: str) -> ControlStore:
    store = ControlStore(url)
    upgrade_control_schema(store)
    return store


def normalized(sql: Any) -> str:
    """SQL text without what each database adds when it echoes it: casts, parentheses, spaces."""
    return re.sub(r"::[a-z ]+(\[\])?|[()\s]", "", str(sql))


def literals(sql: Any) -> set[str]:
    return set(re.findall(r"'([^']*)'", str(sql)))


def test_the_migrations_create_exactly_the_tables_the_code_declares(
    make_database: Callable[[], str],
) -> None:
    store = migrated(make_database())
    with store.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"version_table": "migctl_version", "compare_type": True}
        )
        assert compare_metadata(context, metadata) == []
        inspector = sa.inspect(connection)
        for table in metadata.sorted_tables:
            assert_same_checks(table, inspector.get_check_constraints(table.name))
            assert_same_partial_indexes(table, inspector.get_indexes(table.name), store.dialect)
    store.dispose()


def assert_same_checks(table: sa.Table, reflected: list[Any]) -> None:
    """Same names, same allowed values (each database rewrites the expression its own way)."""
    declared = {
        str(c.name): literals(c.sqltext)
        for c in table.constraints
        if isinstance(c, sa.CheckConstraint)
    }
    assert {c["name"]: literals(c["sqltext"]) for c in reflected} == declared, table.name


def assert_same_partial_indexes(table: sa.Table, reflected: list[Any], dialect: str) -> None:
    found = {index["name"]: index for index in reflected}
    for index in table.indexes:
        where = index.dialect_options[dialect]["where"]
        if where is None:
            continue
        twin = found[index.name]
        assert bool(twin["unique"]) == index.unique, index.name
        assert normalized(twin["dialect_options"][f"{dialect}_where"]) == normalized(where)
