"""create_app(): the Flask application; it connects to nothing and starts nothing."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, g, request
from flask.wrappers import Response
from flask_cors import CORS

from service import __version__, console, logcontext
from service.api import docs, metrics, security
from service.api.context import SERVICES
from service.api.fields import CONVERTERS, converter_schema
from service.api.problems import domain_problem
from service.api.resources import (
    audit,
    databases,
    fleet,
    health,
    integrations,
    operations,
    previews,
    revisions,
    rollouts,
    safety,
    streams,
    summaries,
    webhooks,
)
from service.api.slots import STREAMS, WAITERS, Slots
from service.api.smorest import Api
from service.errors import MigctlError
from service.services.wiring import build_services
from service.settings import Settings

CORS_RULES: dict[str, Any] = {
    "allow_headers": [
        "Authorization",
        "Content-Type",
        "Idempotency-Key",
        "X-On-Behalf-Of",
        "X-Request-ID",
        "If-None-Match",
        "Last-Event-ID",
    ],
    "expose_headers": [
        "Location",
        "ETag",
        "Link",
        "X-Pagination",
        "X-Request-ID",
        "Preview-Deterministic",
        "Preview-Unstable-Revisions",
        "Retry-After",
        "WWW-Authenticate",
    ],
    "max_age": 600,
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app for `settings` (default: Settings.from_env())."""
    settings = settings or Settings.from_env()
    app = Flask("service")
    app.config.update(_api_config())
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep schema field order
    app.extensions[SERVICES] = build_services(settings)
    app.extensions[WAITERS] = Slots(settings.waiter_limit)
    app.extensions[STREAMS] = Slots(settings.stream_limit)
    app.before_request(_assign_request_id)
    metrics.install(app)  # before security: refused requests are counted too
    app.after_request(_echo_request_id)
    app.teardown_request(_forget_log_context)
    app.register_error_handler(MigctlError, domain_problem)
    security.install(app, settings)
    if settings.cors_origins:
        CORS(app, resources={r"/api/*": {"origins": list(settings.cors_origins)}}, **CORS_RULES)
    for name, (converter, _schema) in CONVERTERS.items():
        app.url_map.converters[name] = converter
    api = Api(app)
    for converter, schema in CONVERTERS.values():
        api.register_converter(converter, converter_schema(schema))
    resources = (
        databases,
        revisions,
        previews,
        operations,
        audit,
        streams,
        safety,
        webhooks,
        summaries,
        integrations,
        fleet,
        rollouts,
    )
    for resource in resources:
        api.register_blueprint(resource.blp, url_prefix="/api/v1")
    api.register_blueprint(health.blp)
    app.register_blueprint(docs.page)
    console.install(app)
    return app


def _api_config() -> dict[str, object]:
    return {
        "API_TITLE": "migctl",
        "API_VERSION": __version__,
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "API_SPEC_OPTIONS": {
            "info": {
                # One spec for every configuration: say what each setting changes.
                "description": "Inspect and change the schema state of Alembic-managed "
                "databases. Errors are RFC 9457 problem details with a stable `code`. "
                "With a tokens file (MIGCTL_TOKENS_FILE), every /api/v1 endpoint needs "
                "`Authorization: Bearer <token>`; without one, migctl serves every caller "
                "as an admin, on loopback only unless MIGCTL_AUTH=disabled. /health/* never "
                "needs a token. This description (/openapi.json) and /docs need none while "
                "MIGCTL_DOCS_PUBLIC=true (the default), and a token when it is false."
            },
            "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
            "security": [{"bearer": []}],
        },
    }


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.log_context = logcontext.bind(request_id=g.request_id)  # every line logged meanwhile


def _forget_log_context(_error: BaseException | None) -> None:
    for key in ("log_context", "log_actor"):
        if key in g:
            logcontext.unbind(g.pop(key))


def _echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    return response
