"""The audit log: who asked for what, what happened, when. Read-only."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import request
from flask.views import MethodView

from service.api.context import control_store, current_principal
from service.api.fields import MAX_ID, AsciiInteger
from service.api.smorest import Blueprint
from service.services import audit as service

blp = Blueprint("Audit", __name__, description="The append-only audit log.")


class AuditEventSchema(ma.Schema):
    id = ma.fields.Integer()
    occurred_at = ma.fields.DateTime()
    actor = ma.fields.String(
        metadata={
            "description": "Who asked: a token's name (the same on every event of an operation)"
        }
    )
    on_behalf_of = ma.fields.String(allow_none=True)
    action = ma.fields.String(metadata={"description": "operation.requested, .started ..."})
    outcome = ma.fields.String()
    database = ma.fields.String(allow_none=True)
    operation_id = ma.fields.Integer(allow_none=True)
    request_id = ma.fields.String(allow_none=True)
    client_address = ma.fields.String(allow_none=True)
    user_agent = ma.fields.String(allow_none=True)
    details = ma.fields.Dict()
    worker = ma.fields.String(
        allow_none=True,
        metadata={"description": "The worker that ran the operation (its events only)"},
    )


class AuditQueryArgsSchema(ma.Schema):
    database = ma.fields.String(validate=ma.validate.Length(max=63))
    actor = ma.fields.String(validate=ma.validate.Length(max=255))
    action = ma.fields.String(validate=ma.validate.Length(max=64))
    operation_id = AsciiInteger(validate=ma.validate.Range(min=1, max=MAX_ID))
    since = ma.fields.AwareDateTime(metadata={"description": "Events at or after (ISO 8601)"})
    until = ma.fields.AwareDateTime(metadata={"description": "Events before (ISO 8601)"})
    before = AsciiInteger(
        validate=ma.validate.Range(min=1, max=MAX_ID),
        metadata={"description": "Events with a smaller id: the cursor of the next page"},
    )
    limit = AsciiInteger(load_default=50, validate=ma.validate.Range(min=1, max=200))


@blp.route("/audit-events")
class AuditEvents(MethodView):
    @blp.arguments(AuditQueryArgsSchema, location="query")
    @blp.response(
        200,
        AuditEventSchema(many=True),
        headers={"Link": {"description": "rel=next: the next page", "schema": {"type": "string"}}},
    )
    @blp.problems(503)
    def get(self, args):
        """List audit events, newest first

        Pages by cursor (`before`), so they stay stable while new events arrive; the `Link`
        header names the next page.
        """
        filters = {key: args.get(key) for key in ("database", "actor", "action", "operation_id")}
        page = service.list_audit_events(
            control_store(),
            filters=filters,
            since=args.get("since"),
            until=args.get("until"),
            before=args.get("before"),
            limit=args["limit"],
            databases=current_principal().databases,
        )
        return page.events, 200, _next_link(args, page.next_before)


def _next_link(args: dict[str, Any], next_before: int | None) -> dict[str, str]:
    """The next page's address, from the parsed arguments only (never raw input)."""
    if next_before is None:
        return {}
    query = {k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in args.items()}
    query["before"] = next_before
    return {"Link": f'<{request.base_url}?{urlencode(query)}>; rel="next"'}
