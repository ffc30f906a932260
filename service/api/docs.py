"""The interactive API page, served with Swagger UI's assets by migctl itself.

Deployments are often closed networks (no CDN), and the page's script is a file of ours,
not inline, so a strict Content-Security-Policy holds.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, send_from_directory
from flask.wrappers import Response
from swagger_ui_bundle import swagger_ui_path

STATIC = Path(__file__).parent / "static"

page = Blueprint("docs", __name__)


@page.get("/docs")
def docs_page() -> Response:
    return send_from_directory(STATIC, "docs.html", max_age=0)


@page.get("/docs/init.js")
def docs_script() -> Response:
    return send_from_directory(STATIC, "docs-init.js", max_age=0)


@page.get("/docs/assets/<path:filename>")
def docs_assets(filename: str) -> Response:
    return send_from_directory(str(swagger_ui_path), filename)
