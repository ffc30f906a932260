"""Who may do what: tokens, roles, database scope, policies, denials on record, hardening."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from service.api.app import create_app
from service.secrets import Secret
from service.services.access import Role
from service.services.redaction import log_redaction
from service.services.tokens import new_token, token_entry
from tests.helpers import managed, settings_for
from tests.leaks import leaks

TOKENS = {
    "viewer": (Role.VIEWER, []),
    "operator": (Role.OPERATOR, []),
    "admin": (Role.ADMIN, []),
    "scoped": (Role.ADMIN, ["staging"]),
}


@pytest.fixture
def tokens(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    issued = {name: new_token() for name in TOKENS}
    path = tmp_path / "tokens.toml"
    path.write_text(
        "\n".join(token_entry(n, TOKENS[n][0], TOKENS[n][1], t) for n, t in issued.items())
    )
    return path, issued


@pytest.fixture
def secured(
    project: Callable[[str], Path], tmp_path: Path, tokens: tuple[Path, dict[str, str]]
) -> Callable[..., FlaskClient]:
    ini = project("linear")
    databases = [
        managed("prod", ini, f"sqlite:///{tmp_path / 'prod.db'}", environment="production"),
        managed("staging", ini, f"sqlite:///{tmp_path / 'staging.db'}"),
    ]

    def make(**overrides: Any) -> FlaskClient:
        settings = settings_for(*databases, tokens_file=tokens[0], **overrides)
        return create_app(settings).test_client()

    return make


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def events(app: Flask, token: str, **query: Any) -> list[dict[str, Any]]:
    return (
        app.test_client()
        .get("/api/v1/audit-events", query_string=query, headers=bearer(token))
        .json
    )


# (method, path, JSON body): every endpoint, on a database in and out of the scoped token.
def endpoints(db: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    base = f"/api/v1/databases/{db}"
    return [
        ("GET", base, None),
        ("GET", f"{base}/status", None),
        ("GET", f"{base}/revisions", None),
        ("GET", f"{base}/revisions/head", None),
        ("GET", f"{base}/heads", None),
        ("GET", f"{base}/branches", None),
        ("GET", f"{base}/current", None),
        ("GET", f"{base}/pending", None),
        ("GET", f"{base}/sql", None),
        ("GET", f"{base}/operations", None),
        ("POST", f"{base}/operations", {"action": "upgrade", "revision": "heads"}),
        ("POST", f"{base}/operations", {"action": "downgrade", "revision": "base"}),
        ("POST", f"{base}/operations", {"action": "stamp", "revision": "heads"}),
    ]


UPGRADE, DOWNGRADE, STAMP = 10, 11, 12
EXPECTED = {
    # role: (staging statuses by endpoint index for the writes; reads are all 200)
    "viewer": {UPGRADE: 403, DOWNGRADE: 403, STAMP: 403},
    "operator": {UPGRADE: 202, DOWNGRADE: 403, STAMP: 403},
    "admin": {UPGRADE: 202, DOWNGRADE: 202, STAMP: 202},
    "scoped": {UPGRADE: 202, DOWNGRADE: 202, STAMP: 202},
}


@pytest.mark.parametrize("role", list(EXPECTED))
@pytest.mark.parametrize("db", ["staging", "prod"])
def test_each_role_gets_the_status_the_permission_table_gives_on_every_endpoint(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]], role: str, db: str
) -> None:
    client = secured()
    for index, (method, path, body) in enumerate(endpoints(db)):
        response = client.open(path, method=method, json=body, headers=bearer(tokens[1][role]))
        expected = EXPECTED[role].get(index, 200)
        if role == "scoped" and db == "prod":
            expected = 404  # a database outside its scope does not exist for it
        elif db == "prod" and index in (DOWNGRADE, STAMP) and expected == 202:
            expected = 403  # production's policy refuses downgrades and stamps
        assert response.status_code == expected, (role, method, path, body, response.json)


def test_a_scoped_token_lists_only_its_databases_operations_and_events(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    admin, scoped = bearer(tokens[1]["admin"]), bearer(tokens[1]["scoped"])
    body = {"action": "upgrade", "revision": "heads"}
    prod_op = client.post("/api/v1/databases/prod/operations", json=body, headers=admin).json
    client.post("/api/v1/databases/staging/operations", json=body, headers=admin)
    assert [d["name"] for d in client.get("/api/v1/databases", headers=scoped).json] == ["staging"]
    assert {o["database"] for o in client.get("/api/v1/operations", headers=scoped).json} == {
        "staging"
    }
    assert client.get(f"/api/v1/operations/{prod_op['id']}", headers=scoped).status_code == 404
    cancel = client.post(f"/api/v1/operations/{prod_op['id']}/cancel", headers=scoped)
    assert cancel.status_code == 404
    audit = client.get("/api/v1/audit-events", headers=scoped).json
    assert {e["database"] for e in audit} == {"staging"}


def test_a_missing_or_unknown_token_is_a_401_problem_with_www_authenticate(
    secured: Callable[..., FlaskClient],
) -> None:
    client = secured()
    for headers in ({}, bearer("migctl_not-a-real-token"), {"Authorization": "Basic eDp5"}):
        response = client.get("/api/v1/databases", headers=headers)
        assert response.status_code == 401 and response.json["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert response.content_type == "application/problem+json"


def test_health_and_docs_need_no_token_unless_docs_are_made_private(
    secured: Callable[..., FlaskClient],
) -> None:
    client = secured()
    assert client.get("/health/live").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    private = secured(docs_public=False)
    assert private.get("/openapi.json").status_code == 401
    assert private.get("/health/live").status_code == 200


def test_a_403_names_the_missing_permission_and_is_on_record(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    viewer = bearer(tokens[1]["viewer"])
    body = {"action": "upgrade", "revision": "heads"}
    response = client.post("/api/v1/databases/staging/operations", json=body, headers=viewer)
    assert response.status_code == 403 and response.json["code"] == "forbidden"
    assert response.json["permission"] == "upgrade" and response.json["role"] == "viewer"
    (event,) = events(client.application, tokens[1]["admin"], action="operation.refused")
    assert event["actor"] == "viewer" and event["details"]["code"] == "forbidden"


def test_production_refuses_downgrades_by_policy_and_the_refusal_is_audited(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    admin = bearer(tokens[1]["admin"])
    body = {"action": "downgrade", "revision": "base"}
    response = client.post("/api/v1/databases/prod/operations", json=body, headers=admin)
    assert response.status_code == 403 and response.json["code"] == "policy-refused"
    (event,) = events(client.application, tokens[1]["admin"], action="operation.refused")
    assert event["details"]["code"] == "policy-refused" and event["database"] == "prod"


def test_failed_authentications_are_audited_but_rate_limited_per_address(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    for _ in range(30):
        client.get("/api/v1/databases", headers=bearer("migctl_guess"))
    denied = events(client.application, tokens[1]["admin"], action="auth.denied")
    assert 1 <= len(denied) <= 5
    assert denied[0]["client_address"] and denied[0]["details"]["code"] == "unauthenticated"


def test_the_actor_is_the_token_name_and_on_behalf_of_is_recorded_but_not_trusted(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    headers = {**bearer(tokens[1]["operator"]), "X-On-Behalf-Of": "alice (chat)"}
    body = {"action": "upgrade", "revision": "heads"}
    queued = client.post("/api/v1/databases/staging/operations", json=body, headers=headers)
    assert queued.json["actor"] == "operator" and queued.json["on_behalf_of"] == "alice (chat)"
    body = {"action": "downgrade", "revision": "base"}
    refused = client.post("/api/v1/databases/staging/operations", json=body, headers=headers)
    assert refused.status_code == 403  # acting for someone grants nothing
    (requested,) = events(client.application, tokens[1]["admin"], action="operation.requested")
    assert requested["on_behalf_of"] == "alice (chat)"


def test_a_changed_tokens_file_is_picked_up_without_a_restart_and_a_broken_one_fails_closed(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    path, issued = tokens
    admin = bearer(issued["admin"])
    assert client.get("/api/v1/databases", headers=admin).status_code == 200
    fresh = new_token()
    path.write_text(token_entry("rotated", Role.ADMIN, [], fresh))  # admin's token is revoked
    assert client.get("/api/v1/databases", headers=admin).status_code == 401
    assert client.get("/api/v1/databases", headers=bearer(fresh)).status_code == 200
    path.write_text("this is [not toml")
    assert client.get("/api/v1/databases", headers=bearer(fresh)).status_code == 503


def test_token_create_prints_a_token_once_and_an_entry_that_works(
    tmp_path: Path, secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "service.cli",
            "token",
            "create",
            "--name",
            "ci-deploy",
            "--role",
            "operator",
            "--database",
            "staging",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    token = next(w for w in result.stdout.split() if w.startswith("migctl_"))
    entry = result.stdout[result.stdout.index("[tokens.ci-deploy]") :]
    assert token not in entry
    tokens[0].write_text(entry)
    client = secured()
    listed = client.get("/api/v1/databases", headers=bearer(token)).json
    assert [d["name"] for d in listed] == ["staging"]


def run_serve(environ: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "serve", "--bind", "0.0.0.0:0"],
        env={**clean, "PYTHONHASHSEED": "0", "MIGCTL_DATA_DIR": str(tmp_path), **environ},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_without_tokens_serve_refuses_any_address_but_loopback(tmp_path: Path) -> None:
    result = run_serve({}, tmp_path)
    assert result.returncode == 2 and "not a loopback address" in result.stderr


def test_bodies_over_the_limit_are_413_and_unknown_fields_422(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured(max_body_bytes=1024)
    admin = bearer(tokens[1]["admin"])
    big = {"action": "upgrade", "revision": "heads", "reason": "x" * 5000}
    response = client.post("/api/v1/databases/staging/operations", json=big, headers=admin)
    assert response.status_code == 413 and response.json["code"] == "payload-too-large"
    odd = {"action": "upgrade", "revision": "heads", "sudo": True}
    response = client.post("/api/v1/databases/staging/operations", json=odd, headers=admin)
    assert response.status_code == 422 and "sudo" in response.json["errors"]["json"]


def test_responses_carry_nosniff_and_authenticated_data_no_store(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    response = client.get("/api/v1/databases", headers=bearer(tokens[1]["viewer"]))
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/health/live").headers["X-Content-Type-Options"] == "nosniff"


def test_cors_is_off_by_default_and_allows_only_listed_origins(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    headers = {**bearer(tokens[1]["viewer"]), "Origin": "https://portal.example"}
    closed = secured().get("/api/v1/databases", headers=headers)
    assert "Access-Control-Allow-Origin" not in closed.headers
    client = secured(cors_origins=("https://portal.example",))
    allowed = client.get("/api/v1/databases", headers=headers)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://portal.example"
    other = client.get("/api/v1/databases", headers={**headers, "Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers


def _documented_response_headers() -> set[str]:
    spec = json.loads((Path(__file__).parent.parent / "openapi" / "openapi.json").read_text())
    responses = [
        response
        for item in spec["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict)
        for response in operation.get("responses", {}).values()
    ]
    responses += spec["components"]["responses"].values()
    return {name for response in responses for name in response.get("headers", {})}


def test_a_browser_client_may_read_every_response_header_the_spec_documents(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured(cors_origins=("https://portal.example",))
    headers = {**bearer(tokens[1]["viewer"]), "Origin": "https://portal.example"}
    response = client.get("/api/v1/databases", headers=headers)
    exposed = {
        name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")
    }
    documented = _documented_response_headers()
    assert {"Retry-After", "X-Pagination", "ETag", "Location"} <= documented
    assert documented | {"X-Request-ID"} <= exposed


PASSWORD = "pw-Zq81vTn3"
ENCODED = "Sp%40c!al%2Fpw-4kT9q"  # configured percent-encoded: "Sp@c!al/pw-4kT9q"


def test_a_known_password_and_token_never_appear_in_any_response_or_log_line(
    project: Callable[[str], Path],
    tmp_path: Path,
    tokens: tuple[Path, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ini = project("linear")
    unreachable = f"postgresql+psycopg2://app:{PASSWORD}@127.0.0.1:1/app"
    reachable = f"sqlite:///{tmp_path / 'x.db'}?password={PASSWORD}"
    settings = settings_for(
        managed("down", ini, unreachable, env={"API_KEY": PASSWORD}),
        managed("up", ini, reachable),
        managed("encoded", ini, f"postgresql+psycopg2://app:{ENCODED}@127.0.0.1:1/app"),
        tokens_file=tokens[0],
    )
    log_redaction(settings, [caplog.handler])  # as migctl's processes do on their handlers
    client = create_app(settings).test_client()
    token = tokens[1]["admin"]
    seen = []
    with caplog.at_level(logging.DEBUG):
        for db in ("down", "up", "encoded"):
            for method, path, body in endpoints(db):
                response = client.open(path, method=method, json=body, headers=bearer(token))
                seen.append(response.get_data(as_text=True))
        for path in (
            "/api/v1/databases",
            "/api/v1/operations",
            "/api/v1/audit-events",
            "/health/ready",
            "/openapi.json",
            f"/api/v1/databases?token={token}",
            f"/api/v1/databases/{token[:24]}",  # an unknown database: the problem quotes it
        ):
            seen.append(client.get(path, headers=bearer(token)).get_data(as_text=True))
        logging.getLogger("service.probe").warning("token %s, its end %s", token, token[-10:])
        client.get("/api/v1/databases", headers=bearer(token[:-1]))  # a denial, audited
    seen.append(client.get("/api/v1/audit-events", headers=bearer(token)).get_data(as_text=True))
    text = "\n".join(seen) + caplog.text
    assert "token migctl_***, its end ***" in caplog.text
    assert leaks(text, PASSWORD, ENCODED, token) == []
    recorded = control_database_text(settings.control_database_url.reveal())
    assert "operation.requested" in recorded  # the dump reads the rows this test caused
    assert PASSWORD not in recorded and token not in recorded


def control_database_text(url: str) -> str:
    """Every row of every table of the control database, as text."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            tables = sa.MetaData()
            tables.reflect(connection)
            return "\n".join(
                repr(tuple(row))
                for table in tables.sorted_tables
                for row in connection.execute(sa.select(table))
            )
    finally:
        engine.dispose()


