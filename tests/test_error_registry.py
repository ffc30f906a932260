"""Every error code migctl can send is mapped, documented in the README and in the spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from service.api import error_table
from service.api.problems import (
    HTTP_CODES,
    OUTSIDE_HTTP,
    PROBLEMS,
    operation_error_codes,
    problem_codes,
)
from service.errors import MigctlError

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
SPEC = json.loads((ROOT / "openapi" / "openapi.json").read_text())
METHODS = {"get", "put", "post", "delete", "patch"}


def readme_tables() -> str:
    text = README.read_text()
    start, end = text.index("<!-- errors:start"), text.index(error_table.END)
    return text[start:end]


def every_code() -> list[str]:
    return sorted(
        {cls.code for cls in error_table.error_classes()}
        | set(HTTP_CODES.values())
        | set(operation_error_codes())
    )


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in SPEC["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


@pytest.mark.parametrize("error_class", error_table.error_classes(), ids=lambda cls: cls.code)
def test_every_error_class_is_mapped_to_a_status_or_says_where_its_code_shows(
    error_class: type[MigctlError],
) -> None:
    mapped = (error_class in PROBLEMS) + (error_class in OUTSIDE_HTTP)
    assert mapped == 1, f"add {error_class.__name__} to PROBLEMS (or OUTSIDE_HTTP) in problems.py"


@pytest.mark.parametrize("error_class", error_table.error_classes(), ids=lambda cls: cls.code)
def test_every_error_class_says_when_it_happens_and_what_to_do(
    error_class: type[MigctlError],
) -> None:
    assert error_class.__doc__ and error_class.advice, error_class.__name__


def test_codes_are_unique_to_their_class() -> None:
    codes = [cls.code for cls in error_table.error_classes()]
    assert len(codes) == len(set(codes))


@pytest.mark.parametrize("code", every_code())
def test_every_code_is_in_the_readme_error_tables(code: str) -> None:
    assert f"`{code}`" in readme_tables()


def test_the_readme_error_tables_are_what_the_generator_writes() -> None:
    text = README.read_text()
    assert error_table.rewrite(text) == text, "run: migctl docs write"


@pytest.mark.parametrize("code", problem_codes())
def test_every_problem_code_is_listed_by_the_spec_problem_schema(code: str) -> None:
    description = SPEC["components"]["schemas"]["Problem"]["properties"]["code"]["description"]
    assert f"`{code}`" in description


@pytest.mark.parametrize("code", operation_error_codes())
def test_every_operation_error_code_is_listed_by_the_spec_error_schema(code: str) -> None:
    description = SPEC["components"]["schemas"]["Error"]["properties"]["code"]["description"]
    assert f"`{code}`" in description


@pytest.mark.parametrize(("method", "path", "operation"), operations())
def test_every_operation_documents_the_problems_any_operation_of_its_kind_can_answer(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    documented = set(operation["responses"])
    if operation.get("security") != []:
        assert "401" in documented  # a token is needed, once tokens are configured
    if "{" in path:
        assert "404" in documented  # a path parameter may name nothing
    if "requestBody" in operation:
        assert {"413", "422"} <= documented
    if any(parameter["in"] == "query" for parameter in operation.get("parameters", [])):
        assert "422" in documented


@pytest.mark.parametrize(("method", "path", "operation"), operations())
def test_every_documented_error_status_has_a_code_in_the_error_table(
    method: str, path: str, operation: dict[str, Any]
) -> None:
    statuses = {row.status for row in error_table.problem_rows()}
    errors = {int(s) for s in operation["responses"] if s.isdigit() and int(s) >= 400}
    if path.startswith("/health/"):
        errors.discard(503)  # readiness answers its own body, not a problem
    assert errors <= statuses
