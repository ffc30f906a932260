"""migctl's flask-smorest Api and Blueprint: RFC 9457 problems, documented as such."""

from __future__ import annotations

import http
from typing import Any, ClassVar

import marshmallow as ma
from apispec import BasePlugin
from flask_smorest import Api as BaseApi
from flask_smorest import Blueprint as BaseBlueprint
from flask_smorest.pagination import PaginationMetadataSchema
from flask_smorest.utils import prepare_response
from werkzeug.exceptions import HTTPException

from service.api.bodies import JsonBodyParser
from service.api.fields import RecordedDateTime
from service.api.problems import (
    PROBLEM_MEDIA_TYPE,
    RETRY_AFTER_SECONDS,
    http_problem,
    problem_codes,
)
from service.api.query import refuse_unknown_query_parameters
from service.api.refusals import audit_refused_post

# Headers that every problem of a status carries (problems.problem, security._unauthenticated).
PROBLEM_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": 'The scheme to use: Bearer realm="migctl"',
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": f"Seconds to wait before trying again ({RETRY_AFTER_SECONDS})",
            "schema": {"type": "integer", "minimum": 0},
        }
    },
}


class ProblemSchema(ma.Schema):
    """An RFC 9457 problem: `code` is the stable slug to branch on; other members add context."""

    type = ma.fields.String(metadata={"description": "URI of the problem type"})
    title = ma.fields.String(metadata={"description": "Short summary of the problem type"})
    status = ma.fields.Integer(metadata={"description": "HTTP status code"})
    detail = ma.fields.String(metadata={"description": "What happened, for a human"})
    instance = ma.fields.String(metadata={"description": "The request path"})
    code = ma.fields.String(
        metadata={
            # Not an enum: a client generated from this spec must not reject a code added later.
            "description": "Stable machine-readable problem code, one of "
            + ", ".join(f"`{code}`" for code in problem_codes())
            + ". Branch on the codes you know; treat any other by its `status`."
        }
    )
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
    rollout_id = ma.fields.Integer(metadata={"description": "The rollout concerned"})
    rollout_status = ma.fields.String(metadata={"description": "The rollout's status now"})
    expected_current = ma.fields.List(ma.fields.String(), metadata={"description": "As asked"})
    current = ma.fields.List(ma.fields.String(), metadata={"description": "As recorded"})
    permission = ma.fields.String(metadata={"description": "The permission the token lacks"})
    role = ma.fields.String(metadata={"description": "The token's role"})
    # Production safety (lint-blocked, revisions-modified, lock-held).
    findings = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "Lint findings that block the change"}
    )
    rules = ma.fields.List(ma.fields.String(), metadata={"description": "Their rule ids"})
    modified = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "Applied revisions whose file changed"}
    )
    missing = ma.fields.List(
        ma.fields.Dict(), metadata={"description": "Applied revisions whose file is gone"}
    )
    holder = ma.fields.Dict(metadata={"description": "The session holding the lock"})
    lease = ma.fields.Dict(metadata={"description": "The lease holding the lock"})
    # Approvals (approval-stale).
    changed = ma.fields.List(
        ma.fields.String(), metadata={"description": "What changed since it was reviewed"}
    )
    # Webhooks (webhook-not-found).
    webhook = ma.fields.String(metadata={"description": "The webhook named in the request"})
    delivery_id = ma.fields.Integer(metadata={"description": "The delivery named in the request"})


class CommonProblems(BasePlugin):
    """Documents the problems that any operation of a kind can answer, so no view forgets:
    401 where a token is needed, 404 where a path parameter may name nothing (or be
    malformed), 413 where a body is read, and 422 everywhere: a query parameter the operation
    does not declare is refused (service/api/query.py), as is an invalid body."""

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **_: Any
    ) -> None:
        for operation in (operations or {}).values():
            statuses = []
            if operation.get("security") != []:
                statuses.append(401)
            if "{" in (path or ""):
                statuses.append(404)
            if "requestBody" in operation:
                statuses.append(413)
            statuses.append(422)
            responses = operation.setdefault("responses", {})
            for status in statuses:
                if status not in responses and str(status) not in responses:
                    responses[status] = http.HTTPStatus(status).name


class Api(BaseApi):  # type: ignore[misc]
    ERROR_SCHEMA = ProblemSchema

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        spec_kwargs = kwargs.pop("spec_kwargs", None) or {}
        extra_plugins = [*spec_kwargs.pop("extra_plugins", ()), CommonProblems()]
        super().__init__(
            *args, spec_kwargs={**spec_kwargs, "extra_plugins": extra_plugins}, **kwargs
        )
        # Not RFC 3339's date-time: the offset is there only if one was recorded.
        self.register_field(RecordedDateTime, "string", None)

    def handle_http_exception(self, error: HTTPException) -> Any:
        if error.code is not None and error.code < 400:  # 304 Not Modified from ETag checks
            return error.get_response()
        answer = http_problem(error)
        audit_refused_post(answer[0])
        return answer

    def _register_responses(self) -> None:
        # flask-smorest documents errors as application/json; ours are problem+json.
        for status in http.HTTPStatus:
            response: dict[str, Any] = {"description": status.phrase}
            if status >= 400:
                response["schema"] = self.ERROR_SCHEMA
            if status in PROBLEM_HEADERS:
                response["headers"] = PROBLEM_HEADERS[status]
            prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
            self.spec.components.response(status.name, response, lazy=True)
        response = {"description": "Default error response", "schema": self.ERROR_SCHEMA}
        prepare_response(response, self.spec, PROBLEM_MEDIA_TYPE)
        self.spec.components.response("DEFAULT_ERROR", response, lazy=True)

    def _register_pagination_header(self) -> None:
        # The header holds JSON text: a header `schema` of type object would mean `k,v,k,v`.
        header = {
            "description": "Pagination metadata, as JSON",
            "content": {"application/json": {"schema": PaginationMetadataSchema}},
        }
        self.spec.components.header("PAGINATION", header, lazy=True)


class Blueprint(BaseBlueprint):  # type: ignore[misc]
    ARGUMENTS_PARSER = JsonBodyParser()
    # Large enough for a portal table, small enough to keep every page fast.
    DEFAULT_PAGINATION_PARAMETERS: ClassVar[dict[str, int]] = {
        "page": 1,
        "page_size": 20,
        "max_page_size": 100,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.before_request(refuse_unknown_query_parameters)

    def problems(self, *statuses: int) -> Any:
        """Document the problem responses a view can answer with, besides its success."""

        def decorator(view: Any) -> Any:
            for status in reversed(statuses):
                view = self.alt_response(status, response=http.HTTPStatus(status).name)(view)
            return view

        return decorator
