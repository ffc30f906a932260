"""Every read endpoint gives the answer the alembic CLI gives, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import alembic, client_for, managed

PROJECTS = [
    "linear",
    "branched",
    "two_heads",
    "depends_on",
    "custom_version_table",
    "env_database_url",
    "nested_versions",
    "example",
]


def first_tokens(output: str) -> list[str]:
    return [line.split()[0] for line in output.splitlines() if line and not line[0].isspace()]


def history_ids(output: str) -> list[str]:
    return [re.search(r"-> (\w+)", line).group(1) for line in output.splitlines() if "->" in line]


def offline_upgrade_ids(output: str) -> list[str]:
    return re.findall(r"^-- Running upgrade .*-> (\w+)$", output, flags=re.MULTILINE)


def all_revisions(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.get("/api/v1/databases/db/revisions?page_size=100")
    assert response.status_code == 200, response.json
    return response.json


def get(client: FlaskClient, path: str) -> Any:
    response = client.get(f"/api/v1/databases/db{path}")
    assert response.status_code == 200, response.json
    return response.json


def assert_matches_cli(client: FlaskClient, ini: Path, url: str) -> None:
    assert [r["revision"] for r in get(client, "/heads")] == first_tokens(
        alembic(ini, url, "heads")
    )
    assert [r["revision"] for r in get(client, "/branches")] == first_tokens(
        alembic(ini, url, "branches")
    )
    current = get(client, "/current")
    shown = sorted(r["revision"] for r in current["revisions"])
    assert shown == sorted(first_tokens(alembic(ini, url, "current")))
    revisions = all_revisions(client)
    assert [r["revision"] for r in revisions] == history_ids(alembic(ini, url, "history"))
    start = ",".join(current["heads"]) or "base"
    if len(current["heads"]) <= 1:
        expected = offline_upgrade_ids(alembic(ini, url, "upgrade", f"{start}:heads", "--sql"))
        assert [r["revision"] for r in get(client, "/pending")["revisions"]] == expected


@pytest.mark.parametrize("name", PROJECTS)
def test_every_read_endpoint_agrees_with_the_cli_before_during_and_after_an_upgrade(
    name: str, project: Callable[[str], Path], database_url: str
) -> None:
    ini = project(name)
    client = client_for(managed("db", ini, database_url))
    assert_matches_cli(client, ini, database_url)
    oldest = all_revisions(client)[-1]["revision"]
    alembic(ini, database_url, "upgrade", oldest)
    assert_matches_cli(client, ini, database_url)
    assert get(client, "/status")["up_to_date"] is False
    alembic(ini, database_url, "upgrade", "heads")
    assert_matches_cli(client, ini, database_url)
    status = get(client, "/status")
    assert status["up_to_date"] is True and status["state"] == "up_to_date"
    assert all(r["applied"] for r in all_revisions(client))


def test_applied_marks_exactly_the_revisions_the_database_has(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("branched")
    client = client_for(managed("db", ini, database_url))
    ids = [r["revision"] for r in reversed(all_revisions(client))]  # oldest first
    alembic(ini, database_url, "upgrade", ids[1])
    applied = {r["revision"] for r in all_revisions(client) if r["applied"]}
    assert applied == set(ids[:2])
    pending = get(client, "/pending")
    assert pending["count"] == len(ids) - 2
    assert not any(r["applied"] for r in pending["revisions"])
