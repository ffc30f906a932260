"""The web console through Flask's test client: sign-in, sessions, CSRF, scope, pages."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.api.app import create_app
from service.services.access import Role
from service.services.fleet import refresh_states
from service.services.messages import operation_link
from service.services.tokens import new_token, token_entry
from tests.helpers import PostgresServer, client_for, managed, settings_for, stamp
from tests.projects import write_project

TOKENS = {
    "viewer": (Role.VIEWER, []),
    "operator": (Role.OPERATOR, []),
    "scoped": (Role.ADMIN, ["staging"]),
    "admin": (Role.ADMIN, []),
    "approver": (Role.APPROVER, []),
}


@pytest.fixture
def issued(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    tokens = {name: new_token() for name in TOKENS}
    path = tmp_path / "tokens.toml"
    path.write_text(
        "\n".join(token_entry(n, TOKENS[n][0], TOKENS[n][1], t) for n, t in tokens.items())
    )
    return path, tokens


@pytest.fixture
def make_app(project: Callable[[str], Path], tmp_path: Path) -> Callable[..., Flask]:
    def make(**overrides: object) -> Flask:
        prod = managed("prod", project("branched"), f"sqlite:///{tmp_path / 'prod.db'}")
        staging = managed("staging", project("linear"), f"sqlite:///{tmp_path / 'staging.db'}")
        live = managed(
            "live", project("linear"), f"sqlite:///{tmp_path / 'live.db'}", environment="production"
        )
        return create_app(settings_for(prod, staging, live, **overrides))

    return make


@pytest.fixture
def secured(make_app: Callable[..., Flask], issued: tuple[Path, dict[str, str]]) -> Flask:
    return make_app(tokens_file=issued[0])


def csrf(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get(path).text)
    assert found, f"no form on {path}"
    return found.group(1)


def sign_in(client: FlaskClient, token: str) -> None:
    form = {"token": token, "csrf_token": csrf(client, "/console/sign-in")}
    answer = client.post("/console/sign-in", data=form)
    assert answer.status_code == 302, answer.text


def test_without_tokens_the_console_opens_without_signing_in(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    fleet = client.get("/console/")
    assert fleet.status_code == 200
    assert 'href="/console/databases/prod"' in fleet.text
    assert client.get("/console/sign-in").headers["Location"] == "/console/"


def test_the_fleet_shows_the_states_workers_cached_filtered_by_state(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    client = app.test_client()
    assert client.get("/console/?state=behind").text.count("/console/databases/") == 0
    built = app.extensions["migctl"]
    refresh_states(built.registry, built.store, max_age_seconds=0)  # what a worker does
    behind = client.get("/console/?state=behind").text
    assert "/console/databases/prod" in behind and "/console/databases/staging" in behind
    assert "3 databases" in behind


def test_with_tokens_every_page_sends_a_stranger_to_sign_in_and_back(secured: Flask) -> None:
    answer = secured.test_client().get("/console/databases/prod?x=1")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/console/sign-in?next=/console/databases/prod")


def test_a_token_is_exchanged_once_for_an_httponly_strict_session_cookie(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    form = {"token": issued[1]["viewer"], "csrf_token": csrf(client, "/console/sign-in")}
    answer = client.post("/console/sign-in", data={**form, "next": "/console/audit"})
    cookie = next(
        c for c in answer.headers.getlist("Set-Cookie") if c.startswith("migctl_console=")
    )
    assert answer.headers["Location"] == "/console/audit"
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain HTTP here; Secure over HTTPS
    assert issued[1]["viewer"] not in cookie
    assert client.get("/console/").status_code == 200


def test_an_unknown_token_is_refused_and_recorded_on_the_audit_log(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    form = {"token": "migctl_wrong", "csrf_token": csrf(client, "/console/sign-in")}
    answer = client.post("/console/sign-in", data=form)
    assert answer.status_code == 401
    assert "not known" in answer.text
    events = secured.test_client().get(
        "/api/v1/audit-events",
        query_string={"action": "auth.denied"},
        headers={"Authorization": f"Bearer {issued[1]['viewer']}"},
    )
    assert [e["details"]["request"] for e in events.json] == ["POST /console/sign-in"]


def test_sign_in_never_sends_the_browser_to_another_site(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    hostile = (
        "https://evil.example/",
        "//evil.example/console",
        "/console\\@evil",
        "/console/\r\nX: y",
    )
    for target in hostile:
        form = {"token": issued[1]["viewer"], "csrf_token": csrf(client, "/console/sign-in")}
        answer = client.post("/console/sign-in", data={**form, "next": target})
        assert answer.headers["Location"] == "/console/"


def test_a_form_without_the_session_csrf_token_is_refused(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    answer = client.post("/console/databases/staging/operations", data={"revision": "heads"})
    assert answer.status_code == 403
    assert "csrf-failed" in answer.text
    listed = client.get("/console/operations").text
    assert "/console/operations/1" not in listed


def test_a_csrf_token_of_any_text_is_refused_not_a_server_error(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    for sent in ("é" * 64, "\x00", ""):
        form = {"revision": "heads", "csrf_token": sent}
        assert client.post("/console/databases/staging/operations", data=form).status_code == 403


def test_a_sign_in_form_from_another_site_is_refused(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    answer = secured.test_client().post(
        "/console/sign-in", data={"token": issued[1]["viewer"], "csrf_token": "0" * 64}
    )
    assert answer.status_code == 403


def test_signing_out_ends_the_session_on_the_server(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["viewer"])
    session = client.get_cookie("migctl_console", path="/console")
    assert session is not None
    answer = client.post("/console/sign-out", data={"csrf_token": csrf(client, "/console/")})
    assert answer.headers["Location"] == "/console/sign-in"
    replay = secured.test_client()
    replay.set_cookie("migctl_console", session.value, path="/console")
    assert replay.get("/console/").status_code == 302


def test_a_revoked_token_ends_its_sessions(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["viewer"])
    path, tokens = issued
    path.write_text(token_entry("operator", Role.OPERATOR, [], tokens["operator"]))
    assert client.get("/console/").status_code == 302


def test_a_viewer_sees_the_change_but_may_not_queue_it(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["viewer"])
    page = client.get("/console/databases/staging/change")
    assert '<span class="k">CREATE</span>' in page.text
    assert "may not upgrade" in page.text
    form = {"revision": "heads", "csrf_token": csrf(client, "/console/")}
    answer = client.post("/console/databases/staging/operations", data=form)
    assert answer.status_code == 403
    assert "forbidden" in answer.text


def test_a_scoped_token_does_not_learn_other_databases_exist(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["scoped"])
    assert "/console/databases/prod" not in client.get("/console/").text
    answer = client.get("/console/databases/prod")
    assert answer.status_code == 404
    assert "database-not-found" in answer.text


def test_an_operator_queues_an_upgrade_with_a_reason_and_lands_on_its_page(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    form = {"revision": "heads", "reason": "release 42", "csrf_token": csrf(client, "/console/")}
    answer = client.post("/console/databases/staging/operations", data=form)
    assert answer.status_code == 303
    page = client.get(answer.headers["Location"])
    assert "release 42" in page.text and 'data-status="queued"' in page.text
    audit = client.get("/console/audit", query_string={"action": "operation.requested"})
    assert "operation.requested" in audit.text and "operator" in audit.text


def test_the_database_page_draws_every_revision_with_branches_and_the_merge(
    make_app: Callable[..., Flask],
) -> None:
    page = make_app().test_client().get("/console/databases/prod").text
    assert 'data-revisions="7"' in page
    nodes = re.findall(r'<a id="rev-(\w+)" href="/console/databases/prod/revisions/\1"', page)
    assert len(nodes) == 7
    assert page.count("<path d=") == 7  # six parents, and the merge's second one


def test_a_revision_page_shows_its_sql_in_the_dialect_asked_for(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    page = client.get("/console/databases/prod/revisions/b0000000?dialect=postgresql")
    assert page.status_code == 200
    assert 'aria-current="page">postgresql' in page.text
    assert '<span class="k">CREATE</span>' in page.text


def test_console_pages_forbid_inline_scripts_and_framing(make_app: Callable[..., Flask]) -> None:
    answer = make_app().test_client().get("/console/")
    policy = answer.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert answer.headers["Cache-Control"] == "no-store"
    assert "<script>" not in answer.text


def queue_on_live(client: FlaskClient) -> str:
    form = {"revision": "heads", "reason": "ship it", "csrf_token": csrf(client, "/console/")}
    answer = client.post("/console/databases/live/operations", data=form)
    assert answer.status_code == 303
    return str(answer.headers["Location"])


def test_the_change_page_says_when_a_database_needs_approval(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    assert "needs 1 approval by another person" in client.get("/console/databases/live/change").text
    assert "by another person" not in client.get("/console/databases/staging/change").text


def test_a_second_person_approves_while_the_requester_is_refused(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    requester, approver = secured.test_client(), secured.test_client()
    sign_in(requester, issued[1]["admin"])
    sign_in(approver, issued[1]["approver"])
    page = queue_on_live(requester)
    mine = requester.get(page).text
    assert 'data-status="awaiting_approval"' in mine and "another person must approve" in mine
    approve = page + "/approve"
    refused = requester.post(approve, data={"csrf_token": csrf(requester, page)})
    assert refused.status_code == 403 and "self-approval" in refused.text
    waiting = approver.get("/console/approvals").text
    assert page in waiting and "ship it" in waiting
    assert approver.post(approve, data={"csrf_token": csrf(approver, page)}).status_code == 303
    decided = approver.get(page).text
    assert 'data-status="queued"' in decided and "approved</span> by approver" in decided


def test_the_approvals_list_names_whom_a_bot_asked_for_and_links_each_decision(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    bot, approver, requester = (secured.test_client() for _ in range(3))
    asked = bot.post(
        "/api/v1/databases/live/operations",
        json={"action": "upgrade", "revision": "heads"},
        headers={
            "Authorization": f"Bearer {issued[1]['operator']}",
            "X-On-Behalf-Of": "alice (chat)",
        },
    )
    assert asked.status_code == 202, asked.json
    page = f"/console/operations/{asked.json['id']}"
    sign_in(approver, issued[1]["approver"])
    waiting = approver.get("/console/approvals").text
    assert "operator for alice (chat)" in waiting
    assert f'href="{page}#approval-title">Review, then approve or reject</a>' in waiting
    sign_in(requester, issued[1]["operator"])
    mine = requester.get("/console/approvals").text
    assert "another person must approve" in mine and "Review, then approve" not in mine


def test_a_person_a_bot_asked_for_cannot_approve_it_in_the_console(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    bot, approver = secured.test_client(), secured.test_client()
    asked = bot.post(
        "/api/v1/databases/live/operations",
        json={"action": "upgrade", "revision": "heads"},
        headers={
            "Authorization": f"Bearer {issued[1]['operator']}",
            "X-On-Behalf-Of": "Approver (chat)",
        },
    )
    page = f"/console/operations/{asked.json['id']}"
    sign_in(approver, issued[1]["approver"])
    assert '<span class="badge">yours</span>' in approver.get("/console/approvals").text
    assert "another person must approve" in approver.get(page).text
    refused = approver.post(page + "/approve", data={"csrf_token": csrf(approver, page)})
    assert refused.status_code == 403 and "self-approval" in refused.text


def test_review_and_upgrade_is_offered_only_to_tokens_that_may_upgrade(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    viewer, operator = secured.test_client(), secured.test_client()
    sign_in(viewer, issued[1]["viewer"])
    sign_in(operator, issued[1]["operator"])
    assert "Review and upgrade" not in viewer.get("/console/databases/live").text
    assert "Review and upgrade" in operator.get("/console/databases/live").text


def test_a_rejection_needs_a_reason_and_ends_the_operation(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    requester, approver = secured.test_client(), secured.test_client()
    sign_in(requester, issued[1]["operator"])
    sign_in(approver, issued[1]["approver"])
    page = queue_on_live(requester)
    token = csrf(approver, page)
    answer = approver.post(page + "/reject", data={"csrf_token": token, "reason": " "})
    assert answer.status_code == 422
    answer = approver.post(page + "/reject", data={"csrf_token": token, "reason": "not today"})
    assert answer.status_code == 303
    assert "not today" in requester.get(page).text
    assert 'data-status="rejected"' in requester.get(page).text


def test_a_revision_page_shows_the_lint_of_its_postgresql_sql(tmp_path: Path) -> None:
    ini = write_project(tmp_path / "project", 'op.drop_table("account")')
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'db.sqlite'}"))
    page = client.get("/console/databases/db/revisions/r1?dialect=postgresql").text
    assert "<code>dropping-table</code>" in page
    assert "only PostgreSQL SQL is linted" in client.get("/console/databases/db/revisions/r1").text


@pytest.mark.postgresql
def test_under_lint_block_the_change_is_refused_until_an_admin_acknowledges_it(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    url = postgres_server.create_database()
    ini = write_project(tmp_path / "project", 'op.drop_column("account", "name")')
    client = client_for(managed("db", ini, url, environment="production"))
    stamp(url, "r0")
    page = client.get("/console/databases/db/change").text
    assert "<code>dropping-column</code>" in page and 'name="acknowledge"' in page
    form = {"revision": "heads", "csrf_token": csrf(client, "/console/databases/db/change")}
    refused = client.post("/console/databases/db/operations", data=form)
    assert refused.status_code == 422 and "lint-blocked" in refused.text
    acknowledged = {**form, "acknowledge": "dropping-column"}
    answer = client.post("/console/databases/db/operations", data=acknowledged)
    assert answer.status_code == 303
    assert "(acknowledged)" in client.get(answer.headers["Location"]).text


def test_an_operation_page_streams_its_events_to_the_signed_in_browser(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    form = {"revision": "heads", "csrf_token": csrf(client, "/console/")}
    page = client.post("/console/databases/staging/operations", data=form).headers["Location"]
    assert re.search(r"0 of \d steps", client.get(page).text)
    client.post(page + "/cancel", data={"csrf_token": csrf(client, page)})
    stream = client.get(page + "/events")
    assert stream.mimetype == "text/event-stream"
    assert "event: operation.queued" in stream.text and "event: operation.cancelled" in stream.text
    assert secured.test_client().get(page + "/events").status_code == 302  # not signed in


@pytest.mark.parametrize(
    "path",
    [
        "/console/operations/99999999999999999999",
        "/console/operations/7",
        "/console/rollouts/99999999999999999999",
        "/console/rollouts/7",
        "/console/databases/nope",
        "/console/databases/prod/revisions/nope",
        "/console/databases/prod/revisions/%00",
        "/console/databases/prod/change?to=%27%3B--",
    ],
)
def test_odd_console_urls_answer_a_page_never_a_server_error(
    make_app: Callable[..., Flask], path: str
) -> None:
    answer = make_app().test_client().get(path)
    assert answer.status_code in (200, 404, 422), answer.text


def test_odd_paging_parameters_are_clamped(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    assert client.get("/console/operations?page=99999999999999999999").status_code == 200
    assert client.get("/console/audit?before=99999999999999999999").status_code == 200


def test_an_expired_session_sends_the_browser_back_to_sign_in(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["viewer"])
    assert client.get("/console/").status_code == 200
    with secured.extensions["migctl"].store.transaction() as connection:
        connection.execute(
            sa.text("UPDATE migctl_console_sessions SET expires_at = :past"),
            {"past": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)},
        )
    assert client.get("/console/").headers["Location"].startswith("/console/sign-in")


def test_the_operation_link_of_webhook_messages_lands_on_its_page_after_sign_in(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    operator = secured.test_client()
    sign_in(operator, issued[1]["operator"])
    form = {"revision": "heads", "csrf_token": csrf(operator, "/console/")}
    queued = operator.post("/console/databases/staging/operations", data=form)
    operation_id = int(queued.headers["Location"].rsplit("/", 1)[1])
    link = operation_link("https://migctl.example", operation_id)
    assert link is not None
    path = link.removeprefix("https://migctl.example")
    reader = secured.test_client()
    sent_to = reader.get(path).headers["Location"]
    form = {"token": issued[1]["viewer"], "csrf_token": csrf(reader, sent_to)}
    signed_in = reader.post(sent_to, data=form)
    assert signed_in.headers["Location"] == path
    assert f"Operation {operation_id}: upgrade" in reader.get(path).text


def test_behind_an_https_public_url_the_session_cookie_is_secure(
    make_app: Callable[..., Flask], issued: tuple[Path, dict[str, str]]
) -> None:
    client = make_app(tokens_file=issued[0], public_url="https://migctl.example").test_client()
    form = {"token": issued[1]["viewer"], "csrf_token": csrf(client, "/console/sign-in")}
    answer = client.post("/console/sign-in", data=form)
    [session] = [c for c in answer.headers.getlist("Set-Cookie") if c.startswith("migctl_console=")]
    assert "; Secure" in session


def test_submitting_the_same_change_form_twice_queues_one_operation(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    page = client.get("/console/databases/staging/change").text
    found = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert found
    form = {
        "revision": "heads",
        "idempotency_key": found.group(1),
        "csrf_token": csrf(client, "/console/"),
    }
    first = client.post("/console/databases/staging/operations", data=form)
    second = client.post("/console/databases/staging/operations", data=form)
    assert first.headers["Location"] == second.headers["Location"]
    assert client.get("/console/operations").text.count('href="/console/operations/') == 1


def test_the_audit_log_filters_by_operation_and_by_time(
    secured: Flask, issued: tuple[Path, dict[str, str]]
) -> None:
    client = secured.test_client()
    sign_in(client, issued[1]["operator"])
    for _ in range(2):
        form = {"revision": "heads", "csrf_token": csrf(client, "/console/")}
        client.post("/console/databases/staging/operations", data=form)
    one = client.get("/console/audit", query_string={"operation_id": "2"}).text
    assert 'href="/console/operations/2"' in one and 'href="/console/operations/1"' not in one
    later = client.get("/console/audit", query_string={"since": "2999-01-01T00:00"}).text
    assert "No events." in later
    bad = client.get("/console/audit", query_string={"since": "yesterday"})
    assert bad.status_code == 422


PAGES = [
    "/console/",
    "/console/databases/prod",
    "/console/databases/prod/change",
    "/console/databases/prod/revisions/head",
    "/console/operations",
    "/console/audit",
    "/console/approvals",
    "/console/rollouts",
]
QUERY_KEYS = ["to", "dialect", "state", "environment", "label", "page", "before", "since"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    page=st.sampled_from(PAGES),
    query=st.dictionaries(st.sampled_from(QUERY_KEYS), st.text(max_size=40), max_size=3),
)
def test_no_query_makes_a_console_page_fail(
    fuzzed_app: Flask, page: str, query: dict[str, str]
) -> None:
    answer = fuzzed_app.test_client().get(page, query_string=query)
    assert answer.status_code in (200, 404, 422), answer.text[:500]


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("fuzzed")
    ini = write_project(folder / "project", 'op.drop_table("account")')
    return create_app(settings_for(managed("prod", ini, f"sqlite:///{folder / 'db.sqlite'}")))


def test_the_database_page_says_whether_applied_files_changed(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    stamp(f"sqlite:///{tmp_path / 'prod.db'}", "b4000004")  # applied outside migctl
    page = make_app().test_client().get("/console/databases/prod").text
    assert "Applied files" in page
    assert "7 applied outside migctl" in page


def test_the_rollouts_page_lists_rollouts_and_links_each_to_its_databases_states(
    make_app: Callable[..., Flask],
) -> None:
    client = make_app().test_client()
    body = {"action": "upgrade", "revision": "heads", "selector": {"names": ["staging", "live"]}}
    rollout_id = client.post("/api/v1/rollouts", json=body).json["id"]
    client.post(f"/api/v1/rollouts/{rollout_id}/cancel")

    listed = client.get("/console/rollouts?status=cancelled").text
    assert f'href="/console/rollouts/{rollout_id}"' in listed and "2 skipped" in listed
    assert (
        f'href="/console/rollouts/{rollout_id}"'
        not in client.get("/console/rollouts?status=running").text
    )
    page = client.get(f"/console/rollouts/{rollout_id}").text
    assert 'href="/console/databases/staging"' in page and 'href="/console/databases/live"' in page
    assert page.count("rollout-stopped") == 2 and "rollout cancelled by" in page
