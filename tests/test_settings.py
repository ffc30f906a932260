"""Configuration: the databases file, one database from variables, the example, and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.errors import ConfigError
from service.settings import Settings
from tests.helpers import client_for

FIXTURES = Path(__file__).parent / "fixtures"
LINEAR_INI = FIXTURES / "linear" / "alembic.ini"


def write_databases(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "databases.toml"
    path.write_text(text)
    return path


def settings_from_file(tmp_path: Path, text: str, **environ: str) -> Settings:
    path = write_databases(tmp_path, text)
    return Settings.from_env({"MIGCTL_DATABASES_FILE": str(path), **environ})


def config_error(tmp_path: Path, text: str, **environ: str) -> str:
    with pytest.raises(ConfigError) as raised:
        settings_from_file(tmp_path, text, **environ)
    return raised.value.detail


def test_a_databases_file_describes_several_databases_with_paths_relative_to_it(
    tmp_path: Path,
) -> None:
    (tmp_path / "app").symlink_to(FIXTURES / "linear")
    settings = settings_from_file(
        tmp_path,
        """
        [databases.prod]
        url = "postgresql+psycopg2://app:s3cret@db.internal/app"
        alembic_config = "app/alembic.ini"
        environment = "production"
        description = "Main application database"
        [databases.prod.env]
        DATABASE_URL = "postgresql+psycopg2://app:s3cret@db.internal/app"
        [databases.staging]
        url_env = "STAGING_URL"
        alembic_config = "app/alembic.ini"
        alembic_section = "alembic"
        """,
        STAGING_URL="sqlite:///staging.db",
    )
    prod, staging = settings.databases
    assert (prod.name, prod.environment, prod.dialect) == ("prod", "production", "postgresql")
    assert prod.alembic_config == tmp_path / "app" / "alembic.ini"
    assert prod.masked_url == "postgresql+psycopg2://app:***@db.internal/app"
    assert prod.env["DATABASE_URL"].reveal().endswith("@db.internal/app")
    assert staging.url.reveal() == "sqlite:///staging.db"


def test_passwords_never_show_in_the_repr_of_settings(tmp_path: Path) -> None:
    settings = settings_from_file(
        tmp_path,
        f"""
        [databases.prod]
        url = "postgresql://app:s3cret@db/app"
        alembic_config = "{LINEAR_INI}"
        env = {{ TOKEN = "t0ken-value" }}
        """,
    )
    assert "s3cret" not in repr(settings) and "t0ken-value" not in repr(settings)


def test_one_database_from_variables_is_named_default() -> None:
    settings = Settings.from_env(
        {"MIGCTL_DATABASE_URL": "sqlite:///x.db", "MIGCTL_ALEMBIC_CONFIG": str(LINEAR_INI)}
    )
    (database,) = settings.databases
    assert database.name == "default" and database.alembic_config == LINEAR_INI
    assert settings.source == "environment"


def test_no_configuration_serves_the_bundled_example_on_a_sqlite_file(tmp_path: Path) -> None:
    settings = Settings.from_env({"MIGCTL_DATA_DIR": str(tmp_path)})
    (database,) = settings.databases
    assert database.name == "example"
    assert database.url.reveal() == f"sqlite:///{tmp_path / 'example.db'}"
    assert database.alembic_config.name == "alembic.ini" and database.alembic_config.is_file()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[databases.prod]\nurl = "sqlite://"\nalembic_config = "missing.ini"', "does not exist"),
        ('[databases.prod]\nalembic_config = "{ini}"', "key 'url' (or 'url_env') is missing"),
        ('[databases.prod]\nurl = "sqlite://"\nalembic_config = "{ini}"\nport = 1', "key 'port'"),
        ('[databases.prod]\nurl = "sqlite://"', "key 'alembic_config' is missing"),
        ('[databases.prod]\nurl_env = "NOPE"\nalembic_config = "{ini}"', "names NOPE"),
        ('[databases."bad name"]\nurl = "sqlite://"\nalembic_config = "{ini}"', "names are"),
        ('[database.prod]\nurl = "sqlite://"', "unknown top-level key(s) database"),
        ("[databases.prod\n", "cannot be read as TOML"),
    ],
)
def test_bad_databases_files_fail_with_a_message_naming_file_database_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    detail = config_error(tmp_path, text.format(ini=LINEAR_INI))
    assert expected in detail
    assert str(tmp_path / "databases.toml") in detail


def test_an_ini_without_script_location_is_refused_at_start(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nsqlalchemy.url = sqlite://\n")
    detail = config_error(
        tmp_path, f'[databases.prod]\nurl = "sqlite://"\nalembic_config = "{ini}"'
    )
    assert "database 'prod'" in detail and "has no script_location" in detail


def test_a_missing_databases_file_is_named() -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.toml: file not found"):
        Settings.from_env({"MIGCTL_DATABASES_FILE": "/nowhere.toml"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"MIGCTL_DATABSE_URL": "x"}, "Unknown environment variable(s) MIGCTL_DATABSE_URL"),
        ({"MIGCTL_DATABASE_URL": "sqlite://"}, "MIGCTL_ALEMBIC_CONFIG is missing"),
        ({"MIGCTL_ALEMBIC_CONFIG": str(LINEAR_INI)}, "MIGCTL_DATABASE_URL is missing"),
        ({"MIGCTL_DATABASE_URL": "x", "MIGCTL_DATABASES_FILE": "y"}, "not both"),
        ({"MIGCTL_WORKERS": "zero"}, "MIGCTL_WORKERS must be a positive whole number"),
        ({"MIGCTL_LOG_LEVEL": "LOUD"}, "MIGCTL_LOG_LEVEL must be one of"),
    ],
)
def test_bad_variables_fail_with_a_message_naming_them(
    environ: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env(environ)
    assert expected in raised.value.detail


def run_check_config(environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "check-config"],
        env={**clean, **environ},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_config_prints_the_same_error_and_exits_non_zero(tmp_path: Path) -> None:
    path = write_databases(
        tmp_path, '[databases.prod]\nurl = "postgresql://u:pw-9981@h/db"\nalembic_config = "x.ini"'
    )
    result = run_check_config({"MIGCTL_DATABASES_FILE": str(path)})
    assert result.returncode == 2
    assert "database 'prod'" in result.stderr and "x.ini does not exist" in result.stderr
    assert "pw-9981" not in result.stderr + result.stdout


def test_check_config_lists_databases_with_masked_urls_and_flags_broken_projects(
    tmp_path: Path,
) -> None:
    path = write_databases(
        tmp_path,
        f"""
        [databases.good]
        url = "postgresql://u:pw-4471@127.0.0.1/db"
        alembic_config = "{LINEAR_INI}"
        [databases.broken]
        url = "sqlite://"
        alembic_config = "{FIXTURES / "broken_syntax" / "alembic.ini"}"
        """,
    )
    result = run_check_config({"MIGCTL_DATABASES_FILE": str(path)})
    assert result.returncode == 1
    assert "good: postgresql://u:***@127.0.0.1/db" in result.stdout
    assert "broken:" in result.stdout and "project-unavailable" in result.stdout
    assert "pw-4471" not in result.stdout + result.stderr


def test_production_refuses_downgrades_and_stamps_unless_its_table_allows_them(
    tmp_path: Path,
) -> None:
    settings = settings_from_file(
        tmp_path,
        f"""
        [databases.prod]
        url = "sqlite://"
        alembic_config = "{LINEAR_INI}"
        environment = "production"
        allow_stamp = true
        [databases.dev]
        url = "sqlite://"
        alembic_config = "{LINEAR_INI}"
        """,
    )
    dev, prod = settings.databases
    assert not prod.allows("downgrade") and prod.allows("stamp") and prod.allows("upgrade")
    assert dev.allows("downgrade") and dev.allows("stamp")


def test_access_settings_are_read_and_checked(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "MIGCTL_TOKENS_FILE": "tokens.toml",
            "MIGCTL_DOCS_PUBLIC": "false",
            "MIGCTL_CORS_ORIGINS": "https://a.example, https://b.example",
            "MIGCTL_MAX_BODY_BYTES": "2048",
        }
    )
    assert settings.tokens_file is not None and settings.tokens_file.name == "tokens.toml"
    assert settings.docs_public is False and settings.max_body_bytes == 2048
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    with pytest.raises(ConfigError, match="MIGCTL_AUTH"):
        Settings.from_env({"MIGCTL_AUTH": "maybe"})


def test_readiness_expects_a_worker_only_when_told_to() -> None:
    assert Settings.from_env({}).expect_worker is False
    assert Settings.from_env({"MIGCTL_EXPECT_WORKER": "true"}).expect_worker is True
    with pytest.raises(ConfigError, match="MIGCTL_EXPECT_WORKER"):
        Settings.from_env({"MIGCTL_EXPECT_WORKER": "sometimes"})


def test_paths_are_shown_without_dot_dot_in_the_api_and_in_check_config(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "myapp").symlink_to(FIXTURES / "linear")  # a symlink keeps its own name
    path = write_databases(
        tmp_path / "etc",
        '[databases.app]\nurl = "sqlite://"\nalembic_config = "../etc/../myapp/./alembic.ini"',
    )
    dotted = f"{tmp_path}/etc/../etc/databases.toml"
    shown = str(tmp_path / "myapp" / "alembic.ini")
    settings = Settings.from_env({"MIGCTL_DATABASES_FILE": dotted, "MIGCTL_TOKENS_FILE": "a/../t"})
    assert str(settings.databases[0].alembic_config) == shown
    assert settings.source == f"file {path}" and settings.tokens_file == Path.cwd() / "t"
    listed = client_for(*settings.databases).get("/api/v1/databases").json
    assert listed[0]["project"]["alembic_config"] == shown
    checked = run_check_config({"MIGCTL_DATABASES_FILE": dotted})
    assert f"({shown})" in checked.stdout and ".." not in checked.stdout, checked.stdout
