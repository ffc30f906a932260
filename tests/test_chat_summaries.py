"""Chat-ready summaries over the API: a paragraph and Slack blocks, from the webhooks' renderer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flask.testing import FlaskClient

from service.api.app import create_app
from tests.helpers import alembic, managed, settings_for
from tests.test_operations import run_next


def client(project: Callable[[str], Path], url: str) -> tuple[FlaskClient, Path]:
    ini = project("linear")
    database = managed("shop", ini, url, environment="staging")
    settings = settings_for(database, public_url="https://migctl.example.com")
    return create_app(settings).test_client(), ini


def test_a_database_summary_says_how_far_behind_it_is_and_its_last_operation(
    project: Callable[[str], Path], database_url: str
) -> None:
    app, ini = client(project, database_url)
    alembic(ini, database_url, "upgrade", "a2000002")
    behind = app.get("/api/v1/databases/shop/summary").json
    assert behind["text"] == (
        "shop (staging) is at a2000002, 2 revision(s) behind (a3000003, a4000004 pending)."
    )
    queued = app.post(
        "/api/v1/databases/shop/operations",
        json={"action": "upgrade", "revision": "heads"},
        headers={"X-On-Behalf-Of": "alice"},
    ).json
    assert run_next(app) == "succeeded"
    done = app.get("/api/v1/databases/shop/summary").json
    assert done["text"].startswith("shop (staging) is up to date at a4000004. Last operation ")
    assert (
        f"{queued['id']}: upgrade to heads, asked by anonymous for alice, succeeded" in done["text"]
    )
    (button,) = done["blocks"][-1]["elements"]
    assert button["url"] == f"https://migctl.example.com/console/operations/{queued['id']}"


def test_an_operation_summary_has_the_same_blocks_a_slack_webhook_gets(
    project: Callable[[str], Path], database_url: str
) -> None:
    app, _ = client(project, database_url)
    queued = app.post(
        "/api/v1/databases/shop/operations", json={"action": "upgrade", "revision": "heads"}
    ).json
    waiting = app.get(f"/api/v1/operations/{queued['id']}/summary").json
    assert "is queued; 0 of 4 steps done." in waiting["text"]
    assert run_next(app) == "succeeded"
    summary = app.get(f"/api/v1/operations/{queued['id']}/summary").json
    assert "succeeded after" in summary["text"] and "4 of 4 steps done" in summary["text"]
    kinds = [block["type"] for block in summary["blocks"]]
    assert kinds == ["header", "section", "section", "actions"]
    assert app.get("/api/v1/operations/999/summary").json["code"] == "operation-not-found"
    assert app.get("/api/v1/databases/nope/summary").json["code"] == "database-not-found"
