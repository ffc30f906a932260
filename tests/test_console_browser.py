"""The console as a person uses it: a real `migctl serve`, its worker, and headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from service.services.access import Role
from service.services.tokens import new_token, token_entry
from tests.helpers import EXAMPLE, FAST, MIGCTL, free_port, wait_for
from tests.projects import write_project
from tests.test_docs_page import CHROMIUM, CHROMIUM_ARGS

# Screenshots are kept for people to look at (CI keeps the folder); the test prints where.
ARTIFACTS = Path(
    os.environ.get("MIGCTL_TEST_ARTIFACTS") or Path(__file__).parent.parent / "test-artifacts"
)
DESKTOP, PHONE = {"width": 1280, "height": 900}, {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def serve_logging_to_file(cwd: Path, environ: dict[str, str]) -> Iterator[str]:
    """`migctl serve` on a free port, its log in cwd/serve.log: the pages make many access
    lines, and a pipe nobody reads while the browser works would fill and stall the server."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIGCTL_")}
    with (cwd / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [MIGCTL, "serve", "--bind", f"127.0.0.1:{port}"],
            cwd=cwd,
            env={**env, **FAST, "MIGCTL_WORKERS": "1", **environ},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{url}/health/ready")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert process.returncode == 0, (cwd / "serve.log").read_text()[-3000:]


@pytest.fixture(scope="module")
def tokens() -> dict[str, str]:
    return {"operator": new_token(), "viewer": new_token()}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tokens: dict[str, str]) -> Iterator[str]:
    """The bundled example (12 revisions) served with its worker, behind tokens."""
    cwd = tmp_path_factory.mktemp("console")
    path = cwd / "tokens.toml"
    path.write_text(
        token_entry("alice", Role.OPERATOR, [], tokens["operator"])
        + token_entry("victor", Role.VIEWER, [], tokens["viewer"])
    )
    yield from serve_logging_to_file(cwd, {"MIGCTL_TOKENS_FILE": str(path)})


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Path:
    folder = ARTIFACTS / "console" / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")
    return folder


def closed(request: Request) -> bool:
    """The page closes an operation's event stream once the operation ends."""
    return request.url.endswith("/events") and request.failure == "net::ERR_ABORTED"


def sign_in(page: Page, url: str, token: str) -> None:
    page.goto(f"{url}/console/")
    expect(page).to_have_url(f"{url}/console/sign-in?next=/console/")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()


def test_an_operator_signs_in_upgrades_the_example_and_watches_it_finish(
    browser: Browser, served: str, tokens: dict[str, str], shots: Path
) -> None:
    page = browser.new_page(viewport=DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "requestfailed", lambda r: errors.append(f"{r.url} {r.failure}") if not closed(r) else None
    )
    page.on("response", lambda r: errors.append(f"{r.url} {r.status}") if r.status >= 400 else None)
    sign_in(page, served, tokens["operator"])
    page.screenshot(path=shots / "fleet-desktop.png", full_page=True)

    page.get_by_role("link", name="example", exact=True).click()
    expect(page.locator("svg .node")).to_have_count(12)
    expect(page.locator("svg .node.applied")).to_have_count(0)
    page.screenshot(path=shots / "database-before-desktop.png", full_page=True)

    page.get_by_role("link", name="Review and upgrade").click()
    expect(page.locator("ol.steps li")).to_have_count(12)
    expect(page.locator("pre.sql .k").first).to_have_text("CREATE")
    page.get_by_label("Reason").fill("browser test")
    streams: list[int] = []
    page.on("response", lambda r: streams.append(r.status) if r.url.endswith("/events") else None)
    page.get_by_role("button", name="Queue upgrade to heads").click()
    expect(page.locator("#live tr")).to_have_count(13)  # every planned step has its row
    live_height = "document.getElementById('live').getBoundingClientRect().height"
    height = page.evaluate(live_height)

    expect(page.locator("#live")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    assert page.evaluate(live_height) == height  # nothing below it moved while it ran
    expect(page.locator("#live tr.ran")).to_have_count(12)
    assert streams and set(streams) == {200}  # followed its server-sent events
    page.screenshot(path=shots / "operation-desktop.png", full_page=True)

    page.get_by_role("link", name="example").first.click()
    expect(page.locator("svg .node.applied")).to_have_count(12)
    expect(page.locator("svg .node.current")).to_have_count(1)
    page.get_by_role("link", name="Audit log").click()
    expect(page.locator("main")).to_contain_text("operation.succeeded")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.goto(f"{served}/console/operations")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert errors == []  # no CSP violation, no script error


def test_a_viewer_reads_every_page_at_desktop_and_phone_widths(
    browser: Browser, served: str, tokens: dict[str, str], shots: Path
) -> None:
    pages = {
        "fleet": "/console/",
        "database": "/console/databases/example",
        "revision": "/console/databases/example/revisions/head?dialect=postgresql",
        "change": "/console/databases/example/change",
        "operations": "/console/operations",
        "audit": "/console/audit",
        "rollouts": "/console/rollouts",
    }
    for size, viewport in {"desktop": DESKTOP, "phone": PHONE}.items():
        page = browser.new_page(viewport=viewport)
        sign_in(page, served, tokens["viewer"])
        for name, path in pages.items():
            page.goto(f"{served}{path}")
            expect(page.locator("h1")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
            page.screenshot(path=shots / f"{name}-{size}.png", full_page=True)
        page.close()


def test_the_console_follows_the_system_dark_theme(
    browser: Browser, served: str, tokens: dict[str, str], shots: Path
) -> None:
    backgrounds = {}
    for scheme in ("light", "dark"):
        page = browser.new_page(viewport=DESKTOP, color_scheme=scheme)
        sign_in(page, served, tokens["viewer"])
        page.goto(f"{served}/console/databases/example/revisions/head?dialect=postgresql")
        backgrounds[scheme] = page.evaluate("getComputedStyle(document.body).backgroundColor")
        page.screenshot(path=shots / f"revision-{scheme}.png", full_page=True)
        page.close()
    assert backgrounds == {"light": "rgb(255, 255, 255)", "dark": "rgb(20, 24, 29)"}


def test_the_console_is_usable_from_the_keyboard(
    browser: Browser, served: str, tokens: dict[str, str]
) -> None:
    page = browser.new_page(viewport=DESKTOP)
    sign_in(page, served, tokens["viewer"])
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.goto(f"{served}/console/databases/example")
    page.locator("svg .node").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_contain_text("5a3e9f7b0c64")  # the head, by keyboard


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory, tokens: dict[str, str]) -> Iterator[str]:
    """The example as a production database: operations wait for another person's approval."""
    cwd = tmp_path_factory.mktemp("production")
    databases = cwd / "databases.toml"
    databases.write_text(
        f'[databases.prod]\nurl = "sqlite:///{cwd / "prod.db"}"\n'
        f'alembic_config = "{EXAMPLE / "alembic.ini"}"\nenvironment = "production"\n'
    )
    path = cwd / "tokens.toml"
    path.write_text(
        token_entry("alice", Role.ADMIN, [], tokens["operator"])
        + token_entry("bob", Role.APPROVER, [], tokens["viewer"])
    )
    environ = {"MIGCTL_TOKENS_FILE": str(path), "MIGCTL_DATABASES_FILE": str(databases)}
    yield from serve_logging_to_file(cwd, environ)


def test_a_second_person_approves_in_the_console_while_the_requester_is_refused(
    browser: Browser, production: str, tokens: dict[str, str], shots: Path
) -> None:
    alice = browser.new_page(viewport=DESKTOP)
    sign_in(alice, production, tokens["operator"])
    alice.goto(f"{production}/console/databases/prod/change")
    expect(alice.get_by_role("note")).to_contain_text("needs 1 approval by another person")
    alice.get_by_label("Reason").fill("release 42")
    alice.get_by_role("button", name="Queue upgrade to heads").click()
    expect(alice.locator("#live")).to_have_attribute("data-status", "awaiting_approval")
    expect(alice.locator("main")).to_contain_text("You requested it")
    operation = alice.url
    token = alice.locator('input[name="csrf_token"]').first.input_value()
    refused = alice.request.post(f"{operation}/approve", form={"csrf_token": token})
    assert refused.status == 403 and "self-approval" in refused.text()

    bob = browser.new_context(viewport=PHONE).new_page()
    sign_in(bob, production, tokens["viewer"])
    bob.get_by_role("link", name="Approvals").click()
    bob.get_by_role("link", name=operation.rsplit("/", 1)[1], exact=True).click()
    bob.screenshot(path=shots / "approval-phone.png", full_page=True)
    bob.get_by_role("button", name="Approve").click()
    expect(bob.locator("#live")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(alice.locator("#live")).to_have_attribute("data-status", "succeeded", timeout=60_000)
    expect(alice.locator("#live tr.ran")).to_have_count(12)


@pytest.fixture(scope="module")
def failing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A project whose second revision fails on the database, served without tokens."""
    cwd = tmp_path_factory.mktemp("failing")
    ini = write_project(cwd / "project", 'op.execute("UPDATE no_such_table SET x = 1")')
    environ = {"MIGCTL_DATABASE_URL": f"sqlite:///{cwd / 'db.sqlite'}"}
    yield from serve_logging_to_file(cwd, {**environ, "MIGCTL_ALEMBIC_CONFIG": str(ini)})


def test_a_failed_step_shows_its_error_and_its_sql_live(
    browser: Browser, failing: str, shots: Path
) -> None:
    page = browser.new_page(viewport=DESKTOP)
    page.goto(f"{failing}/console/databases/default/change")  # loopback, no tokens: no sign-in
    page.get_by_role("button", name="Queue upgrade to heads").click()
    expect(page.locator("#live")).to_have_attribute("data-status", "failed", timeout=60_000)
    problem = page.locator("#live .problem")
    expect(problem).to_contain_text("no such table")
    expect(problem.locator("pre.sql")).to_contain_text("UPDATE no_such_table SET x = 1")
    page.screenshot(path=shots / "failed-desktop.png", full_page=True)
    expect(page.locator("#live tr.ran")).to_have_count(1)  # r0 applied
    expect(page.locator("#live tr.failed")).to_contain_text("failed")  # r1 ran and failed
    expect(page.get_by_role("button", name="Cancel")).to_have_count(0)
