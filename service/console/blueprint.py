"""The console's blueprint: templates, vendored static files, its headers and error pages."""

from __future__ import annotations

import time

from flask import Blueprint, g, render_template, request
from flask.wrappers import Response

from service.api.problems import domain_problem
from service.errors import MigctlError

console = Blueprint(
    "console",
    __name__,
    url_prefix="/console",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
# Everything is served from here: no inline script, no CDN (closed networks work).
CONSOLE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@console.before_request
def _start_clock() -> None:
    g.console_started = time.perf_counter()


@console.after_request
def _headers(response: Response) -> Response:
    # Server time of the page, for the browser's devtools and bench/console.py.
    elapsed_ms = (time.perf_counter() - g.get("console_started", time.perf_counter())) * 1000
    response.headers["Server-Timing"] = f"app;dur={elapsed_ms:.1f}"
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    response.headers["Referrer-Policy"] = "same-origin"
    if not request.path.startswith("/console/static/"):
        response.headers["Cache-Control"] = "no-store"  # pages show live state and a CSRF token
    return response


def invalid(errors: object) -> tuple[str, int]:
    """A form the API would answer 422 `validation-failed`, as a page."""
    problem = {"title": "Unprocessable Content", "code": "validation-failed", "detail": ""}
    return render_template("console/error.html", problem=problem, errors=errors), 422


@console.errorhandler(MigctlError)
def _domain_error(error: MigctlError) -> tuple[str, int]:
    """The API's problem, as a page: same status, title, code and detail."""
    body, status, _headers = domain_problem(error)
    return render_template("console/error.html", problem=body), status
