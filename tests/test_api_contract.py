"""The API's contract: problem details for every error, OpenAPI spec, docs served locally."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask

from service.api.app import create_app
from service.api.problems import PROBLEMS
from service.cli import render_openapi
from service.errors import MigctlError
from tests.helpers import settings_for

SPEC = Path(__file__).parent.parent / "openapi" / "openapi.json"


@pytest.fixture
def app() -> Flask:
    return create_app(settings_for())


def test_the_committed_openapi_spec_is_what_the_app_serves() -> None:
    assert SPEC.read_text() == render_openapi(), "run: migctl docs write"


def test_error_responses_are_documented_as_problem_json() -> None:
    responses = json.loads(SPEC.read_text())["components"]["responses"]
    for name in ("DEFAULT_ERROR", "NOT_FOUND", "CONFLICT", "SERVICE_UNAVAILABLE"):
        assert list(responses[name]["content"]) == ["application/problem+json"], name


# What clients were promised, written out here rather than read from the table under test.
STATUSES = {
    "database-not-found": 404,
    "revision-not-found": 404,
    "operation-not-found": 404,
    "ambiguous-revision": 422,
    "invalid-relative-step": 422,
    "revision-unresolvable": 422,
    "offline-unsupported": 422,
    "multiple-heads": 409,
    "unknown-database-revision": 409,
    "operation-not-cancellable": 409,
    "idempotency-key-reused": 409,
    "precondition-failed": 409,
    "project-unavailable": 503,
    "database-unavailable": 503,
    "control-database-unavailable": 503,
    "unauthenticated": 401,
    "csrf-failed": 403,
    "forbidden": 403,
    "policy-refused": 403,
    "auth-unavailable": 503,
    "too-many-streams": 503,
    "self-approval": 403,
    "approval-conflict": 409,
    "approval-stale": 409,
    "webhook-not-found": 404,
    "lint-blocked": 422,
    "revisions-modified": 409,
    "no-target-metadata": 422,
    "drift-check-not-found": 404,
    "lock-held": 409,
    "rollout-not-found": 404,
    "rollout-conflict": 409,
    "selection-empty": 422,
}


def test_every_mapped_error_has_a_promised_status_here() -> None:
    assert sorted(cls.code for cls in PROBLEMS) == sorted(STATUSES)


@pytest.mark.parametrize("error_class", list(PROBLEMS), ids=lambda cls: cls.code)
def test_every_mapped_error_becomes_a_problem_with_its_status_and_code(
    app: Flask, error_class: type[MigctlError]
) -> None:
    status, title = STATUSES[error_class.code], PROBLEMS[error_class][1]
    error = MigctlError.__new__(error_class)
    MigctlError.__init__(error, "what happened", revision="abc")

    @app.get("/raise")
    def raise_it() -> None:
        raise error

    response = app.test_client().get("/raise", headers={"X-Request-ID": "req-42"})
    assert response.status_code == status
    assert response.content_type == "application/problem+json"
    assert response.json == {
        "type": f"urn:migctl:problem:{error_class.code}",
        "title": title,
        "status": status,
        "code": error_class.code,
        "instance": "/raise",
        "request_id": "req-42",
        "detail": "what happened",
        "revision": "abc",
    }


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/v1/nowhere", 404, "not-found"),
        ("post", "/api/v1/databases", 405, "method-not-allowed"),
        ("get", "/api/v1/databases/nope/status", 404, "database-not-found"),
        ("get", "/api/v1/databases/bad%20name/status", 404, "not-found"),
        ("get", "/api/v1/databases?page_size=1000", 422, "validation-failed"),
        ("get", "/api/v1/databases?page=0", 422, "validation-failed"),
    ],
)
def test_framework_errors_are_problems_too(
    app: Flask, method: str, path: str, status: int, code: str
) -> None:
    response = getattr(app.test_client(), method)(path)
    assert (response.status_code, response.json["code"]) == (status, code)
    assert response.content_type == "application/problem+json"


def test_a_405_still_says_which_methods_are_allowed(app: Flask) -> None:
    response = app.test_client().post("/api/v1/databases")
    assert "GET" in response.headers["Allow"]


def test_an_unexpected_exception_is_a_500_problem_without_internals(app: Flask) -> None:
    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500 and response.json["code"] == "internal-error"
    assert "secret internals" not in response.get_data(as_text=True)


def test_request_ids_are_echoed_or_made_up(app: Flask) -> None:
    client = app.test_client()
    assert (
        client.get("/health/live", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"]
        == "abc-1"
    )
    made_up = client.get("/health/live", headers={"X-Request-ID": "bad id <script>"}).headers
    assert re.fullmatch(r"[0-9a-f]{32}", made_up["X-Request-ID"])


def test_the_docs_page_loads_every_asset_from_the_service_itself(app: Flask) -> None:
    client = app.test_client()
    response = client.get("/docs")
    page = response.get_data(as_text=True)
    response.close()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(url.startswith("/docs/") for url in assets)
    assert "script-src 'self';" in response.headers["Content-Security-Policy"]
    assert "<script>" not in page  # no inline script: the policy above can stay strict
    for url in assets:
        response = client.get(url)
        assert response.status_code == 200, url
        response.close()


def test_lists_are_paginated_with_flask_smorest_headers(app: Flask) -> None:
    response = app.test_client().get("/api/v1/databases?page_size=5")
    assert json.loads(response.headers["X-Pagination"])["total"] == 0


def test_the_spec_says_when_the_docs_need_a_token_in_either_configuration() -> None:
    description = json.loads(SPEC.read_text())["info"]["description"]
    assert "need none while MIGCTL_DOCS_PUBLIC=true (the default)" in description
    assert "and a token when it is false" in description


@pytest.mark.parametrize(
    ("path", "unknown"),
    [
        ("/api/v1/operations?limit=2", ["limit"]),
        ("/api/v1/databases?page_size=5&pagesize=5&sort=name", ["pagesize", "sort"]),
        ("/api/v1/databases/x/sql?too=1", ["too"]),
        ("/api/v1/webhooks/x/deliveries?status=failed", ["status"]),
        ("/health/ready?verbose=1", ["verbose"]),
    ],
)
def test_an_unknown_query_parameter_is_refused_with_422_naming_it(
    app: Flask, path: str, unknown: list[str]
) -> None:
    response = app.test_client().get(path)
    assert response.status_code == 422, response.json
    assert response.json["code"] == "validation-failed"
    assert sorted(response.json["errors"]["query"]) == unknown
    assert all(name in response.json["detail"] for name in unknown)


def test_declared_query_parameters_are_still_accepted(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/api/v1/databases?page=1&page_size=5&environment=prod").status_code == 200
    assert client.get("/api/v1/operations?page_size=2&status=failed").status_code == 200
    assert client.get("/api/v1/audit-events?limit=2&actor=x").status_code == 200
