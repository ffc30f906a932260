"""migctl's flask-smorest Api and Blueprint: RFC 9457 problems, documented as such."""

from __future__ import annotations

import http
from typing import Any, ClassVar

import marshmallow as ma
from flask_smorest import Api as BaseApi
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from service.api.problems import PROBLEM_MEDIA_TYPE, http_problem


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem: `code` is the stable slug to branch on; other members add context."""

    type = ma.fields.String(metadata={"description": "URI of the problem type"})
    title = ma.fields.String(metadata={"description": "Short summary of the problem type"})
    status = ma.fields.Integer(metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "What happened, for a human"})
    instance = ma.fields.String(metadata={"description": "The request path"})
    code = ma.fields.String(metadata={"description": "Stable machine-readable problem code"})
    request_id = ma.fields.String(metadata={"description": "Correlates with server logs"})
    errors = ma.fields.Dict(metadata={"description": "Validation messages by location, field"})
    heads = ma.fields.List(ma.fields.String(), metadata={"description": "Heads involved"})
    revision = ma.fields.String(metadata={"description": "The revision spec at fault"})
    revisions = ma.fields.List(ma.fields.String(), metadata={"description": "Revisions at fault"})
    unsupported = ma.fields.List(
        ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String()),
        metadata={"description": "Revisions that need a live database: revision, reason"},
    )
    database = ma.fields.String(metadata={"description": "The database named in the request"})
    path = ma.fields.String(
        allow_none=True, metadata={"description": "Project file at fault, relative to its folder"}
    )
    line = ma.fields.Integer(allow_none=True, metadata={"description": "Line in that file"})
    operation_id = ma.fields.Integer(metadata={"description": "The operation concerned"})
    operation_status = ma.fields.String(metadata={"description": "Its status now"})
    expected_current = ma.fields.List(ma.fields.String(), metadata={"description": "As asked"})
    current = ma.fields.List(ma.fields.String(), metadata={"description": "As recorded"})
    permission = ma.fields.String(metadata={"description": "The permission the token lacks"})
    role = ma.fields.String(metadata={"description": "The token's role"})


class Api(BaseApi):  # type: ignore[misc]
    ERROR_SCHEMA = ProblemSchema

    def handle_http_exception(self, error: HTTPException) -> Any:
        if error.code is not None and error.code < 400:  # 304 Not Modified from ETag checks
            return error.get_response()
        return http_problem(error)

    def _register_responses(self) -> None:
        # flask-smorest documents errors as application/json; ours are problem+json.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)


class Blueprint(BaseBlueprint):  # type: ignore[misc]
    # Large enough for a portal table, small enough to keep every page fast.
    DEFAULT_PAGINATION_PARAMETERS: ClassVar[dict[str, int]] = {
        "page": 1,
        "page_size": 20,
        "max_page_size": 100,
    }

    def problems(self, *statuses: int) -> Any:
        """Document the problem responses a view can answer with, besides its success."""

        def decorator(view: Any) -> Any:
            for status in reversed(statuses):
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator
