"""Drift checks: the models (env.py's target_metadata) against the database, over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.helpers import PostgresServer, alembic, client_for, managed, table_names
from tests.projects import FIXTURES, write_project

pytestmark = pytest.mark.postgresql

MODELS = """
import sqlalchemy as sa

metadata = sa.MetaData()
account = sa.Table(
    "account",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(NAME_LENGTH), nullable=True, index=True),
    sa.Column("owner_id", sa.Integer, nullable=True),
    EXTRA
)
"""


def project_with_models(root: Path, name_length: int = 40, extra: str = "") -> Path:
    env_py = (FIXTURES / "linear" / "migrations" / "env.py").read_text()
    root.mkdir(parents=True)
    (root / "env_with_models.py").write_text(
        env_py.replace("target_metadata = None", "from models import metadata as target_metadata")
    )
    ini = write_project(root, env_py=root / "env_with_models.py")
    (root / "models.py").write_text(
        MODELS.replace("NAME_LENGTH", str(name_length)).replace("EXTRA", extra)
    )
    return ini


def check(client: FlaskClient) -> dict:
    answer = client.post("/api/v1/databases/db/drift-checks")
    assert answer.status_code == 201, answer.json
    assert client.get(answer.headers["Location"]).json == answer.json
    return answer.json


@pytest.fixture
def url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


def test_models_that_match_the_database_show_no_drift(tmp_path: Path, url: str) -> None:
    ini = project_with_models(tmp_path / "project")
    alembic(ini, url, "upgrade", "heads")
    result = check(client_for(managed("db", ini, url)))
    assert result["drift"] is False and result["diffs"] == [] and result["total"] == 0
    assert result["database_heads"] == result["script_heads"] == ["r0"]


def test_a_model_change_without_a_revision_is_reported_as_structured_differences(
    tmp_path: Path, url: str
) -> None:
    ini = project_with_models(
        tmp_path / "project", name_length=80, extra='sa.Column("email", sa.String(120)),'
    )
    (tmp_path / "project" / "models.py").write_text(
        (tmp_path / "project" / "models.py").read_text()
        + '\ninvoice = sa.Table("invoice", metadata, sa.Column("id", sa.Integer, primary_key=True))'
    )
    alembic(ini, url, "upgrade", "heads")
    client = client_for(managed("db", ini, url))
    result = check(client)
    assert result["drift"] is True
    assert result["summary"] == {"add_table": 1, "add_column": 1, "modify_type": 1}
    by_kind = {item["kind"]: item for item in result["diffs"]}
    assert by_kind["add_table"]["table"] == "invoice"
    assert by_kind["add_column"] == {
        "kind": "add_column",
        "schema": None,
        "table": "account",
        "column": "email",
        "type": "VARCHAR(120)",
        "nullable": True,
    }
    assert by_kind["modify_type"]["from"] == "VARCHAR(40)"
    assert by_kind["modify_type"]["to"] == "VARCHAR(80)"
    [event] = client.get("/api/v1/audit-events", query_string={"action": "drift.checked"}).json
    assert (event["id"], event["outcome"]) == (result["id"], "drift")


def test_a_drift_check_reads_only_and_an_empty_database_gets_no_version_table(
    tmp_path: Path, url: str
) -> None:
    ini = project_with_models(tmp_path / "project")
    result = check(client_for(managed("db", ini, url)))
    assert result["summary"] == {"add_table": 1, "add_index": 1}
    assert table_names(url) == []


def test_a_project_without_target_metadata_answers_422_no_target_metadata(
    tmp_path: Path, url: str
) -> None:
    ini = write_project(tmp_path / "project")
    answer = client_for(managed("db", ini, url)).post("/api/v1/databases/db/drift-checks")
    assert answer.status_code == 422
    assert answer.json["code"] == "no-target-metadata"


def test_an_unknown_drift_check_is_404(tmp_path: Path, url: str) -> None:
    ini = write_project(tmp_path / "project")
    answer = client_for(managed("db", ini, url)).get("/api/v1/databases/db/drift-checks/7")
    assert answer.status_code == 404
    assert answer.json["code"] == "drift-check-not-found"
