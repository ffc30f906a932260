"""Query parameters a view does not declare are refused (422 validation-failed), not ignored:
`?limit=2` for `page_size` or `?too=` for `to` would otherwise answer as if never sent."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import marshmallow as ma
from flask import current_app, request
from webargs.flaskparser import abort

_declared: dict[tuple[str, str], frozenset[str]] = {}


def refuse_unknown_query_parameters() -> None:
    """A before_request hook: 422 naming every query parameter the view does not read."""
    if request.method == "OPTIONS" or not request.args or request.endpoint is None:
        return
    unknown = sorted(set(request.args) - declared_query_parameters(request.endpoint))
    if unknown:
        abort(
            422,
            message=f"Unknown query parameter(s): {', '.join(unknown)}.",
            errors={"query": {name: ["Unknown field."] for name in unknown}},
        )


def declared_query_parameters(endpoint: str) -> frozenset[str]:
    """The names the view's query schemas (its arguments and pagination) read; cached."""
    key = (endpoint, request.method)
    if key not in _declared:
        function = _method_function(current_app.view_functions[endpoint], request.method)
        _declared[key] = frozenset(_names(_query_schemas(getattr(function, "_apidoc", {}))))
    return _declared[key]


def _method_function(view: Callable[..., Any], method: str) -> Any:
    view_class = getattr(view, "view_class", None)
    if view_class is None:
        return view
    function = getattr(view_class, method.lower(), None)
    if function is None and method == "HEAD":
        function = getattr(view_class, "get", None)
    return function


def _query_schemas(apidoc: dict[str, Any]) -> Iterable[ma.Schema | type[ma.Schema]]:
    for parameter in apidoc.get("arguments", {}).get("parameters", []):
        if parameter.get("in") in ("query", "querystring"):
            yield parameter["schema"]
    pagination = apidoc.get("pagination")
    if pagination is not None:
        yield pagination["parameters"]["schema"]


def _names(schemas: Iterable[ma.Schema | type[ma.Schema]]) -> Iterable[str]:
    for schema in schemas:
        instance = schema() if isinstance(schema, type) else schema
        for name, field in instance.fields.items():
            if not field.dump_only:
                yield field.data_key or name