def test_a_bad_token_while_the_control_database_is_down_is_still_a_401_and_logged(
    secured: Callable[..., FlaskClient], caplog: pytest.LogCaptureFixture
) -> None:
    down = Secret("postgresql+psycopg2://postgres@127.0.0.1:1/migctl")
    client = secured(control_database_url=down)
    headers = {**bearer("migctl_guess"), "X-Request-ID": "req-denied-while-down"}
    with caplog.at_level(logging.WARNING):
        response = client.get("/api/v1/databases", headers=headers)
    assert response.status_code == 401 and response.json["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    (record,) = [r for r in caplog.records if "req-denied-while-down" in r.getMessage()]
    assert record.levelno == logging.WARNING


def write_tokens(path: Path, issued: dict[str, str], **changed: tuple[Role, list[str]]) -> None:
    """The tokens file with the same tokens, some of them given another role or scope."""
    entries = {name: changed.get(name, TOKENS[name]) for name in issued}
    path.write_text(
        "\n".join(token_entry(n, *entries[n], issued[n]) for n in sorted(issued))  # type: ignore[misc]
    )


def test_replaying_an_idempotency_key_checks_the_token_as_it_is_now_and_is_audited(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    path, issued = tokens
    client = secured()
    headers = {**bearer(issued["operator"]), "Idempotency-Key": "deploy-42"}
    body = {"action": "upgrade", "revision": "heads"}
    url = "/api/v1/databases/staging/operations"
    first = client.post(url, json=body, headers=headers)
    assert first.status_code == 202
    replayed = client.post(url, json=body, headers=headers)
    assert replayed.status_code == 202 and replayed.json["id"] == first.json["id"]
    write_tokens(path, issued, operator=(Role.VIEWER, []))
    forbidden = client.post(url, json=body, headers=headers)
    assert forbidden.status_code == 403 and forbidden.json["code"] == "forbidden"
    write_tokens(path, issued, operator=(Role.OPERATOR, ["prod"]))
    hidden = client.post(url, json=body, headers=headers)
    assert hidden.status_code == 404 and hidden.json["code"] == "database-not-found"
    assert "operation_id" not in hidden.json
    admin = issued["admin"]
    requested = events(client.application, admin, action="operation.requested")
    assert [e["outcome"] for e in requested] == ["replayed", "accepted"]
    assert requested[0]["operation_id"] == first.json["id"]
    refused = events(client.application, admin, action="operation.refused")
    assert [e["details"]["code"] for e in refused] == ["database-not-found", "forbidden"]


def test_readiness_details_need_a_token_once_tokens_are_configured(
    project: Callable[[str], Path], tmp_path: Path, tokens: tuple[Path, dict[str, str]]
) -> None:
    databases = (
        managed("staging", project("linear"), f"sqlite:///{tmp_path / 'staging.db'}"),
        managed("legacy", project("broken_syntax"), f"sqlite:///{tmp_path / 'legacy.db'}"),
    )
    secured_app = create_app(settings_for(*databases, tokens_file=tokens[0]))
    anonymous = secured_app.test_client().get("/health/ready")
    assert anonymous.status_code == 200
    assert anonymous.json == {"status": "degraded", "problems": 1}
    for token in (tokens[1]["viewer"], "migctl_not-a-real-token"):
        answer = secured_app.test_client().get("/health/ready", headers=bearer(token))
        has_checks = "checks" in answer.json
        assert has_checks is (token == tokens[1]["viewer"])
    detailed = secured_app.test_client().get("/health/ready", headers=bearer(tokens[1]["viewer"]))
    broken = [check for check in detailed.json["checks"] if not check["ok"]]
    assert [check["name"] for check in broken] == ["project:legacy"] and broken[0]["detail"]
    open_app = create_app(settings_for(*databases))  # no tokens file: loopback quick start
    names = [c["name"] for c in open_app.test_client().get("/health/ready").json["checks"]]
    assert names == ["control-database", "worker", "project:staging", "project:legacy"]


def test_a_403_says_the_missing_permission_in_words(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    body = {"action": "upgrade", "revision": "heads"}
    viewer = bearer(tokens[1]["viewer"])
    response = client.post("/api/v1/databases/staging/operations", json=body, headers=viewer)
    expected = "Token 'viewer' (viewer) lacks the upgrade permission."
    assert response.json["detail"] == expected
    (event,) = events(client.application, tokens[1]["admin"], action="operation.refused")
    assert event["details"]["detail"] == expected


def test_an_unreadable_tokens_file_is_a_503_that_says_so_and_is_logged(
    secured: Callable[..., FlaskClient],
    tokens: tuple[Path, dict[str, str]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = secured()
    path, issued = tokens
    path.write_text("this is [not toml")
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/databases", headers=bearer(issued["admin"]))
    assert response.status_code == 503 and response.json["code"] == "auth-unavailable"
    assert "tokens file" in response.json["detail"] and str(path) not in response.json["detail"]
    assert response.headers["Retry-After"]
    assert str(path) in caplog.text  # the operator reads where in the log
    write_tokens(path, issued)
    assert client.get("/api/v1/databases", headers=bearer(issued["admin"])).status_code == 200


def test_a_scoped_token_lists_only_the_rollouts_of_its_own_databases(
    secured: Callable[..., FlaskClient], tokens: tuple[Path, dict[str, str]]
) -> None:
    client = secured()
    admin, scoped = bearer(tokens[1]["admin"]), bearer(tokens[1]["scoped"])
    body = {"action": "upgrade", "revision": "heads"}
    both = {**body, "selector": {"names": ["prod", "staging"]}}
    mine = {**body, "selector": {"names": ["staging"]}}
    client.post("/api/v1/rollouts", json=both, headers=admin)
    own = client.post("/api/v1/rollouts", json=mine, headers=admin).json["id"]

    assert len(client.get("/api/v1/rollouts", headers=admin).json) == 2
    assert [r["id"] for r in client.get("/api/v1/rollouts", headers=scoped).json] == [own]
