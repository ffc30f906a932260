"""Chat-ready summaries of a database or an operation, for bots that answer questions."""

from __future__ import annotations

import marshmallow as ma

from service.api.context import control_store, current_principal, registry, services
from service.api.smorest import Blueprint
from service.services import summaries as service

blp = Blueprint("Summaries", __name__, description="One paragraph and Slack blocks, for chat.")


class ChatSummarySchema(ma.Schema):
    text = ma.fields.String(metadata={"description": "One short paragraph"})
    blocks = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "Slack Block Kit blocks (as the webhooks)"}
    )


@blp.route("/databases/<dbname:db>/summary")
@blp.response(200, ChatSummarySchema)
@blp.problems(401, 403, 404, 503)
def database_summary(db):
    """Summarize a database for chat: its schema state and last operation"""
    found = services()
    return service.database_summary(
        registry(), control_store(), found.settings, db, current_principal()
    )


@blp.route("/operations/<id:operation_id>/summary")
@blp.response(200, ChatSummarySchema)
@blp.problems(401, 403, 404, 503)
def operation_summary(operation_id):
    """Summarize an operation for chat: who asked, status, steps, error, link"""
    return service.operation_summary(
        control_store(), services().settings, operation_id, current_principal()
    )
