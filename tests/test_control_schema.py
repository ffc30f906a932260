"""The control schema: its migrations build exactly the tables the code declares, and
applying them says what happened."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from service.services.control import upgrade_control_schema
from service.store.db import ControlStore
from service.store.tables import metadata
from tests.helpers import ALEMBIC, MIGCTL

ROOT = Path(__file__).parent.parent
HEAD = ScriptDirectory.from_config(Config(ROOT / "alembic.ini")).get_current_head()


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


def run_upgrade(url: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    return subprocess.run(
        [MIGCTL, "control-db", "upgrade"],
        env={**clean, "MIGCTL_CONTROL_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_control_db_upgrade_says_whether_it_created_upgraded_or_found_the_schema_current(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'control.db'}"
    created = run_upgrade(url)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith(f"control schema created at {HEAD} (sqlite:///")
    assert run_upgrade(url).stdout.startswith(f"control schema already up to date at {HEAD} ")

    older = f"sqlite:///{tmp_path / 'older.db'}"
    subprocess.run(
        [ALEMBIC, "-c", str(ROOT / "alembic.ini"), "upgrade", "0001"],
        env={**os.environ, "MIGCTL_CONTROL_DATABASE_URL": older},
        check=True,
        capture_output=True,
    )
    upgraded = run_upgrade(older)
    assert upgraded.stdout.startswith(f"control schema upgraded from 0001 to {HEAD} ")


def test_control_db_upgrade_says_what_it_did_once_on_stdout_not_again_in_the_log(
    tmp_path: Path,
) -> None:
    result = run_upgrade(f"sqlite:///{tmp_path / 'control.db'}")
    assert result.returncode == 0, result.stderr
    said = (result.stdout + result.stderr).count(f"control schema created at {HEAD}")
    assert said == 1, (result.stdout, result.stderr)


@pytest.mark.postgresql
def test_control_db_upgrade_shows_a_postgresql_url_with_its_password_masked(
    postgres_server: Any,
) -> None:
    url = postgres_server.create_database()
    with_password = url.replace("postgres@", "postgres:pw-5521@", 1)  # trust auth ignores it
    result = run_upgrade(with_password)
    assert result.returncode == 0, result.stderr
    assert f"control schema created at {HEAD}" in result.stdout
    assert "postgres:***@" in result.stdout and "pw-5521" not in result.stdout + result.stderr
