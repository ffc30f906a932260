"""The interactive API page, served with Swagger UI's assets by migctl itself.

Deployments are often closed networks (no CDN), so the assets are vendored in the package
(static/swagger-ui/README.md says which version and how to update it). The page's script is a
file of ours, not inline, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory
from flask.wrappers import Response

STATIC = Path(__file__).parent / "static"
SWAGGER_UI = STATIC / "swagger-ui"

page = Blueprint("docs", __name__)


@page.get("/docs")
def docs_page() -> Response:
    return send_from_directory(STATIC, "docs.html", max_age=0)


@page.get("/docs/init.js")
def docs_script() -> Response:
    return send_from_directory(STATIC, "docs-init.js", max_age=0)


@page.get("/docs/assets/<path:filename>")
def docs_assets(filename: str) -> Response:
    return send_from_directory(SWAGGER_UI, filename)
