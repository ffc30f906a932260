"""GET /metrics (Prometheus text), and the HTTP request metrics every response feeds."""

from __future__ import annotations

import time

from flask import Blueprint, Flask, current_app, g, request
from flask.wrappers import Response

from service import metrics
from service.api.context import control_store, current_principal, services
from service.services.monitoring import control_figures

page = Blueprint("metrics", __name__)
UNMATCHED = "unmatched"  # no route: the path is not a label, or any scanner would add series


def install(app: Flask) -> None:
    app.before_request(_start_clock)
    app.after_request(_observe)
    app.register_blueprint(page)


@page.get("/metrics")
def scrape() -> Response:
    """This host's processes' samples and the control database's figures."""
    figures = control_figures(control_store(), current_principal())
    body = metrics.exposition(figures, services().settings.metrics_dir)
    return current_app.response_class(body, mimetype=None, content_type=metrics.CONTENT_TYPE)


def _start_clock() -> None:
    g.metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.get("metrics_started")
    if started is not None:
        route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
        metrics.HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        metrics.HTTP_DURATION.labels(route, request.method).observe(time.perf_counter() - started)
    return response
