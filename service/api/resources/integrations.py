"""Chat integrations: Slack's interactivity requests (Approve and Reject buttons)."""

from __future__ import annotations

import marshmallow as ma
from flask import request

from service.api.context import control_store, request_context, services
from service.api.smorest import Blueprint
from service.errors import UnauthenticatedError
from service.services import slack

blp = Blueprint("Integrations", __name__, description="Requests from chat platforms.")


class SlackReplySchema(ma.Schema):
    response_type = ma.fields.String(
        metadata={"description": "ephemeral: only the clicker sees it"}
    )
    text = ma.fields.String()


@blp.route("/integrations/slack/interactions", methods=["POST"])
@blp.response(200, SlackReplySchema)
@blp.problems(401, 503)
def slack_interactions():
    """Approve or reject from a Slack button (signed by Slack, not a bearer token)

    The request must carry a valid `X-Slack-Signature` made within 5 minutes; the Slack user
    approves as the person the webhooks file's `[slack.approvers]` names.
    """
    hooks = services().webhooks
    app = hooks.slack() if hooks else None
    if app is None:
        raise UnauthenticatedError("No Slack app is configured ([slack] in the webhooks file).")
    body = request.get_data(cache=False)
    headers = request.headers
    signature = headers.get("X-Slack-Signature", "")
    slack.verify(app, headers.get("X-Slack-Request-Timestamp", ""), body, signature, slack.now())
    click = slack.parse(body)
    if click is None:
        return {"response_type": "ephemeral", "text": "Nothing for migctl to do."}
    text = slack.interact(services().registry, control_store(), app, click, request_context())
    return {"response_type": "ephemeral", "text": text}
