"""The checksum ledger: revisions edited or removed after migctl applied them are caught."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import PostgresServer, alembic, client_for, managed
from tests.projects import write_project, write_revision
from tests.test_operations import events, run_next

pytestmark = pytest.mark.postgresql

ADD_AGE = 'op.add_column("account", sa.Column("age", sa.Integer))'


@pytest.fixture
def applied(tmp_path: Path, postgres_server: PostgresServer) -> tuple[FlaskClient, Path, str]:
    """r0 applied outside migctl (the alembic CLI), r1 applied by migctl."""
    url = postgres_server.create_database()
    root = tmp_path / "project"
    ini = write_project(root, ADD_AGE)
    alembic(ini, url, "upgrade", "r0")
    client = client_for(managed("db", ini, url, lint="off"))
    assert queue(client).status_code == 202
    assert run_next(client) == "succeeded"
    return client, root, url


def queue(client: FlaskClient, **body: Any) -> Any:
    return client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads", **body}
    )


def verify(client: FlaskClient) -> dict[str, Any]:
    answer = client.get("/api/v1/databases/db/verify")
    assert answer.status_code == 200, answer.json
    return answer.json


def test_revisions_applied_by_migctl_verify_and_those_applied_outside_are_unrecorded(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, _root, _url = applied
    result = verify(client)
    assert result["ok"] is True and result["checked"] == 2
    assert result["modified"] == [] and result["missing"] == []
    assert result["unrecorded"] == [{"revision": "r0", "path": "migrations/versions/r0_step.py"}]


def test_an_applied_revision_edited_afterwards_is_modified_and_blocks_the_next_operation(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, root, _url = applied
    write_revision(root, 1, ADD_AGE + "  # edited after it ran")
    write_revision(root, 2, 'op.add_column("account", sa.Column("size", sa.Integer))')
    [modified] = verify(client)["modified"]
    assert modified["revision"] == "r1" and modified["applied_by"] == "anonymous"
    assert modified["sha256_recorded"] != modified["sha256_now"]
    assert modified["operation_id"] == 1 and modified["applied_at"]
    refused = queue(client)
    assert refused.status_code == 409
    assert refused.json["code"] == "revisions-modified"
    assert [item["revision"] for item in refused.json["modified"]] == ["r1"]


def test_an_admin_may_queue_despite_modified_revisions_and_the_request_says_so(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, root, _url = applied
    write_revision(root, 1, ADD_AGE + "  # edited after it ran")
    write_revision(root, 2, 'op.add_column("account", sa.Column("size", sa.Integer))')
    assert queue(client, accept_modified=True).status_code == 202
    requested = [e for e in events(client, database="db") if e["action"] == "operation.requested"]
    assert requested[0]["details"]["accept_modified"] is True


def test_accepting_records_the_files_now_as_the_baseline_and_is_audited(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, root, _url = applied
    write_revision(root, 1, ADD_AGE + "  # edited after it ran")
    answer = client.post("/api/v1/databases/db/verify/accept")
    assert answer.status_code == 200, answer.json
    assert answer.json["ok"] is True and answer.json["unrecorded"] == []
    [accepted] = [e for e in events(client, database="db") if e["action"] == "checksums.accepted"]
    assert accepted["details"] == {"modified": ["r1"], "missing": [], "unrecorded": ["r0"]}


def test_a_removed_applied_revision_is_missing(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, root, _url = applied
    write_revision(root, 2, 'op.add_column("account", sa.Column("size", sa.Integer))')
    assert queue(client).status_code == 202 and run_next(client) == "succeeded"
    # r1 leaves the chain: r2 now follows r0, and the file of r1 is gone
    (root / "migrations" / "versions" / "r1_step.py").unlink()
    text = (root / "migrations" / "versions" / "r2_step.py").read_text()
    (root / "migrations" / "versions" / "r2_step.py").write_text(
        # (another size: a bytecode cache of the same size and second would be taken for it)
        text.replace("down_revision = 'r1'", "down_revision = 'r0'  # r1 is gone")
    )
    result = verify(client)
    assert [item["revision"] for item in result["missing"]] == ["r1"]
    assert result["ok"] is False
    assert [item["revision"] for item in result["modified"]] == ["r2"]


def test_a_downgrade_forgets_the_revisions_it_took_off(
    applied: tuple[FlaskClient, Path, str],
) -> None:
    client, root, _url = applied
    assert queue(client, action="downgrade", revision="r0").status_code == 202
    assert run_next(client) == "succeeded"
    write_revision(root, 1, ADD_AGE + "  # rewritten while not applied: fine")
    result = verify(client)
    assert result["ok"] is True and result["checked"] == 1
