"""Webhook subscriptions (from the webhooks file) and their deliveries: list and redeliver."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import control_store, current_principal, services
from service.api.smorest import Blueprint
from service.errors import WebhookNotFoundError
from service.services import webhooks as service
from service.services.webhook_file import WebhooksFile

blp = Blueprint("Webhooks", __name__, description="Signed webhooks and their deliveries.")


class WebhookSchema(ma.Schema):
    name = ma.fields.String()
    url = ma.fields.String(metadata={"description": "Scheme and host only, never credentials"})
    events = ma.fields.List(ma.fields.String())
    databases = ma.fields.List(ma.fields.String(), allow_none=True)
    format = ma.fields.String(metadata={"description": "standard, slack, teams or discord"})
    allow_private = ma.fields.Boolean()
    enabled = ma.fields.Boolean(metadata={"description": "false once its receiver answered 410"})
    disabled_reason = ma.fields.String(allow_none=True)


class DeliverySchema(ma.Schema):
    id = ma.fields.Integer(metadata={"description": "webhook-id is msg_migctl_<id>"})
    webhook = ma.fields.String()
    event_id = ma.fields.Integer(metadata={"description": "The audit event it tells of"})
    event_type = ma.fields.String()
    database = ma.fields.String(allow_none=True)
    operation_id = ma.fields.Integer(allow_none=True)
    status = ma.fields.String(metadata={"description": "pending, delivered or failed"})
    attempts = ma.fields.Integer()
    next_attempt_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    last_attempt_at = ma.fields.DateTime(allow_none=True)
    last_status_code = ma.fields.Integer(allow_none=True)
    last_error = ma.fields.String(allow_none=True)


def _hooks(name: str | None = None) -> WebhooksFile:
    hooks = services().webhooks
    if hooks is None:
        raise WebhookNotFoundError("No webhooks file is configured.", webhook=name)
    return hooks


@blp.route("/webhooks")
@blp.response(200, WebhookSchema(many=True))
@blp.problems(401, 403, 503)
def list_webhooks():
    """List the webhook subscriptions (empty without a webhooks file)"""
    if services().webhooks is None:
        return []
    return service.list_webhooks(control_store(), _hooks(), current_principal())


@blp.route("/webhooks/<dbname:name>/deliveries")
class Deliveries(MethodView):
    @blp.response(200, DeliverySchema(many=True))
    @blp.paginate()
    @blp.problems(401, 403, 404, 503)
    def get(self, name, pagination_parameters):
        """List a webhook's deliveries, newest first"""
        records, total = service.list_deliveries(
            control_store(),
            _hooks(name),
            name,
            current_principal(),
            pagination_parameters.first_item,
            pagination_parameters.last_item,
        )
        pagination_parameters.item_count = total
        return records


@blp.route("/webhooks/<dbname:name>/deliveries/<id:delivery_id>/redeliver", methods=["POST"])
@blp.response(200, DeliverySchema)
@blp.problems(401, 403, 404, 503)
def redeliver(name, delivery_id):
    """Send a delivery again, with the same webhook-id (admin)"""
    return service.redeliver(control_store(), _hooks(name), name, delivery_id, current_principal())
