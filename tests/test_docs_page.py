"""/docs as a person sees it: a real `migctl serve` and headless Chromium, under the page's CSP."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright

from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import serve, wait_for

SPEC = Path(__file__).parent.parent / "openapi" / "openapi.json"
CHROMIUM = Path("/usr/bin/chromium")
# This machine reaches nothing but package registries: without these, Chromium waits on
# connections to Google's services (updates, sync, QUIC probes) and the test hangs.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def spec_operations() -> set[tuple[str, str, str]]:
    """(METHOD, path, summary) of every operation of the committed spec."""
    paths = json.loads(SPEC.read_text())["paths"]
    return {
        (method.upper(), path, operation["summary"])
        for path, item in paths.items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        # launch() gives every browser a fresh temporary profile (its own --user-data-dir).
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def token() -> str:
    return new_token()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, token: str) -> Iterator[str]:
    """The bundled example served with tokens: /docs is public, the API is not."""
    cwd = tmp_path_factory.mktemp("served")
    tokens = cwd / "tokens.toml"
    tokens.write_text(token_entry("docs-reader", Role.VIEWER, [], token))
    server = serve(cwd, {"MIGCTL_TOKENS_FILE": str(tokens), "MIGCTL_WORKERS": "1"})
    url = next(server)
    wait_for(f"{url}/health/ready")
    yield url
    next(server, None)


@pytest.fixture
def docs(browser: Browser, served: str) -> Iterator[tuple[Page, list[str]]]:
    """The rendered /docs page and every error its console reported (CSP violations too)."""
    page = browser.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{served}/docs")
    # Rendered, or given up ("Unable to render this definition"): Swagger UI shows one.
    page.locator(".opblock, .version-pragma, .errors-wrapper").first.wait_for(timeout=30_000)
    yield page, errors
    page.close()


def test_docs_page_lists_every_operation_of_the_spec(docs: tuple[Page, list[str]]) -> None:
    page, errors = docs
    assert "Unable to render" not in page.locator("body").inner_text()
    listed = {
        (
            block.locator(".opblock-summary-method").inner_text().strip(),
            block.locator(".opblock-summary-path").get_attribute("data-path") or "",
            block.locator(".opblock-summary-description").inner_text().strip(),
        )
        for block in page.locator(".opblock").all()
    }
    assert listed == spec_operations()
    assert errors == []  # no CSP violation, no script error


def test_docs_page_authorizes_with_a_bearer_token_and_runs_a_request(
    docs: tuple[Page, list[str]], token: str
) -> None:
    page, errors = docs
    page.locator("button.authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").first.fill(token)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    operation = page.locator(".opblock-get").filter(
        has=page.locator('[data-path="/api/v1/databases"]')
    )
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator("button.execute").click()

    response = operation.locator(".live-responses-table .response").first
    expect(response.locator(".response-col_status")).to_have_text("200", timeout=15_000)
    expect(response.locator(".response-col_description")).to_contain_text('"example"')
    assert errors == []
