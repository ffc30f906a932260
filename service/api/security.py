"""Authentication of every request, failed ones on the audit log, and protective headers."""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask, current_app, g, request
from flask.wrappers import Response

from service import logcontext
from service.api.context import control_store, request_context
from service.api.problems import domain_problem
from service.errors import AuthUnavailableError, MigctlError, UnauthenticatedError
from service.services import audit as audit_service
from service.services.access import ANONYMOUS, Principal
from service.services.tokens import TokenFile
from service.settings import Settings

logger = logging.getLogger(__name__)

TOKENS = "migctl.tokens"
DENIALS = "migctl.denials"
DOCS_PUBLIC = "MIGCTL_DOCS_PUBLIC"
METRICS_PUBLIC = "MIGCTL_METRICS_PUBLIC"
PUBLIC_ALWAYS = ("/health/",)
PUBLIC_DOCS = ("/openapi.json", "/docs")
# The console signs people in with a session cookie of its own (service.console.auth).
# Paths that check their caller themselves: the console's sign-in, Slack's request signature.
SELF_AUTHENTICATED = ("/console", "/api/v1/integrations/slack/")
_ON_BEHALF_OF = re.compile(r"^[\x20-\x7e]{1,255}$")
# The docs page loads only its own script and styles (Swagger UI renders inline styles).
DOCS_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


def install(app: Flask, settings: Settings) -> None:
    """Authenticate before every request, audit 401 answers, add protective headers."""
    app.extensions[TOKENS] = TokenFile(settings.tokens_file) if settings.tokens_file else None
    app.extensions[DENIALS] = audit_service.DenialLimiter()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.config[DOCS_PUBLIC] = settings.docs_public
    app.config[METRICS_PUBLIC] = settings.metrics_public
    app.before_request(_authenticate)
    app.after_request(_protective_headers)
    app.register_error_handler(UnauthenticatedError, _unauthenticated)
    app.register_error_handler(AuthUnavailableError, _auth_unavailable)


def _authenticate() -> None:
    g.on_behalf_of = _on_behalf_of()
    path = request.path
    if path.startswith(PUBLIC_ALWAYS + SELF_AUTHENTICATED) or request.method == "OPTIONS":
        return
    if path.startswith(PUBLIC_DOCS) and current_app.config[DOCS_PUBLIC]:
        return
    if path == "/metrics" and current_app.config[METRICS_PUBLIC]:
        return
    tokens: TokenFile | None = current_app.extensions[TOKENS]
    if tokens is None:
        _authenticated(ANONYMOUS)
        return
    token = _bearer_token()
    if not token:
        raise UnauthenticatedError("This endpoint needs an Authorization: Bearer <token> header.")
    principal = tokens.verify(token)
    if principal is None:
        raise UnauthenticatedError("The bearer token is not known (revoked or mistyped?).")
    _authenticated(principal)


def authenticated(principal: Principal) -> None:
    """Serve this request as `principal` (the console, after its own sign-in check)."""
    _authenticated(principal)


def _authenticated(principal: Principal) -> None:
    g.principal = principal
    g.log_actor = logcontext.bind(actor=principal.name)  # forgotten at the request's end


def optional_principal() -> Principal | None:
    """Who calls a public endpoint: anonymous without tokens, else the token's principal,
    or None for no token, an unknown one, or tokens that cannot be checked."""
    tokens: TokenFile | None = current_app.extensions[TOKENS]
    if tokens is None:
        return ANONYMOUS
    token = _bearer_token()
    try:
        return tokens.verify(token) if token else None
    except AuthUnavailableError:
        return None


def _bearer_token() -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _on_behalf_of() -> str | None:
    # Who a bot acts for: recorded beside the actor, never used for permissions.
    value = request.headers.get("X-On-Behalf-Of", "").strip()
    return value if _ON_BEHALF_OF.match(value) else None


def _unauthenticated(error: UnauthenticatedError) -> Any:
    _record_denial(error)
    body, status, headers = domain_problem(error)
    headers["WWW-Authenticate"] = 'Bearer realm="migctl"'
    return body, status, headers


def _auth_unavailable(error: AuthUnavailableError) -> Any:
    _record_denial(error)
    return domain_problem(error)


def _record_denial(error: MigctlError) -> None:
    """Best effort: with the control database down, the caller still gets its 401."""
    try:
        audit_service.record_denial(
            control_store(),
            current_app.extensions[DENIALS],
            request_context(),
            code=error.code,
            reason=error.detail,
            target=f"{request.method} {request.path}",
        )
    except MigctlError as exc:
        logger.warning(
            "denied request not audited (request %s): %s",
            g.get("request_id"),
            exc.detail,
            extra={"action": "audit_failed"},
        )


def _protective_headers(response: Response) -> Response:
    response.headers["X-Content-Type-Options"] = "nosniff"
    if request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    if request.path.startswith("/docs"):
        response.headers["Content-Security-Policy"] = DOCS_CSP
    return response
