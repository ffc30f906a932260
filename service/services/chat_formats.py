"""The one renderer: a Message as a standard event, Slack, Teams or Discord payload, each within
its platform's limits (Slack: 50 blocks, 3000-char sections, 10 fields of 2000, 150-char
headers; Discord: 2000-char content, 10 embeds, 25 fields, 6000 embed chars; Teams: ~28 KB)."""

from __future__ import annotations

from typing import Any

from service.services.messages import Message, short

SLACK_TEXT, SLACK_FIELD, SLACK_HEADER, SLACK_FIELDS = 3000, 2000, 150, 10
DISCORD_CONTENT, DISCORD_TITLE, DISCORD_DESCRIPTION = 2000, 256, 4096
DISCORD_FIELD_NAME, DISCORD_FIELD_VALUE, DISCORD_FIELDS, DISCORD_TOTAL = 256, 1024, 25, 6000
TEAMS_BYTES = 28_000
_COLOURS = {"good": 0x2EB67D, "bad": 0xE01E5A, "warning": 0xECB22E, "neutral": 0x808080}
_TEAMS_COLOURS = {"good": "Good", "bad": "Attention", "warning": "Warning", "neutral": "Default"}


def render(fmt: str, message: Message) -> dict[str, Any]:
    return {
        "standard": standard,
        "slack": slack,
        "teams": teams,
        "discord": discord,
    }[fmt](message)


def standard(message: Message) -> dict[str, Any]:
    """A Standard Webhooks event: type, timestamp, data."""
    data = {**message.data, "text": message.text, "link": message.link}
    timestamp = message.occurred_at.isoformat() if message.occurred_at else None
    return {"type": message.event, "timestamp": timestamp, "data": data}


def _mrkdwn(text: str) -> str:
    # Slack reads &, < and > as markup: a revision message must not become a link.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_blocks(message: Message) -> list[dict[str, Any]]:
    """Block Kit blocks (also the `blocks` of the summaries)."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": short(message.title, SLACK_HEADER)},
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": short(_mrkdwn(message.text), SLACK_TEXT)},
        },
    ]
    fields = [
        {"type": "mrkdwn", "text": short(f"*{_mrkdwn(name)}*\n{_mrkdwn(value)}", SLACK_FIELD)}
        for name, value in message.facts[:SLACK_FIELDS]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    if message.error:
        code = short(_mrkdwn(message.error), SLACK_TEXT - 8)
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"```{code}```"}})
    elements = _approval_buttons(message)
    if message.link:
        button = {"type": "button", "text": {"type": "plain_text", "text": "Open operation"}}
        elements.append({**button, "url": message.link})
    if elements:
        blocks.append({"type": "actions", "elements": elements})
    return blocks


def _approval_buttons(message: Message) -> list[dict[str, Any]]:
    """Approve and Reject, for a Slack app whose interactivity URL is migctl's (optional)."""
    operation = message.data.get("operation") or {}
    if message.event != "approval.requested" or operation.get("id") is None:
        return []
    return [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": label},
            "style": style,
            "action_id": action,
            "value": str(operation["id"]),
        }
        for label, style, action in (
            ("Approve", "primary", "migctl_approve"),
            ("Reject", "danger", "migctl_reject"),
        )
    ]


def slack(message: Message) -> dict[str, Any]:
    """An incoming-webhook message (Slack, Mattermost): `text` is the notification's line."""
    return {"text": short(_mrkdwn(message.text), SLACK_TEXT), "blocks": slack_blocks(message)}


def discord(message: Message) -> dict[str, Any]:
    fields = [
        {
            "name": short(name, DISCORD_FIELD_NAME),
            "value": short(value or "-", DISCORD_FIELD_VALUE),
            "inline": True,
        }
        for name, value in message.facts[:DISCORD_FIELDS]
    ]
    budget = DISCORD_TOTAL - len(short(message.title, DISCORD_TITLE))
    budget -= sum(len(str(f["name"])) + len(str(f["value"])) for f in fields)
    embed: dict[str, Any] = {
        "title": short(message.title, DISCORD_TITLE),
        "description": short(message.error or message.text, min(DISCORD_DESCRIPTION, budget)),
        "color": _COLOURS[message.tone],
        "fields": fields,
    }
    if message.link:
        embed["url"] = message.link
    if message.occurred_at:
        embed["timestamp"] = message.occurred_at.isoformat()
    return {"content": short(message.text, DISCORD_CONTENT), "embeds": [embed]}


def teams(message: Message) -> dict[str, Any]:
    """An Adaptive Card message, as a Teams Workflows webhook takes it."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": message.title,
            "weight": "Bolder",
            "size": "Medium",
            "color": _TEAMS_COLOURS[message.tone],
            "wrap": True,
        },
        {"type": "TextBlock", "text": short(message.text, 4000), "wrap": True},
        {"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in message.facts]},
    ]
    if message.error:
        body.append(
            {"type": "TextBlock", "text": message.error, "fontType": "Monospace", "wrap": True}
        )
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if message.link:
        card["actions"] = [
            {"type": "Action.OpenUrl", "title": "Open operation", "url": message.link}
        ]
    attachment = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return {"type": "message", "attachments": [attachment]}
