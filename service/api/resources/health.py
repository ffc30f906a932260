"""Liveness and readiness probes."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import control_store, services
from service.api.security import optional_principal
from service.api.smorest import Blueprint
from service.services import health as service

blp = Blueprint("Health", __name__, url_prefix="/health", description="Probes for orchestrators.")


class CheckSchema(ma.Schema):
    name = ma.fields.String()
    ok = ma.fields.Boolean()
    code = ma.fields.String(allow_none=True)
    detail = ma.fields.String(allow_none=True)


class ReadinessSchema(ma.Schema):
    status = ma.fields.String(
        required=True, metadata={"description": "ready, degraded or unavailable"}
    )
    problems = ma.fields.Integer(required=True, metadata={"description": "Failed checks"})
    checks = ma.fields.List(
        ma.fields.Nested(CheckSchema),
        metadata={"description": "Each check; once tokens are configured, with a token only"},
    )


class LivenessSchema(ma.Schema):
    status = ma.fields.String()


@blp.route("/live")
class Live(MethodView):
    @blp.response(200, LivenessSchema)
    @blp.doc(security=[])
    def get(self):
        """The process is alive"""
        return {"status": "alive"}


@blp.route("/ready")
class Ready(MethodView):
    @blp.response(200, ReadinessSchema)
    @blp.alt_response(503, schema=ReadinessSchema, description="No project can be served")
    @blp.doc(security=[{}, {"bearer": []}])  # a token adds the details
    def get(self):
        """The service can answer: control database usable, every Alembic project loads

        `degraded` (still 200) when some projects are broken: the others are served. When a
        worker is expected (`migctl serve` runs one), 503 `worker-down` while none heartbeats.
        Without a token (once tokens are configured), only `status` and `problems`: the
        checks name databases, project files and the control database's host.
        """
        settings = services().settings
        readiness = service.readiness(
            services().registry,
            control_store(),
            expect_worker=settings.expect_worker,
            poll_seconds=settings.worker_poll_seconds,
        )
        answer = service.for_caller(readiness, optional_principal())
        return answer, 200 if readiness.status != "unavailable" else 503
