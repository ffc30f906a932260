"""Access, from a view, to what create_app() built."""

from __future__ import annotations

from flask import current_app

from service.services.registry import Registry


def registry() -> Registry:
    registry: Registry = current_app.extensions["migctl"]
    return registry
