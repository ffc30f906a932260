"""RFC 9457 problem details: the one table mapping migctl errors to HTTP, and the builder."""

from __future__ import annotations

import logging
from typing import Any

from flask import g, request
from werkzeug.exceptions import HTTPException

from service.api.context import services
from service.errors import (
    AmbiguousRevisionError,
    ApprovalConflictError,
    ApprovalStaleError,
    AuthUnavailableError,
    ConfigError,
    ControlDatabaseUnavailableError,
    CsrfError,
    DatabaseLockedError,
    DatabaseNotFoundError,
    DatabaseUnavailableError,
    DriftCheckNotFoundError,
    EmptySelectionError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    JobStartError,
    LintBlockedError,
    LockHeldError,
    LockTimeoutError,
    MigctlError,
    MigrationFailedError,
    MultipleHeadsError,
    NoTargetMetadataError,
    OfflineUnsupportedError,
    OperationConflictError,
    OperationNotFoundError,
    PolicyRefusedError,
    PreconditionFailedError,
    ProjectUnavailableError,
    RelativeStepError,
    RevisionNotFoundError,
    RevisionsModifiedError,
    RevisionSpecError,
    RolloutConflictError,
    RolloutNotFoundError,
    RolloutStoppedError,
    SelfApprovalError,
    StreamsBusyError,
    TransactionPoolerError,
    UnauthenticatedError,
    UnknownDatabaseRevisionError,
    WebhookNotFoundError,
)
from service.lifecycle import Status

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:migctl:problem:"
RETRY_AFTER_SECONDS = "5"

# Every domain error the API can answer with: status and title. Codes come from the classes.
PROBLEMS: dict[type[MigctlError], tuple[int, str]] = {
    DatabaseNotFoundError: (404, "Database not found"),
    RevisionNotFoundError: (404, "Revision not found"),
    AmbiguousRevisionError: (422, "Ambiguous revision"),
    RelativeStepError: (422, "Relative step cannot be walked"),
    RevisionSpecError: (422, "Revision cannot be resolved"),
    MultipleHeadsError: (409, "Multiple heads"),
    OfflineUnsupportedError: (422, "Preview impossible offline"),
    UnknownDatabaseRevisionError: (409, "Database at an unknown revision"),
    ProjectUnavailableError: (503, "Alembic project unavailable"),
    DatabaseUnavailableError: (503, "Database unavailable"),
    ControlDatabaseUnavailableError: (503, "Control database unavailable"),
    OperationNotFoundError: (404, "Operation not found"),
    OperationConflictError: (409, "Operation not cancellable"),
    IdempotencyKeyReusedError: (409, "Idempotency key reused"),
    PreconditionFailedError: (409, "Precondition failed"),
    RolloutNotFoundError: (404, "Rollout not found"),
    RolloutConflictError: (409, "Rollout status does not allow it"),
    EmptySelectionError: (422, "Selector matched no database"),
    UnauthenticatedError: (401, "Unauthenticated"),
    CsrfError: (403, "Form Refused"),
    AuthUnavailableError: (503, "Authentication unavailable"),
    ForbiddenError: (403, "Forbidden"),
    PolicyRefusedError: (403, "Refused by the database's policy"),
    StreamsBusyError: (503, "Too many event streams"),
    SelfApprovalError: (403, "Requester cannot approve"),
    ApprovalConflictError: (409, "Operation not awaiting this decision"),
    ApprovalStaleError: (409, "Plan or revision files changed"),
    WebhookNotFoundError: (404, "Webhook not found"),
    LintBlockedError: (422, "Blocked by the SQL lint"),
    RevisionsModifiedError: (409, "Applied revisions modified"),
    NoTargetMetadataError: (422, "No target metadata"),
    DriftCheckNotFoundError: (404, "Drift check not found"),
    LockHeldError: (409, "Migration lock held"),
}

# Codes for errors raised by Flask, werkzeug and webargs rather than by migctl.
HTTP_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-failed",
    428: "precondition-required",
    412: "precondition-failed",
    500: "internal-error",
}

# Errors that never become an HTTP answer: their title, and where a client sees their code.
IN_OPERATION = "a failed operation's `error`"
AT_START = "`migctl`'s message at start and `check-config` (exit 2)"
IN_ROLLOUT = "a rollout target's `problem` (never queued)"
OUTSIDE_HTTP: dict[type[MigctlError], tuple[str, str]] = {
    ConfigError: ("Configuration invalid", AT_START),
    DatabaseLockedError: ("Database locked by another migration", IN_OPERATION),
    MigrationFailedError: ("Migration failed", IN_OPERATION),
    JobStartError: ("Job did not start", IN_OPERATION),
    LockTimeoutError: ("Lock wait timed out", IN_OPERATION),
    TransactionPoolerError: ("Migration connection through a transaction pooler", IN_OPERATION),
    RolloutStoppedError: ("Rollout stopped before this database", IN_ROLLOUT),
}

logger = logging.getLogger(__name__)


def problem_codes() -> list[str]:
    """Every `code` a problem answer can carry, sorted."""
    return sorted({cls.code for cls in PROBLEMS} | set(HTTP_CODES.values()))


def operation_error_codes() -> list[str]:
    """The codes an operation's `error` can carry besides the problem codes."""
    codes = {cls.code for cls, (_, where) in OUTSIDE_HTTP.items() if where == IN_OPERATION}
    return sorted(codes | {str(Status.INTERRUPTED)})  # the reaper's, not an exception's


def problem(
    status: int, code: str, title: str, detail: str | None = None, **members: Any
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The (body, status, headers) of a problem response; every error goes through here.

    Redacted: the detail and members may quote a driver or env.py, the path a token.
    """
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title,
        "status": status,
        "code": code,
        "instance": request.path,
        "request_id": g.get("request_id", ""),
    }
    if detail:
        body["detail"] = detail
    body.update({key: value for key, value in members.items() if value is not None})
    body = services().registry.redactor.redact_value(body)
    headers = {"Content-Type": PROBLEM_MEDIA_TYPE}
    if status == 503:
        headers["Retry-After"] = RETRY_AFTER_SECONDS
    return body, status, headers


def domain_problem(error: MigctlError) -> tuple[dict[str, Any], int, dict[str, str]]:
    """Flask error handler for MigctlError: looks the class (or a parent) up in PROBLEMS."""
    for cls in type(error).__mro__:
        if cls in PROBLEMS:
            status, title = PROBLEMS[cls]
            return problem(status, error.code, title, error.detail, **error.context)
    logger.error("unmapped migctl error", exc_info=error, extra={"action": "unmapped_error"})
    return problem(500, "internal-error", "Internal Server Error")


def http_problem(error: HTTPException) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A werkzeug/webargs HTTPException as a problem, keeping webargs' per-field messages."""
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    errors = data.get("errors") or data.get("messages")
    detail = data.get("message")
    if not detail and errors is not None:
        detail = "The request is not valid; see errors for each field."
    elif not detail and status < 500:
        detail = error.description
    body, status, headers = problem(
        status, HTTP_CODES.get(status, f"http-{status}"), error.name, detail, errors=errors
    )
    headers.update(
        (key, value) for key, value in error.get_headers() if key.lower() != "content-type"
    )  # Allow on 405, WWW-Authenticate on 401
    headers.update(data.get("headers") or {})
    return body, status, headers
