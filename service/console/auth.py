"""Console sign-in: a token exchanged once for a session cookie; CSRF on every form."""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets

from flask import current_app, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from service.api import security
from service.api.context import control_store, request_context, services
from service.console.blueprint import console
from service.errors import CsrfError
from service.services import audit as audit_service
from service.services import console_sessions
from service.services.access import ANONYMOUS
from service.services.tokens import TokenFile

SESSION_COOKIE = "migctl_console"
CSRF_COOKIE = "migctl_console_csrf"  # double-submit token while nobody is signed in
OPEN_ENDPOINTS = frozenset({"console.static", "console.sign_in"})
_NEXT = re.compile(r"^/console(?:[/?][\x21-\x5b\x5d-\x7e]{0,1000})?$")  # no backslash


def _tokens() -> TokenFile | None:
    tokens: TokenFile | None = current_app.extensions[security.TOKENS]
    return tokens


@console.before_request
def _authenticate() -> ResponseReturnValue | None:
    """Without tokens everyone is served (as the API does); else a session is needed."""
    tokens, g.console_session = _tokens(), None
    if tokens is None:
        security.authenticated(ANONYMOUS)
    elif request.endpoint not in OPEN_ENDPOINTS:
        key = request.cookies.get(SESSION_COOKIE, "")
        session = console_sessions.resume(control_store(), tokens, key) if key else None
        if session is None:
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        g.console_session = session
        security.authenticated(session.principal)
    return None if request.method != "POST" else _check_csrf()


def csrf_token() -> str:
    """The token forms carry: the session's, else this browser's double-submit cookie."""
    if g.get("console_session") is not None:
        token: str = g.console_session.csrf_token
        return token
    if "console_csrf" not in g:
        g.console_csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_hex(32)
    found: str = g.console_csrf
    return found


@console.after_request
def _keep_csrf_cookie(response: Response) -> Response:
    if "console_csrf" in g and request.cookies.get(CSRF_COOKIE) != g.console_csrf:
        _set_cookie(response, CSRF_COOKIE, g.console_csrf)
    return response


def _check_csrf() -> ResponseReturnValue | None:
    sent = request.form.get("csrf_token", "")
    expected = csrf_token() if g.console_session or request.cookies.get(CSRF_COOKIE) else ""
    if expected and hmac.compare_digest(sent.encode(), expected.encode()):
        return None
    raise CsrfError("The form was stale or came from another site: reload the page and retry.")


@console.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    tokens = _tokens()
    if tokens is None:
        return redirect(url_for("console.fleet"))
    if request.method == "GET":
        return render_template("console/sign_in.html", next=_next_page())
    session = console_sessions.sign_in(
        control_store(), tokens, request.form.get("token", "").strip(), _lifetime()
    )
    if session is None:
        _record_failed_sign_in()
        message = "That token is not known (revoked or mistyped?)."
        return render_template("console/sign_in.html", next=_next_page(), error=message), 401
    response = redirect(_next_page())
    _set_cookie(response, SESSION_COOKIE, session.key, max_age=_lifetime())
    response.delete_cookie(CSRF_COOKIE, path="/console")
    return response


@console.route("/sign-out", methods=["POST"])
def sign_out() -> ResponseReturnValue:
    if g.console_session is not None:
        console_sessions.sign_out(control_store(), g.console_session.key)
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


def _lifetime() -> dt.timedelta:
    return dt.timedelta(minutes=services().settings.console_session_minutes)


def _set_cookie(
    response: Response, name: str, value: str, max_age: dt.timedelta | None = None
) -> None:
    # HttpOnly: no script reads it; Strict: no other site sends it; Secure over HTTPS.
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        httponly=True,
        samesite="Strict",
        secure=_https(),
        path="/console",
    )


def _https() -> bool:
    # Behind a proxy that ends TLS the request looks like plain HTTP: the public URL says.
    return request.is_secure or services().settings.public_url.startswith("https://")


def _next_page() -> str:
    # Only a console path of visible ASCII: an open redirect would hand the signed-in
    # browser to another site, and a control character would break the Location header.
    wanted = request.values.get("next", "")
    ok = _NEXT.match(wanted) and not wanted.startswith("/console/sign-")
    return wanted if ok else url_for("console.fleet")


def _record_failed_sign_in() -> None:
    """On the audit log like a refused bearer token (rate-limited per address)."""
    audit_service.record_denial(
        control_store(),
        current_app.extensions[security.DENIALS],
        request_context(),
        code="unauthenticated",
        reason="console sign-in with an unknown token",
        target=f"{request.method} {request.path}",
    )
