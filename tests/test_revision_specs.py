"""Revision specs in /revisions/{rev} and /pending?to=: every form Alembic accepts, every error."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.helpers import client_for, managed, stamp

PROBLEM = "application/problem+json"


@pytest.fixture
def client_at(project: Callable[[str], Path], database_url: str) -> Callable[..., FlaskClient]:
    def make(name: str, *revisions: str) -> FlaskClient:
        if revisions:
            stamp(database_url, *revisions)
        return client_for(managed("db", project(name), database_url))

    return make


def revision(client: FlaskClient, spec: str) -> tuple[int, Any]:
    response = client.get(f"/api/v1/databases/db/revisions/{spec}")
    return response.status_code, response.json


def pending(client: FlaskClient, to: str) -> tuple[int, Any]:
    response = client.get("/api/v1/databases/db/pending", query_string={"to": to})
    return response.status_code, response.json


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a3000003", "a3000003"),
        ("a3", "a3000003"),
        ("head", "a4000004"),
        ("heads", "a4000004"),
        ("base", "a1000001"),
        ("head-1", "a3000003"),
        ("a4000004-2", "a2000002"),
        ("+1", "a3000003"),
        ("+2", "a4000004"),
        ("-1", "a1000001"),
    ],
)
def test_a_linear_project_resolves_ids_symbols_and_relative_steps(
    client_at: Callable[..., FlaskClient], spec: str, expected: str
) -> None:
    status, body = revision(client_at("linear", "a2000002"), spec)
    assert (status, body["revision"]) == (200, expected)


def test_one_revision_carries_its_graph_facts_and_docs(
    client_at: Callable[..., FlaskClient],
) -> None:
    status, body = revision(client_at("branched", "bx100001"), "bm300003")
    assert status == 200
    assert body["down_revisions"] == ["bx200002", "by200002"]
    assert body["is_merge"] and not body["is_branch_point"] and not body["is_head"]
    assert body["applied"] is False
    assert body["path"].startswith("migrations/versions/") and body["path"].endswith(".py")
    assert body["message"] and body["created_at"]
    _, point = revision(client_at("branched"), "b0000000")
    assert point["is_branch_point"] and point["is_base"] and point["applied"] is True
    assert point["next_revisions"] == ["bx100001", "by100001"]


@pytest.mark.parametrize(
    ("name", "current", "spec", "status", "code"),
    [
        ("linear", ["a2000002"], "zzzz9999", 404, "revision-not-found"),
        ("linear", ["a2000002"], "+5", 422, "invalid-relative-step"),
        ("linear", ["a2000002"], "-3", 422, "invalid-relative-step"),
        ("two_heads", [], "head", 409, "multiple-heads"),
        ("two_heads", [], "heads", 409, "multiple-heads"),
        ("two_heads", [], "t", 422, "ambiguous-revision"),
        ("two_heads", [], "billing@ts100001", 422, "revision-unresolvable"),
        ("two_heads", [], "nobranch@head", 404, "revision-not-found"),
    ],
)
def test_specs_that_cannot_name_one_revision_get_a_problem_with_a_stable_code(
    client_at: Callable[..., FlaskClient],
    name: str,
    current: list[str],
    spec: str,
    status: int,
    code: str,
) -> None:
    response = client_at(name, *current).get(f"/api/v1/databases/db/revisions/{spec}")
    assert (response.status_code, response.json["code"]) == (status, code)
    assert response.content_type == PROBLEM
    assert response.json["detail"]


def test_multiple_heads_problems_list_the_heads(client_at: Callable[..., FlaskClient]) -> None:
    status, body = revision(client_at("two_heads"), "head")
    assert status == 409 and body["heads"] == ["tb200002", "ts200002"]


def test_branch_labels_name_each_head_and_base(client_at: Callable[..., FlaskClient]) -> None:
    client = client_at("two_heads")
    assert revision(client, "billing@head")[1]["revision"] == "tb200002"
    assert revision(client, "search@head")[1]["revision"] == "ts200002"
    assert revision(client, "search@base")[1]["revision"] == "t0000000"


@pytest.mark.parametrize(
    ("current", "to", "expected"),
    [
        ([], "heads", ["t0000000", "ts100001", "ts200002", "tb100001", "tb200002"]),
        ([], "billing@head", ["t0000000", "tb100001", "tb200002"]),
        (["tb200002"], "heads", ["ts100001", "ts200002"]),
        (["tb100001", "ts100001"], "search@+1", ["ts200002"]),
        (["tb200002", "ts200002"], "heads", []),
        (["tb200002", "ts200002"], "t0000000", []),
    ],
)
def test_pending_follows_alembic_upgrade_across_branches(
    client_at: Callable[..., FlaskClient], current: list[str], to: str, expected: list[str]
) -> None:
    status, body = pending(client_at("two_heads", *current), to)
    assert status == 200, body
    assert [r["revision"] for r in body["revisions"]] == expected
    assert body["count"] == len(expected) and sorted(body["current_heads"]) == sorted(current)


@pytest.mark.parametrize(
    ("current", "to", "status", "code"),
    [
        ([], "head", 409, "multiple-heads"),
        (["tb100001", "ts100001"], "+1", 422, "invalid-relative-step"),
        ([], "nosuch", 404, "revision-not-found"),
        ([], "bad!spec", 422, "validation-failed"),
        ([], "x" * 200, 422, "validation-failed"),
    ],
)
def test_pending_refuses_destinations_alembic_would_refuse(
    client_at: Callable[..., FlaskClient], current: list[str], to: str, status: int, code: str
) -> None:
    response = client_at("two_heads", *current).get(
        "/api/v1/databases/db/pending", query_string={"to": to}
    )
    assert (response.status_code, response.json["code"]) == (status, code)


def test_validation_problems_keep_the_per_field_messages(
    client_at: Callable[..., FlaskClient],
) -> None:
    status, body = pending(client_at("linear"), "bad!spec")
    assert status == 422 and "to" in body["errors"]["query"]


def test_depends_on_counts_as_up_to_date_although_current_differs_from_heads(
    client_at: Callable[..., FlaskClient],
) -> None:
    client = client_at("depends_on", "o1000000")
    status = client.get("/api/v1/databases/db/status").json
    assert status["up_to_date"] is True and status["pending_count"] == 0
    assert status["current_heads"] == ["o1000000"]
    assert sorted(status["script_heads"]) == ["m1000000", "o1000000"]


@pytest.mark.parametrize(
    ("name", "current", "spec", "says"),
    [
        ("linear", [], "head-20", "'head-20' walks past base: only 3 revisions below head"),
        ("linear", [], "head-4", "'head-4' names base (before the first revision)"),
        ("linear", [], "a2000002+5", "walks past the head: only 2 revisions above a2000002"),
        ("linear", ["a2000002"], "-3", "walks past base: only 1 revision below the database's"),
        (
            "branched",
            [],
            "bm300003-1",
            "bm300003 is a merge revision with 2 parents (bx200002, by200002): name one",
        ),
        ("branched", [], "head-2", "after 1 revision down from head (b4000004), bm300003 is a"),
        ("branched", [], "b0000000+1", "b0000000 is a branch point: it has 2 children"),
    ],
)
def test_a_relative_step_that_cannot_be_walked_says_where_the_walk_fails(
    client_at: Callable[..., FlaskClient], name: str, current: list[str], spec: str, says: str
) -> None:
    client = client_at(name, *current)
    for status, body in (revision(client, spec), pending(client, spec)):
        assert (status, body["code"]) == (422, "invalid-relative-step"), body
        assert says in body["detail"]
        assert "Ambiguous walk" not in body["detail"]
