"""Two-person approval of operations on protected databases, through the API and the worker."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from service.api.app import create_app
from service.api.context import SERVICES
from service.errors import ConfigError
from service.services import approvals, execution
from service.services.access import Role
from service.services.tokens import new_token, token_entry
from service.settings import ManagedDatabase, Settings
from tests.helpers import alembic, managed, settings_for
from tests.test_operations import current, run_next

ROLES = {
    "ci": Role.OPERATOR,
    "boss": Role.ADMIN,
    "alice": Role.APPROVER,
    "bob": Role.APPROVER,
    "viewer": Role.VIEWER,
}


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    issued = {name: new_token() for name in ROLES}
    path = tmp_path / "tokens.toml"
    path.write_text("\n".join(token_entry(n, ROLES[n], [], t) for n, t in issued.items()))
    return issued


@pytest.fixture
def prod(
    project: Callable[[str], Path], tmp_path: Path, tokens: dict[str, str], database_url: str
) -> Callable[..., tuple[FlaskClient, Path, str]]:
    def make(**policy: Any) -> tuple[FlaskClient, Path, str]:
        ini, url = project("linear"), database_url  # SQLite and PostgreSQL
        database = dataclasses.replace(
            managed("prod", ini, url), environment="production", **policy
        )
        settings = settings_for(database, tokens_file=tmp_path / "tokens.toml")
        return create_app(settings).test_client(), ini, url

    return make


class As:
    """Requests made with one person's token (and maybe on someone's behalf)."""

    def __init__(self, client: FlaskClient, token: str, on_behalf_of: str = "") -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}
        if on_behalf_of:
            self.headers["X-On-Behalf-Of"] = on_behalf_of

    def post(self, path: str, **body: Any) -> Any:
        return self.client.post(f"/api/v1{path}", json=body, headers=self.headers)

    def get(self, path: str, **query: Any) -> Any:
        return self.client.get(f"/api/v1{path}", query_string=query, headers=self.headers)


def request_upgrade(person: As) -> dict[str, Any]:
    response = person.post("/databases/prod/operations", action="upgrade", revision="heads")
    assert response.status_code == 202, response.json
    return dict(response.json)


def nothing_to_claim(client: FlaskClient) -> bool:
    services = client.application.extensions[SERVICES]
    return execution.claim_next(services.store, "test-worker", 30) is None


def actions(person: As, operation_id: int) -> list[str]:
    events = person.get("/audit-events", operation_id=operation_id).json
    return [event["action"] for event in reversed(events)]


def test_an_upgrade_of_production_waits_for_an_approver_then_runs_what_was_reviewed(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, url = prod()
    ci, alice = As(client, tokens["ci"], "carol"), As(client, tokens["alice"])
    queued = request_upgrade(ci)
    assert queued["status"] == "awaiting_approval" and queued["approvals_required"] == 1
    review = queued["approval_review"]
    assert [step["revision"] for step in review["plan"]] == [
        "a1000001",
        "a2000002",
        "a3000003",
        "a4000004",
    ]
    assert len(review["files"]) == 4 and all(len(h) == 64 for h in review["files"].values())
    sql = alice.get("/databases/prod/sql", to="heads").json
    assert review["sql_sha256"] == sql["sha256"]  # shown, never compared
    assert nothing_to_claim(client)

    approved = alice.post(f"/operations/{queued['id']}/approve")
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "queued"
    assert approved.json["approvals"][0]["actor"] == "alice"
    assert run_next(client) == "succeeded"
    assert current(ini, url) == ["a4000004"]
    assert actions(alice, queued["id"]) == [
        "operation.requested",
        "approval.requested",
        "approval.approved",
        "operation.started",
        "operation.succeeded",
    ]


def test_the_requester_can_never_approve_its_own_operation(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod()
    boss = As(client, tokens["boss"])
    mine = request_upgrade(boss)
    refused = boss.post(f"/operations/{mine['id']}/approve")
    assert refused.status_code == 403 and refused.json["code"] == "self-approval"

    for_carol = request_upgrade(As(client, tokens["ci"], "carol"))
    carol_again = As(client, tokens["alice"], "carol")  # the same person, another token
    refused = carol_again.post(f"/operations/{for_carol['id']}/approve")
    assert refused.status_code == 403 and refused.json["code"] == "self-approval"
    operator = As(client, tokens["ci"], "dave")
    forbidden = operator.post(f"/operations/{for_carol['id']}/approve")
    assert forbidden.status_code == 403 and forbidden.json["code"] == "forbidden"
    assert boss.get(f"/operations/{for_carol['id']}").json["status"] == "awaiting_approval"
    refusals = boss.get("/audit-events", action="approval.refused").json
    assert {event["details"]["code"] for event in refusals} == {"self-approval", "forbidden"}


def test_a_person_is_the_same_whatever_their_channel_or_capitals(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(approvals_required=2)
    queued = request_upgrade(As(client, tokens["ci"], "alice (chat)"))
    for alice in (As(client, tokens["alice"]), As(client, tokens["bob"], "Alice")):
        refused = alice.post(f"/operations/{queued['id']}/approve")
        assert refused.status_code == 403 and refused.json["code"] == "self-approval"
    bob = As(client, tokens["bob"], "bob (slack)")
    assert bob.post(f"/operations/{queued['id']}/approve").status_code == 200
    bob_again = As(client, tokens["boss"], " BOB ")
    again = bob_again.post(f"/operations/{queued['id']}/approve")
    assert again.status_code == 409 and again.json["code"] == "approval-conflict"
    approved = As(client, tokens["boss"]).post(f"/operations/{queued['id']}/approve")
    assert approved.status_code == 200 and approved.json["status"] == "queued"


def test_two_required_approvals_need_two_different_people(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(approvals_required=2)
    alice, bob = As(client, tokens["alice"]), As(client, tokens["bob"])
    queued = request_upgrade(As(client, tokens["ci"]))
    first = alice.post(f"/operations/{queued['id']}/approve")
    assert first.status_code == 200 and first.json["status"] == "awaiting_approval"
    again = alice.post(f"/operations/{queued['id']}/approve")
    assert again.status_code == 409 and again.json["code"] == "approval-conflict"
    assert nothing_to_claim(client)
    second = bob.post(f"/operations/{queued['id']}/approve")
    assert second.status_code == 200 and second.json["status"] == "queued"
    assert [a["actor"] for a in second.json["approvals"]] == ["alice", "bob"]


def test_a_rejected_operation_ends_with_the_reason_and_never_runs(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, url = prod()
    bob = As(client, tokens["bob"])
    queued = request_upgrade(As(client, tokens["ci"]))
    assert bob.post(f"/operations/{queued['id']}/reject").status_code == 422
    rejected = bob.post(f"/operations/{queued['id']}/reject", reason="not during the sale")
    assert rejected.status_code == 200 and rejected.json["status"] == "rejected"
    assert rejected.json["approvals"][0]["reason"] == "not during the sale"
    late = As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve")
    assert late.status_code == 409 and late.json["operation_status"] == "rejected"
    assert nothing_to_claim(client) and current(ini, url) == []
    (event,) = bob.get("/audit-events", action="approval.rejected").json
    assert event["actor"] == "bob" and event["details"]["reason"] == "not during the sale"


def test_an_operation_not_approved_within_the_ttl_expires(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(approval_ttl_seconds=0.2)
    queued = request_upgrade(As(client, tokens["ci"]))
    time.sleep(0.3)
    late = As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve")
    assert late.status_code == 409 and late.json["operation_status"] == "expired"
    (event,) = As(client, tokens["boss"]).get("/audit-events", action="approval.expired").json
    assert event["operation_id"] == queued["id"] and event["actor"] == approvals.SYSTEM


def test_the_worker_expires_operations_left_awaiting_approval(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(approval_ttl_seconds=60)  # a loaded machine never reaches it
    queued = request_upgrade(As(client, tokens["ci"]))
    store = client.application.extensions[SERVICES].store
    assert approvals.expire_overdue(store) == []
    assert As(client, tokens["ci"]).get(f"/operations/{queued['id']}").json["status"] == (
        "awaiting_approval"
    )
    expires_at = dt.datetime.fromisoformat(queued["approval_expires_at"])
    assert approvals.expire_overdue(store, now=expires_at - dt.timedelta(seconds=1)) == []
    assert approvals.expire_overdue(store, now=expires_at + dt.timedelta(seconds=1)) == [
        queued["id"]
    ]
    assert As(client, tokens["ci"]).get(f"/operations/{queued['id']}").json["status"] == "expired"


def edit(ini: Path, revision: str) -> None:
    (path,) = (ini.parent / "migrations" / "versions").glob(f"*{revision}*.py")
    path.write_text(path.read_text() + "\n# edited after review\n")


def test_a_revision_file_changed_before_approval_cannot_be_approved(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, _ = prod()
    queued = request_upgrade(As(client, tokens["ci"]))
    edit(ini, "a3000003")
    refused = As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve")
    assert refused.status_code == 409 and refused.json["code"] == "approval-stale"
    assert refused.json["changed"] == ["a3000003"] and "request it again" in refused.json["detail"]


def test_an_operation_found_stale_at_approval_ends_expired_and_leaves_the_queue(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, _ = prod()
    ci, bob = As(client, tokens["ci"]), As(client, tokens["bob"])
    queued = request_upgrade(ci)
    edit(ini, "a3000003")
    stale = As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve")
    assert stale.status_code == 409 and stale.json["code"] == "approval-stale"
    ended = ci.get(f"/operations/{queued['id']}").json
    assert ended["status"] == "expired" and ended["error"]["code"] == "approval-stale"
    assert "request it again" in ended["error"]["message"]
    assert bob.get("/operations", status="awaiting_approval").json == []
    late = bob.post(f"/operations/{queued['id']}/approve")
    assert late.status_code == 409 and late.json["operation_status"] == "expired"
    (event,) = bob.get("/audit-events", action="approval.expired").json
    assert event["details"]["code"] == "approval-stale" and event["details"]["changed"] == [
        "a3000003"
    ]


def test_an_operation_overtaken_by_another_says_only_the_heads_and_plan_changed(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod()
    alice = As(client, tokens["alice"])
    ci = As(client, tokens["ci"])
    first, second = request_upgrade(ci), request_upgrade(ci)
    assert alice.post(f"/operations/{first['id']}/approve").status_code == 200
    assert run_next(client) == "succeeded"
    stale = alice.post(f"/operations/{second['id']}/approve")
    assert stale.status_code == 409 and stale.json["changed"] == ["heads", "plan"]
    assert stale.json["detail"].startswith(f"Operation {second['id']}: heads, plan changed since")


def test_the_worker_refuses_an_approved_operation_whose_revision_file_changed(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, url = prod()
    queued = request_upgrade(As(client, tokens["ci"]))
    assert (
        As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve").status_code == 200
    )
    edit(ini, "a2000002")
    assert run_next(client) == "failed"
    failed = As(client, tokens["ci"]).get(f"/operations/{queued['id']}").json
    assert failed["error"]["code"] == "approval-stale" and "a2000002" in failed["error"]["message"]
    assert current(ini, url) == []


def test_the_worker_refuses_an_approved_operation_once_the_database_moved(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, ini, url = prod()
    queued = request_upgrade(As(client, tokens["ci"]))
    assert (
        As(client, tokens["alice"]).post(f"/operations/{queued['id']}/approve").status_code == 200
    )
    alembic(ini, url, "upgrade", "a1000001")  # someone migrates by hand in between
    assert run_next(client) == "failed"
    failed = As(client, tokens["ci"]).get(f"/operations/{queued['id']}").json
    assert failed["error"]["code"] == "approval-stale"
    assert current(ini, url) == ["a1000001"]


def test_a_database_outside_production_runs_at_once_unless_its_policy_asks(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(require_approval=False)
    assert request_upgrade(As(client, tokens["ci"]))["status"] == "queued"
    staging = ManagedDatabase(
        name="s", url=managed("s", Path("x"), "sqlite://").url, alembic_config=Path("x")
    )
    assert not staging.needs_approval
    assert dataclasses.replace(staging, require_approval=True).needs_approval


def test_an_operation_awaiting_approval_can_be_cancelled(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod()
    ci = As(client, tokens["ci"])
    queued = request_upgrade(ci)
    cancelled = ci.post(f"/operations/{queued['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"


def test_a_database_shows_its_effective_policy_before_anyone_submits(
    prod: Callable[..., tuple[FlaskClient, Path, str]], tokens: dict[str, str]
) -> None:
    client, _, _ = prod(approvals_required=2, approval_ttl_seconds=3600.0)
    policy = As(client, tokens["ci"]).get("/databases/prod").json["policy"]
    assert policy == {
        "allow_downgrade": False,
        "allow_stamp": False,
        "require_approval": True,
        "approvals_required": 2,
        "approval_ttl": 3600.0,
        "lint": "block",
        "lock_timeout": "5s",
        "statement_timeout": None,
    }
    (listed,) = As(client, tokens["ci"]).get("/databases").json
    assert listed["policy"] == policy


def test_the_databases_file_sets_the_approval_policy_and_refuses_nonsense(tmp_path: Path) -> None:
    ini = tmp_path / "alembic.ini"
    ini.write_text("[alembic]\nscript_location = migrations\n")
    path = tmp_path / "databases.toml"
    path.write_text(
        '[databases.prod]\nurl = "sqlite://"\nalembic_config = "alembic.ini"\n'
        'environment = "production"\n'
        '[databases.qa]\nurl = "sqlite://"\nalembic_config = "alembic.ini"\n'
        "require_approval = true\napprovals_required = 2\napproval_ttl = 3600\n"
    )
    settings = Settings.from_env({"MIGCTL_DATABASES_FILE": str(path)})
    prod, qa = settings.database("prod"), settings.database("qa")
    assert prod is not None and prod.needs_approval and prod.approvals_required == 1
    assert prod.approval_ttl_seconds == 86_400
    assert qa is not None and qa.needs_approval and qa.approvals_required == 2
    assert qa.approval_ttl_seconds == 3600
    path.write_text(path.read_text().replace("approvals_required = 2", "approvals_required = 0"))
    with pytest.raises(ConfigError, match="approvals_required"):
        Settings.from_env({"MIGCTL_DATABASES_FILE": str(path)})


def test_the_readme_states_the_approval_ttl_range_the_databases_file_enforces(
    tmp_path: Path,
) -> None:
    (tmp_path / "alembic.ini").write_text("[alembic]\nscript_location = migrations\n")
    path = tmp_path / "databases.toml"
    path.write_text(
        '[databases.qa]\nurl = "sqlite://"\nalembic_config = "alembic.ini"\n'
        "require_approval = true\napproval_ttl = 59\n"
    )
    with pytest.raises(ConfigError, match="60 to 2592000 seconds"):
        Settings.from_env({"MIGCTL_DATABASES_FILE": str(path)})
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| `approval_ttl` |")]
    assert "60 to 2592000" in row
