"""Production safety settings of a database: lint policy, lock and statement timeouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_settings import LINEAR_INI, config_error, settings_from_file


def database(tmp_path: Path, lines: str = "", environment: str = "production"):
    text = (
        f'[databases.prod]\nurl = "sqlite://"\nalembic_config = "{LINEAR_INI}"\n'
        f'environment = "{environment}"\n{lines}'
    )
    return settings_from_file(tmp_path, text).databases[0]


def test_production_databases_block_on_lint_and_bound_lock_waits_to_5s_by_default(
    tmp_path: Path,
) -> None:
    prod = database(tmp_path)
    assert (prod.lint_policy, prod.effective_lock_timeout, prod.statement_timeout) == (
        "block",
        "5s",
        None,
    )


def test_other_databases_warn_and_set_no_timeout_by_default(tmp_path: Path) -> None:
    staging = database(tmp_path, environment="staging")
    assert (staging.lint_policy, staging.effective_lock_timeout) == ("warn", None)


def test_the_policy_and_timeouts_are_set_per_database_and_0_turns_the_default_off(
    tmp_path: Path,
) -> None:
    prod = database(tmp_path, 'lint = "warn"\nlock_timeout = "0"\nstatement_timeout = "15min"')
    assert (prod.lint_policy, prod.effective_lock_timeout, prod.statement_timeout) == (
        "warn",
        None,
        "15min",
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('lint = "strict"', "key 'lint' is one of off, warn, block, not 'strict'"),
        ('lock_timeout = "5 seconds"', "key 'lock_timeout' is a duration"),
        ('statement_timeout = "1\'; DROP TABLE x; --"', "key 'statement_timeout' is a duration"),
    ],
)
def test_a_bad_policy_or_duration_stops_migctl_naming_the_key(
    tmp_path: Path, line: str, expected: str
) -> None:
    text = f'[databases.prod]\nurl = "sqlite://"\nalembic_config = "{LINEAR_INI}"\n{line}'
    assert expected in config_error(tmp_path, text)
