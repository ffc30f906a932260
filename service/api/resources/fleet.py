"""The fleet: how many databases stand where, from the state workers last read."""

from __future__ import annotations

import marshmallow as ma
from flask.views import MethodView

from service.api.context import control_store, registry
from service.api.smorest import Blueprint
from service.services import fleet as service

blp = Blueprint("Fleet", __name__, description="Every database at a glance, from cached state.")


class FleetSchema(ma.Schema):
    databases = ma.fields.Integer(metadata={"description": "Databases this token sees"})
    by_environment = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Integer()),
        metadata={"description": "environment → state → count (`unknown`: not read yet)"},
    )
    not_up_to_date = ma.fields.List(
        ma.fields.String(), metadata={"description": "Databases that differ from their heads"}
    )
    running_operations = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        metadata={"description": "database → the id of its running operation"},
    )
    failed = ma.fields.List(
        ma.fields.String(),
        metadata={"description": "Databases whose newest operation failed or was interrupted"},
    )


@blp.route("/fleet")
class Fleet(MethodView):
    @blp.response(200, FleetSchema)
    @blp.problems(503)
    def get(self):
        """Count databases per environment and state; list those that need a look

        Answered from the state workers read at most every `MIGCTL_STATE_REFRESH_SECONDS`
        (and after each operation), never by running env.py.
        """
        return service.fleet(registry(), control_store())
