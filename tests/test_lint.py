"""The lint of the SQL a change would run: rules, opt-outs, and the policy on queued operations."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.services.access import Role
from service.services.safety.rules import RULES
from service.services.tokens import new_token, token_entry
from tests.helpers import PostgresServer, client_for, managed, settings_for, stamp
from tests.projects import write_project, write_revision

pytestmark = pytest.mark.postgresql

# (rule id, an upgrade() body that breaks it on the existing table `account`)
BREAKING = [
    (
        "adding-required-column",
        'op.add_column("account", sa.Column("age", sa.Integer, nullable=False))',
    ),
    (
        "volatile-default",
        'op.add_column("account", sa.Column("seen", sa.DateTime, '
        'server_default=sa.text("clock_timestamp()")))',
    ),
    ("non-concurrent-index-creation", 'op.create_index("ix_owner", "account", ["owner_id"])'),
    ("non-concurrent-index-deletion", 'op.drop_index("ix_account_name", table_name="account")'),
    (
        "foreign-key-without-not-valid",
        'op.create_foreign_key("fk_owner", "account", "account", ["owner_id"], ["id"])',
    ),
    ("check-without-not-valid", 'op.create_check_constraint("ck_id", "account", "id > 0")'),
    ("setting-not-null", 'op.alter_column("account", "name", nullable=False)'),
    ("changing-column-type", 'op.alter_column("account", "owner_id", type_=sa.BigInteger)'),
    ("renaming-column", 'op.alter_column("account", "name", new_column_name="title")'),
    ("renaming-table", 'op.rename_table("account", "customer")'),
    ("dropping-column", 'op.drop_column("account", "name")'),
    ("dropping-table", 'op.drop_table("account")'),
    (
        "unique-constraint-without-index",
        'op.create_unique_constraint("uq_name", "account", ["name"])',
    ),
]

SAFE = """
op.execute("SET lock_timeout = '2s'")
op.add_column("account", sa.Column("age", sa.Integer, nullable=True))
op.add_column("account", sa.Column("kind", sa.String(8), nullable=False, server_default="x"))
op.add_column("account", sa.Column("born", sa.DateTime, server_default=sa.func.now()))
op.create_foreign_key(
    "fk_owner", "account", "account", ["owner_id"], ["id"], postgresql_not_valid=True
)
op.alter_column("account", "name", type_=sa.String(80))
with op.get_context().autocommit_block():
    op.create_index("ix_owner", "account", ["owner_id"], postgresql_concurrently=True)
    op.drop_index("ix_account_name", table_name="account", postgresql_concurrently=True)
