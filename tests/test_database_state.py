"""Reading a managed database's state: read-only, env.py honoured, unknown and unreachable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import alembic, client_for, managed, stamp, table_names

READS = ("/status", "/current", "/pending", "/revisions", "/heads", "/branches")


def test_reads_never_create_a_version_table(
    project: Callable[[str], Path], database_url: str
) -> None:
    client = client_for(managed("db", project("branched"), database_url))
    for path in READS:
        assert client.get(f"/api/v1/databases/db{path}").status_code == 200
    assert table_names(database_url) == []


def test_reads_of_a_sqlite_file_that_does_not_exist_do_not_create_it(
    project: Callable[[str], Path], tmp_path: Path
) -> None:
    missing = tmp_path / "never.db"
    client = client_for(managed("db", project("linear"), f"sqlite:///{missing}"))
    status = client.get("/api/v1/databases/db/status").json
    assert status["current_heads"] == [] and status["pending_count"] == 4
    assert not missing.exists()


def test_a_version_table_named_in_env_py_is_honoured(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("custom_version_table")
    alembic(ini, database_url, "upgrade", "bravo")
    client = client_for(managed("db", ini, database_url))
    status = client.get("/api/v1/databases/db/status").json
    assert status["current_heads"] == ["bravo"] and status["version_table"] == "schema_history"
    assert client.get("/api/v1/databases/db/revisions/kilo").json["applied"] is False
    assert "alembic_version" not in table_names(database_url)


@pytest.mark.postgresql
def test_a_version_table_schema_from_the_configured_env_is_honoured(
    project: Callable[[str], Path], postgres_server: object
) -> None:
    url = postgres_server.create_database()  # type: ignore[attr-defined]
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE SCHEMA mig"))
    engine.dispose()
    ini = project("custom_version_table")
    client = client_for(managed("db", ini, url, env={"MIGRATION_SCHEMA": "mig"}))
    assert client.get("/api/v1/databases/db/status").json["version_table"] == "mig.schema_history"
    assert table_names(url, schema="mig") == []  # discovered without being created


def test_a_database_at_a_revision_the_scripts_lack_is_reported_not_failed(
    project: Callable[[str], Path], database_url: str
) -> None:
    stamp(database_url, "deadbeef0000")
    client = client_for(managed("db", project("linear"), database_url))
    status = client.get("/api/v1/databases/db/status").json
    assert status["state"] == "unknown_revision" and status["unknown_revisions"] == ["deadbeef0000"]
    assert status["up_to_date"] is None and status["pending_count"] is None
    current = client.get("/api/v1/databases/db/current").json
    assert current["unknown_revisions"] == ["deadbeef0000"] and current["revisions"] == []
    assert {r["applied"] for r in client.get("/api/v1/databases/db/revisions").json} == {None}
    pending = client.get("/api/v1/databases/db/pending")
    assert pending.status_code == 409 and pending.json["code"] == "unknown-database-revision"
    assert pending.json["revisions"] == ["deadbeef0000"]


def test_an_unreachable_database_is_a_503_that_never_shows_its_password(
    project: Callable[[str], Path],
) -> None:
    url = "postgresql+psycopg2://app:pw-31337@127.0.0.1:1/app"
    client = client_for(managed("db", project("linear"), url))
    response = client.get("/api/v1/databases/db/status")
    assert response.status_code == 503 and response.json["code"] == "database-unavailable"
    assert response.headers["Retry-After"]
    detail = client.get("/api/v1/databases/db").json
    assert detail["status"] is None and detail["status_problem"]["code"] == "database-unavailable"
    assert detail["url"] == "postgresql+psycopg2://app:***@127.0.0.1:1/app"
    for body in (response.get_data(as_text=True), str(detail)):
        assert "pw-31337" not in body
    listed = client.get("/api/v1/databases/db/revisions")  # the scripts alone still answer
    assert listed.status_code == 200 and {r["applied"] for r in listed.json} == {None}
    assert client.get("/api/v1/databases/db/heads").json[0]["revision"] == "a4000004"


def test_an_unusable_url_is_a_503_not_a_500(project: Callable[[str], Path]) -> None:
    client = client_for(managed("db", project("linear"), "nosuchdialect://u:pw-777@h/db"))
    response = client.get("/api/v1/databases/db/status")
    assert response.status_code == 503 and response.json["code"] == "database-unavailable"
    assert "pw-777" not in response.get_data(as_text=True)


def test_env_py_logging_and_prints_neither_leak_nor_disable_the_services_logging(
    project: Callable[[str], Path],
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ini = project("example")  # its env.py calls fileConfig(alembic.ini)
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + '\nprint("ENV-PY-WAS-HERE")\n')
    ours = logging.getLogger("service.test_probe")
    root_handlers = list(logging.getLogger().handlers)
    client = client_for(managed("db", ini, database_url))
    body = client.get("/api/v1/databases/db/status").get_data(as_text=True)
    assert "ENV-PY-WAS-HERE" not in body + capsys.readouterr().out
    assert not ours.disabled and logging.getLogger().handlers == root_handlers
    with caplog.at_level(logging.INFO, logger="service.test_probe"):
        ours.info("still heard")
    assert "still heard" in caplog.text


def test_many_threads_reading_two_projects_at_once_get_the_serial_answers(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    databases = [
        managed("linear", project("linear"), make_database()),
        managed("branched", project("branched"), make_database()),
    ]
    app = client_for(*databases).application
    paths = [f"/api/v1/databases/{d.name}{p}" for d in databases for p in READS]
    serial = {path: app.test_client().get(path).get_data() for path in paths}
    failures: list[str] = []

    def read_all() -> None:
        client = app.test_client()
        for _ in range(5):
            failures.extend(p for p in paths if client.get(p).get_data() != serial[p])

    threads = [threading.Thread(target=read_all) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
