"""The web console at /console: server-rendered pages over the same services as the API."""

from flask import Flask

from service.console import approvals, audit, auth, changes, operations, pages, rollouts
from service.console.blueprint import console
from service.console.highlight import sql_html

VIEWS = (
    auth,
    pages,
    changes,
    operations,
    rollouts,
    approvals,
    audit,
)  # importing them registers their routes


def install(app: Flask) -> None:
    app.register_blueprint(console)
    app.jinja_env.globals["csrf_token"] = auth.csrf_token
    app.jinja_env.filters["sql"] = sql_html
