"""The bundled example upgrades and downgrades with the alembic CLI and previews offline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import alembic, client_for, managed


def test_the_example_upgrades_to_heads_and_downgrades_to_base_with_the_alembic_cli(
    project: Callable[[str], Path], database_url: str
) -> None:
    ini = project("example")
    client = client_for(managed("shop", ini, database_url))
    assert client.get("/api/v1/databases/shop/status").json["pending_count"] == 12
    alembic(ini, database_url, "upgrade", "heads")
    status = client.get("/api/v1/databases/shop/status").json
    assert status["up_to_date"] is True and status["current_heads"] == ["5a3e9f7b0c64"]
    alembic(ini, database_url, "downgrade", "base")
    assert client.get("/api/v1/databases/shop/status").json["current_heads"] == []


@pytest.mark.parametrize("dialect_url", ["postgresql://", "sqlite://"])
def test_the_example_renders_offline_sql_in_both_directions(
    project: Callable[[str], Path], dialect_url: str
) -> None:
    ini = project("example")
    upgrade = alembic(ini, dialect_url, "upgrade", "heads", "--sql")
    downgrade = alembic(ini, dialect_url, "downgrade", "5a3e9f7b0c64:base", "--sql")
    assert upgrade.count("-- Running upgrade") == 12
    assert downgrade.count("-- Running downgrade") == 12


def test_the_example_has_the_graph_shapes_the_docs_promise(
    project: Callable[[str], Path], database_url: str
) -> None:
    client = client_for(managed("shop", project("example"), database_url))
    revisions = client.get("/api/v1/databases/shop/revisions?page_size=100").json
    assert len(revisions) >= 10
    assert any(r["is_branch_point"] for r in revisions) and any(r["is_merge"] for r in revisions)
    assert any(r["depends_on"] for r in revisions)
    assert any("reporting" in r["branch_labels"] for r in revisions)
    assert len(client.get("/api/v1/databases/shop/heads").json) == 1
