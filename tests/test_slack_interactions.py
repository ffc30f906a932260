"""Approve from Slack: signed interactivity requests, mapped to approvers by the webhooks file."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from service.services.chat_formats import render
from service.services.messages import Message
from tests.test_webhooks import SECRET, call, hooked, queue_upgrade, receiver  # noqa: F401

SLACK_PATH = "/api/v1/integrations/slack/interactions"


def slack_app(hooked: Callable[..., tuple[FlaskClient, Path]]) -> FlaskClient:  # noqa: F811
    client, path = hooked({}, require_approval=True, environment="production")
    path.write_text(
        '[slack]\nsigning_secret_env = "HOOK_SECRET"\n'
        '[slack.approvers]\nU0ALICE = "alice"\nU0ROOT = "root"\n'
    )
    return client


def click(
    client: FlaskClient,
    user: str,
    operation_id: int,
    action: str = "migctl_approve",
    *,
    age: int = 0,
    secret: str = SECRET,
) -> Any:
    payload = {
        "type": "block_actions",
        "user": {"id": user},
        "actions": [{"action_id": action, "value": str(operation_id)}],
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    timestamp = str(int(time.time()) - age)
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + digest.hexdigest(),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post(SLACK_PATH, data=body, headers=headers)


def status(client: FlaskClient, operation_id: int) -> str:
    return str(call(client, "GET", f"/operations/{operation_id}").json["status"])


def test_an_approver_clicking_approve_in_slack_queues_the_operation_as_that_person(
    hooked: Callable[..., tuple[FlaskClient, Path]],  # noqa: F811
) -> None:
    client = slack_app(hooked)
    operation_id = queue_upgrade(client)
    answer = click(client, "U0ALICE", operation_id)
    assert answer.status_code == 200
    assert answer.json["text"] == f"Operation {operation_id} is queued (alice)."
    (event,) = call(client, "GET", "/audit-events?action=approval.approved").json
    assert event["actor"] == "alice"
    assert status(client, operation_id) == "queued"


def test_slack_requests_with_a_bad_or_old_signature_change_nothing(
    hooked: Callable[..., tuple[FlaskClient, Path]],  # noqa: F811
) -> None:
    client = slack_app(hooked)
    operation_id = queue_upgrade(client)
    forged = click(client, "U0ALICE", operation_id, secret="whsec_not-the-secret")
    assert forged.status_code == 401 and forged.json["code"] == "unauthenticated"
    replayed = click(client, "U0ALICE", operation_id, age=301)
    assert replayed.status_code == 401
    assert status(client, operation_id) == "awaiting_approval"


def test_unknown_slack_users_and_the_requester_cannot_approve_from_slack(
    hooked: Callable[..., tuple[FlaskClient, Path]],  # noqa: F811
) -> None:
    client = slack_app(hooked)
    operation_id = queue_upgrade(client)  # requested by the token "root"
    stranger = click(client, "U0EVE", operation_id)
    assert "not an approver" in stranger.json["text"]
    requester = click(client, "U0ROOT", operation_id)
    assert "its requester cannot approve it" in requester.json["text"]
    assert requester.json["text"].startswith(f"Operation {operation_id} was requested by root")
    rejected = click(client, "U0ALICE", operation_id, "migctl_reject")
    assert rejected.json["text"] == f"Operation {operation_id} is rejected (alice)."


def test_an_approval_request_in_slack_carries_approve_and_reject_buttons() -> None:
    message = Message(
        event="approval.requested",
        title="prod: upgrade awaiting approval",
        text="...",
        data={"operation": {"id": 42}},
    )
    (actions,) = [b for b in render("slack", message)["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"]) for e in actions["elements"]] == [
        ("migctl_approve", "42"),
        ("migctl_reject", "42"),
    ]