"""


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> str:
    return postgres_server.create_database()


@pytest.fixture
def lint_client(tmp_path: Path, pg_url: str) -> Callable[..., FlaskClient]:
    def make(*upgrades: str, **policy: Any) -> FlaskClient:
        ini = write_project(tmp_path / "project", *upgrades)
        policy.setdefault("require_approval", False)  # lint alone, not the approvers' turn
        return client_for(managed("db", ini, pg_url, **policy))

    return make


def lint(client: FlaskClient, **query: str) -> dict[str, Any]:
    answer = client.get("/api/v1/databases/db/lint", query_string={"from": "r0", **query})
    assert answer.status_code == 200, answer.json
    return answer.json


@pytest.mark.parametrize(("rule", "body"), BREAKING, ids=[rule for rule, _ in BREAKING])
def test_each_rule_names_the_revision_and_statement_that_breaks_it_and_the_safe_way(
    lint_client: Callable[..., FlaskClient], rule: str, body: str
) -> None:
    report = lint(lint_client(body, lock_timeout="3s"))
    found = [f for f in report["findings"] if f["rule"] == rule]
    assert len(found) == 1, report["findings"]
    finding = found[0]
    assert finding["revision"] == "r1"
    assert finding["severity"] == "error"
    assert "account" in finding["statement"]
    assert finding["why"] and finding["instead"]
    assert report["linted"] is True and report["dialect"] == "postgresql"


def test_the_safe_alternatives_pass_the_lint(lint_client: Callable[..., FlaskClient]) -> None:
    report = lint(lint_client(SAFE))
    assert [(f["rule"], f["severity"]) for f in report["findings"]] == [
        ("changing-column-type", "warning")  # widening a varchar: no rewrite, still a lock
    ]
    assert report["blocked"] is False


def test_statements_on_tables_created_in_the_same_range_are_not_flagged(
    lint_client: Callable[..., FlaskClient],
) -> None:
    body = """
    op.create_table("invoice", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("invoice", sa.Column("total", sa.Integer, nullable=False))
    op.create_index("ix_invoice_total", "invoice", ["total"])
    """
    report = lint(lint_client(body))
    assert report["findings"] == []


def test_without_a_lock_timeout_the_first_locking_statement_is_flagged_once(
    lint_client: Callable[..., FlaskClient],
) -> None:
    client = lint_client(
        'op.add_column("account", sa.Column("a", sa.Integer))',
        'op.add_column("account", sa.Column("b", sa.Integer))',
    )
    report = lint(client)
    assert [(f["rule"], f["revision"]) for f in report["findings"]] == [
        ("missing-lock-timeout", "r1")
    ]


def test_a_revision_comment_opts_out_of_a_rule_and_the_finding_is_still_shown(
    lint_client: Callable[..., FlaskClient],
) -> None:
    body = '# migctl-lint: allow dropping-column, renaming-table\nop.drop_column("account", "name")'
    report = lint(lint_client(body, lock_timeout="3s", environment="production"))
    [finding] = report["findings"]
    assert finding["rule"] == "dropping-column"
    assert finding["opted_out"] is True and finding["blocks"] is False
    assert report["blocked"] is False and report["counts"]["opted_out"] == 1


def test_sql_for_another_dialect_is_not_linted_and_says_so(
    lint_client: Callable[..., FlaskClient],
) -> None:
    report = lint(lint_client('op.drop_table("account")'), dialect="sqlite")
    assert report["linted"] is False and report["findings"] == []
    assert "PostgreSQL" in report["note"]


def test_the_sql_preview_carries_the_lint_unless_the_policy_is_off(
    lint_client: Callable[..., FlaskClient],
) -> None:
    client = lint_client('op.drop_table("account")', lock_timeout="3s")
    preview = client.get("/api/v1/databases/db/sql", query_string={"from": "r0"}).json
    assert [f["rule"] for f in preview["lint"]["findings"]] == ["dropping-table"]
    assert preview["lint"]["policy"] == "warn"
    off = lint_client('op.drop_table("account")', lint="off")
    assert off.get("/api/v1/databases/db/sql", query_string={"from": "r0"}).json["lint"] is None


def queue(client: FlaskClient, **body: Any) -> Any:
    return client.post(
        "/api/v1/databases/db/operations", json={"action": "upgrade", "revision": "heads", **body}
    )


def audit_actions(client: FlaskClient) -> list[tuple[str, str, dict[str, Any]]]:
    events = client.get("/api/v1/audit-events", query_string={"database": "db"}).json
    return [(e["action"], e["outcome"], e["details"]) for e in events]


def test_a_production_database_refuses_an_upgrade_that_breaks_a_rule_listing_the_findings(
    lint_client: Callable[..., FlaskClient], pg_url: str
) -> None:
    client = lint_client('op.drop_column("account", "name")', environment="production")
    stamp(pg_url, "r0")
    answer = queue(client)
    assert answer.status_code == 422
    assert answer.json["code"] == "lint-blocked"
    assert answer.json["rules"] == ["dropping-column"]
    assert [f["revision"] for f in answer.json["findings"]] == ["r1"]
    assert client.get("/api/v1/operations").json == []
    [(action, outcome, details)] = audit_actions(client)
    assert (action, outcome, details["code"]) == ("operation.refused", "refused", "lint-blocked")


def test_an_admin_acknowledging_the_rules_queues_it_and_the_audit_event_names_them(
    lint_client: Callable[..., FlaskClient], pg_url: str
) -> None:
    client = lint_client('op.drop_column("account", "name")', environment="production")
    stamp(pg_url, "r0")
    answer = queue(client, acknowledge=["dropping-column"])
    assert answer.status_code == 202, answer.json
    [finding] = answer.json["lint"]["findings"]
    assert finding["acknowledged"] is True and answer.json["lint"]["blocked"] is False
    requested = [d for a, _o, d in audit_actions(client) if a == "operation.requested"]
    assert [d["acknowledged"] for d in requested] == [["dropping-column"]]


def test_acknowledging_another_rule_does_not_unblock_the_upgrade(
    lint_client: Callable[..., FlaskClient], pg_url: str
) -> None:
    client = lint_client('op.drop_column("account", "name")', environment="production")
    stamp(pg_url, "r0")
    answer = queue(client, acknowledge=["renaming-table"])
    assert answer.status_code == 422 and answer.json["code"] == "lint-blocked"


def test_under_warn_the_upgrade_is_queued_with_its_findings_on_the_operation(
    lint_client: Callable[..., FlaskClient], pg_url: str
) -> None:
    client = lint_client('op.drop_column("account", "name")', lint="warn", lock_timeout="3s")
    stamp(pg_url, "r0")
    answer = queue(client)
    assert answer.status_code == 202
    # Queued first, linted while its job may start: the answer carries the lint all the same.
    assert [f["rule"] for f in answer.json["lint"]["findings"]] == ["dropping-column"]
    operation = client.get(answer.headers["Location"]).json
    assert [f["rule"] for f in operation["lint"]["findings"]] == ["dropping-column"]
    assert operation["lint"]["policy"] == "warn" and operation["lint"]["linted"] is True


def test_an_operator_may_not_acknowledge_lint_findings(tmp_path: Path, pg_url: str) -> None:
    operator, admin = new_token(), new_token()
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        token_entry("ci", Role.OPERATOR, [], operator)
        + "\n"
        + token_entry("boss", Role.ADMIN, [], admin)
    )
    ini = write_project(tmp_path / "project", 'op.drop_column("account", "name")')
    database = managed("db", ini, pg_url, environment="production", require_approval=False)
    client = create_app(settings_for(database, tokens_file=tokens)).test_client()
    stamp(pg_url, "r0")
    answer = client.post(
        "/api/v1/databases/db/operations",
        json={"action": "upgrade", "revision": "heads", "acknowledge": ["dropping-column"]},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert answer.status_code == 403
    assert answer.json["code"] == "forbidden" and answer.json["permission"] == "override"


def test_the_readme_lists_every_rule_with_its_severity_why_and_alternative() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for rule in RULES.values():
        row = f"| `{rule.id}` | {rule.severity} | {rule.why} | {rule.instead} |"
        assert row in readme, rule.id


def test_an_opt_out_added_to_a_revision_changes_the_json_previews_etag(
    lint_client: Callable[..., FlaskClient], tmp_path: Path
) -> None:
    client = lint_client('op.drop_table("account")', lock_timeout="3s")
    first = client.get("/api/v1/databases/db/sql", query_string={"from": "r0"})
    write_revision(
        tmp_path / "project", 1, '# migctl-lint: allow dropping-table\nop.drop_table("account")'
    )
    again = client.get(
        "/api/v1/databases/db/sql",
        query_string={"from": "r0"},
        headers={"If-None-Match": first.headers["ETag"]},
    )
    assert again.status_code == 200
    assert again.json["sha256"] == first.json["sha256"]  # the same SQL
    assert again.json["lint"]["findings"][0]["opted_out"] is True


def test_an_operation_on_another_dialect_is_queued_with_a_lint_that_says_it_was_not_linted(
    tmp_path: Path,
) -> None:
    ini = write_project(tmp_path / "project", 'op.drop_table("account")')
    client = client_for(managed("db", ini, f"sqlite:///{tmp_path / 'db.sqlite'}", lint="block"))
    answer = queue(client)
    assert answer.status_code == 202
    lint = answer.json["lint"]
    assert (lint["linted"], lint["blocked"], lint["dialect"]) == (False, False, "sqlite")
    assert "only PostgreSQL SQL is linted" in lint["note"]
