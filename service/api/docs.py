"""Swagger UI's assets, served by migctl itself: deployments are often closed networks."""

from flask import Blueprint
from swagger_ui_bundle import swagger_ui_path

ASSETS_URL = "/docs/assets/"

assets = Blueprint(
    "docs_assets", __name__, static_folder=str(swagger_ui_path), static_url_path=ASSETS_URL
)
