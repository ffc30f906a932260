"""A broken project makes its database answer 503 naming the fault; others keep working."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.helpers import client_for, managed


def broken_and_linear(
    project: Callable[[str], Path], make_database: Callable[[], str], broken: str
) -> FlaskClient:
    return client_for(
        managed("broken", project(broken), make_database()),
        managed("linear", project("linear"), make_database()),
    )


@pytest.mark.parametrize(
    ("fixture", "named"),
    [
        ("broken_syntax", "s2000002"),
        ("broken_import", "i2000002"),
        ("broken_missing_down", "d9999999"),
        ("broken_duplicate", "u2000002"),
        ("env_exits", "SystemExit: 3"),
    ],
)
def test_a_broken_project_answers_503_naming_the_file_or_revision_and_others_still_work(
    project: Callable[[str], Path], make_database: Callable[[], str], fixture: str, named: str
) -> None:
    client = broken_and_linear(project, make_database, fixture)
    for path in ("/status", "/revisions", "/pending", "/current"):
        response = client.get(f"/api/v1/databases/broken{path}")
        assert response.status_code == 503, (path, response.json)
        assert response.json["code"] == "project-unavailable"
        assert named in response.json["detail"] or named in (response.json.get("path") or "")
        assert response.headers["Retry-After"]
    assert client.get("/api/v1/databases/linear/status").status_code == 200


def test_a_syntax_error_names_the_file_and_line(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = broken_and_linear(project, make_database, "broken_syntax")
    body = client.get("/api/v1/databases/broken/revisions").json
    assert body["path"].startswith("migrations/versions/s2000002")
    assert body["line"] and "SyntaxError" in body["detail"]


def test_a_fixed_file_is_picked_up_without_a_restart(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = broken_and_linear(project, make_database, "broken_import")
    assert client.get("/api/v1/databases/broken/heads").status_code == 503
    versions = project("broken_import").parent / "migrations" / "versions"
    (broken_file,) = versions.glob("i2000002*.py")
    broken_file.write_text(broken_file.read_text().replace("import no_such_module_xyz", ""))
    response = client.get("/api/v1/databases/broken/heads")
    assert response.status_code == 200
    assert [r["revision"] for r in response.json] == ["i2000002"]


def test_a_new_revision_file_changes_the_heads_without_a_restart(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, database_url))
    assert client.get("/api/v1/databases/db/heads").json[0]["revision"] == "a4000004"
    new = ini.parent / "migrations" / "versions" / "a5000005_more.py"
    new.write_text(
        '"""more\n\nCreate Date: 2026-11-22 10:00:00\n"""\n'
        'revision = "a5000005"\ndown_revision = "a4000004"\n'
        "branch_labels = None\ndepends_on = None\n\n\n"
        "def upgrade():\n    pass\n\n\ndef downgrade():\n    pass\n"
    )
    assert client.get("/api/v1/databases/db/heads").json[0]["revision"] == "a5000005"
    assert client.get("/api/v1/databases/db/status").json["pending_count"] == 5


def test_an_unchanged_project_is_loaded_once_and_sys_path_never_grows(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("nested_versions")  # prepend_sys_path = . and a helper module
    client = client_for(managed("db", ini, database_url))
    assert client.get("/api/v1/databases/db/status").status_code == 200
    registry = client.application.extensions["migctl"].registry
    graph = registry.get("db").graph()
    path_length = len(sys.path)
    for _ in range(50):
        assert client.get("/api/v1/databases/db/pending").status_code == 200
    assert registry.get("db").graph() is graph
    assert len(sys.path) == path_length


def test_readiness_is_degraded_while_some_projects_are_broken_and_503_when_all_are(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    client = broken_and_linear(project, make_database, "broken_syntax")
    response = client.get("/health/ready")
    assert response.status_code == 200 and response.json["status"] == "degraded"
    failing = [check for check in response.json["checks"] if not check["ok"]]
    assert [check["name"] for check in failing] == ["project:broken"]
    only_broken = client_for(managed("broken", project("broken_syntax"), make_database()))
    response = only_broken.get("/health/ready")
    assert response.status_code == 503 and response.json["status"] == "unavailable"
    healthy = client_for(managed("linear", project("linear"), make_database()))
    assert healthy.get("/health/ready").json["status"] == "ready"


def test_touching_env_py_is_noticed_too(project: Callable[[str], Path], database_url: str) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, database_url))
    first = client.application.extensions["migctl"].registry.get("db").graph()
    env_py = ini.parent / "migrations" / "env.py"
    later = time.time() + 5
    os.utime(env_py, (later, later))
    assert client.application.extensions["migctl"].registry.get("db").graph() is not first


def test_between_rescans_only_folder_and_env_py_changes_are_seen_at_once(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("linear")
    client = client_for(managed("db", ini, database_url), rescan_seconds=3600)
    first = client.application.extensions["migctl"].registry.get("db").graph()
    (revision_file,) = (ini.parent / "migrations" / "versions").glob("a4000004*.py")
    revision_file.write_text(revision_file.read_text() + "\n# edited in place\n")
    assert client.application.extensions["migctl"].registry.get("db").graph() is first
    new = ini.parent / "migrations" / "versions" / "a5000005_more.py"
    new.write_text(
        revision_file.read_text()
        .replace("a4000004", "a5000005")
        .replace('down_revision = "a3000003"', 'down_revision = "a4000004"')
    )
    assert client.get("/api/v1/databases/db/heads").json[0]["revision"] == "a5000005"


def test_readiness_names_an_env_py_with_a_syntax_error_without_running_it(
    project: Callable[[str], Path], make_database: Callable[[], str]
) -> None:
    ini = project("linear")
    env_py = ini.parent / "migrations" / "env.py"
    env_py.write_text(env_py.read_text() + "\ndef broken(:\n")
    client = client_for(
        managed("dev", ini, make_database()),
        managed("other", project("nested_versions"), make_database()),
    )
    response = client.get("/health/ready")
    assert response.status_code == 200 and response.json["status"] == "degraded"
    (failing,) = [check for check in response.json["checks"] if not check["ok"]]
    assert failing["name"] == "project:dev" and failing["code"] == "project-unavailable"
    assert "migrations/env.py" in failing["detail"] and "SyntaxError" in failing["detail"]
    status = client.get("/api/v1/databases/dev/status")
    assert status.status_code == 503 and status.json["path"] == "migrations/env.py"
    assert status.json["line"]
