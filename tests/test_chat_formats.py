"""One renderer, four formats: what a person needs at a glance, within each platform's limits."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from service.services.chat_formats import render
from service.services.messages import Message, operation_message
from service.store.audit import AuditEvent
from service.store.operations import OperationRecord, StepRecord

START = dt.datetime(2026, 12, 2, 6, 0, tzinfo=dt.UTC)


def failed_operation(
    error: str = 'relation "invoice" already exists', spec: str = "heads"
) -> OperationRecord:
    steps = tuple(
        StepRecord(i, f"a{i}00000{i}", "upgrade", START, 12.0, 1, "SQL", outcome)
        for i, outcome in ((1, "succeeded"), (2, "succeeded"), (3, "failed"))
    )
    values: dict[str, Any] = {name: None for name in OperationRecord.__dataclass_fields__}
    values.update(
        id=42,
        database="prod",
        action="upgrade",
        revision=spec,
        target_revisions=[],
        purge=False,
        status="failed",
        actor="ci-deploy",
        on_behalf_of="alice",
        planned_steps=[{"revision": f"a{i}", "direction": "upgrade"} for i in range(1, 5)],
        requested_at=START,
        started_at=START,
        finished_at=START + dt.timedelta(seconds=3.5),
        error_code="migration-failed",
        error_message=error,
        failed_revision="a3000003",
        steps=steps,
        approvals=(),
    )
    return OperationRecord(**values)


def event(action: str = "operation.failed") -> AuditEvent:
    return AuditEvent(actor="ci-deploy", action=action, outcome="failed", occurred_at=START, id=7)


def message(record: OperationRecord | None = None) -> Message:
    return operation_message(
        event(), record or failed_operation(), "production", "https://m.example"
    )


def test_a_failure_says_where_what_who_how_far_why_and_links_the_operation() -> None:
    text = message().text
    for part in (
        "prod (production)",
        "upgrade to heads",
        "ci-deploy for alice",
        "failed after 3.5 s",
        "2 of 4 steps",
        "a3000003",
        'relation "invoice" already exists',
    ):
        assert part in text, part
    assert message().link == "https://m.example/console/operations/42"


def texts(value: Any) -> list[str]:
    """Every string in a payload, for the platforms' character limits."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in texts(item)]
    if isinstance(value, list):
        return [t for item in value for t in texts(item)]
    return []


HUGE = failed_operation(error="<!channel> & " + "E" * 60_000, spec="x" * 255)


@pytest.mark.parametrize("record", [failed_operation(), HUGE], ids=["usual", "huge"])
def test_slack_stays_within_block_kit_limits_and_escapes_markup(record: OperationRecord) -> None:
    payload = render("slack", message(record))
    assert len(payload["text"]) <= 3000 and len(payload["blocks"]) <= 50
    for block in payload["blocks"]:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        if block["type"] == "section":
            assert len(block.get("text", {}).get("text", "")) <= 3000
            assert len(block.get("fields", [])) <= 10
            assert all(len(field["text"]) <= 2000 for field in block.get("fields", []))
    assert sum(len(t) for t in texts(payload["blocks"])) < 13_000
    assert "<!channel>" not in json.dumps(payload)  # would notify everyone in the channel
    (button,) = payload["blocks"][-1]["elements"]
    assert button["url"] == "https://m.example/console/operations/42"


@pytest.mark.parametrize("record", [failed_operation(), HUGE], ids=["usual", "huge"])
def test_discord_stays_within_its_content_and_embed_limits(record: OperationRecord) -> None:
    payload = render("discord", message(record))
    assert len(payload["content"]) <= 2000 and len(payload["embeds"]) <= 10
    (embed,) = payload["embeds"]
    assert len(embed["title"]) <= 256 and len(embed["description"]) <= 4096
    assert len(embed["fields"]) <= 25
    assert all(len(f["name"]) <= 256 and 0 < len(f["value"]) <= 1024 for f in embed["fields"])
    assert (
        len(embed["title"])
        + len(embed["description"])
        + sum(len(f["name"]) + len(f["value"]) for f in embed["fields"])
        <= 6000
    )
    assert embed["url"].endswith("/console/operations/42")


@pytest.mark.parametrize("record", [failed_operation(), HUGE], ids=["usual", "huge"])
def test_teams_gets_an_adaptive_card_under_its_size_limit(record: OperationRecord) -> None:
    payload = render("teams", message(record))
    assert len(json.dumps(payload).encode()) <= 28_000
    (attachment,) = payload["attachments"]
    assert payload["type"] == "message"
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["type"] == "Action.OpenUrl"
    facts = {fact["title"]: fact["value"] for fact in card["body"][2]["facts"]}
    assert facts["Steps"] == "2 of 4" and facts["Failing revision"] == "a3000003"


def test_the_standard_format_is_a_typed_event_with_the_operation_as_data() -> None:
    payload = render("standard", message())
    assert payload["type"] == "operation.failed"
    assert payload["timestamp"] == START.isoformat()
    operation = payload["data"]["operation"]
    assert operation["steps_done"] == 2 and operation["steps_total"] == 4
    assert operation["failed_revision"] == "a3000003" and operation["on_behalf_of"] == "alice"
    assert payload["data"]["event_id"] == 7


def test_an_approval_request_tells_the_channel_who_may_approve_and_until_when() -> None:
    record = failed_operation()
    waiting = OperationRecord(
        **{
            **record.__dict__,
            "status": "awaiting_approval",
            "approvals_required": 2,
            "approval_expires_at": START + dt.timedelta(hours=24),
            "error_message": None,
            "failed_revision": None,
            "finished_at": None,
        }
    )
    asked = AuditEvent(
        actor="ci-deploy",
        action="approval.requested",
        outcome="awaiting_approval",
        occurred_at=START,
        details={"approvers": "a token with the approve permission"},
    )
    text = operation_message(asked, waiting, "production", "").text
    data = render("standard", operation_message(asked, waiting, "production", ""))["data"]
    assert data["details"] == {"approvers": "a token with the approve permission"}
    assert "needs 2 approvals before 2026-12-03 06:00 UTC" in text
    assert "approve permission" in text


def waiting_operation() -> OperationRecord:
    values = {
        **failed_operation().__dict__,
        "status": "awaiting_approval",
        "error_message": None,
        "failed_revision": None,
        "started_at": None,
        "finished_at": None,
    }
    return OperationRecord(**values)


def test_each_approval_event_says_what_happened_and_who_refused_why() -> None:
    def said(action: str, actor: str = "ci-deploy", **details: Any) -> Message:
        happened = AuditEvent(
            actor=actor, action=action, outcome="-", occurred_at=START, details=details
        )
        return operation_message(happened, waiting_operation(), "production", "")

    requested = said("operation.requested")
    asked = said("approval.requested", approvers="an approver")
    refusal = "Operation 42 was requested by ci-deploy for alice: its requester cannot approve it."
    refused = said("approval.refused", "alice", code="self-approval", detail=refusal)
    assert len({m.text for m in (requested, asked, refused)}) == 3
    assert len({m.title for m in (requested, asked, refused)}) == 3
    assert requested.title == "prod (production): upgrade requested"
    assert "ci-deploy requested it." in requested.text
    assert asked.title == "prod (production): upgrade needs approval"
    assert refused.title == "prod (production): alice may not approve the upgrade"
    assert f"alice may not approve it (self-approval): {refusal}" in refused.text
    assert ("Refused to", "alice") in refused.facts


def test_a_finished_operation_failed_after_its_duration_not_is_failed() -> None:
    text = message().text
    assert "asked by ci-deploy for alice, failed after 3.5 s;" in text
    assert "is failed" not in text
    assert "is awaiting approval;" in said_waiting()


def said_waiting() -> str:
    happened = AuditEvent(
        actor="ci-deploy", action="operation.requested", outcome="-", occurred_at=START
    )
    return operation_message(happened, waiting_operation(), "production", "").text
