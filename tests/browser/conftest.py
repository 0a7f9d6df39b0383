"""Browser tests: a real headless Chromium (the system's /usr/bin/chromium) driven by Playwright.

Every test in this folder is marked ``browser``. Without /usr/bin/chromium they are skipped
(``apt-get install -y chromium``), except in CI (the ``CI`` environment variable is set), where a
missing browser fails them. Never run ``playwright install``: the system Chromium is the browser.

Playwright's sync API keeps an asyncio event loop running in the test thread for as long as it
is started. Django then refuses ORM calls from that thread (SynchronousOnlyOperation), and
``asyncio.run``/``async_to_sync`` in other tests would refuse to run at all. So Playwright here
lives only while this folder's tests run (package scope, overriding pytest-playwright's session
fixtures), and DJANGO_ALLOW_ASYNC_UNSAFE is set for exactly that time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserType, ConsoleMessage, Page, Playwright

from tests.support.worker import redis_broker, running_worker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    # Keep Chromium off the outside network.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives a real Chromium")


def _in_this_folder(item: pytest.Item) -> bool:
    return HERE in Path(item.path).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # A conftest's hook sees every collected item, so pick out this folder's own.
    mine = [item for item in items if _in_this_folder(item)]
    skip = None
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        skip = pytest.mark.skip(
            reason=f"no Chromium at {CHROMIUM} (apt-get install -y chromium); "
            "in CI a missing Chromium fails instead"
        )
    for item in mine:
        item.add_marker(pytest.mark.browser)
        if skip is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(pytestconfig: pytest.Config) -> dict[str, Any]:
    if not CHROMIUM.exists():
        # Only reached in CI: elsewhere the tests were skipped at collection.
        pytest.fail(
            f"CI is set but there is no Chromium at {CHROMIUM}: apt-get install -y chromium"
        )
    return {
        "executable_path": str(CHROMIUM),
        "headless": not pytestconfig.getoption("--headed"),
        "args": CHROMIUM_ARGS,
    }


# pytest-playwright's Playwright, browser and context arguments, scoped to this folder.


@pytest.fixture(scope="package")
def playwright(_pw_api_request_contexts: Any) -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    pw = sync_playwright().start()
    try:
        if _pw_api_request_contexts:
            _pw_api_request_contexts.instrument(pw)
        yield pw
    finally:
        pw.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="package")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="package")
def launch_browser(
    browser_type_launch_args: dict[str, Any], browser_type: BrowserType
) -> Callable[..., Browser]:
    def launch(**kwargs: Any) -> Browser:
        return browser_type.launch(**{**browser_type_launch_args, **kwargs})

    return launch


@pytest.fixture(scope="package")
def browser(launch_browser: Callable[..., Browser]) -> Iterator[Browser]:
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": 1280, "height": 800}}


# Helpers.


# Reports each Content-Security-Policy violation of a page (a script, style, image or form the
# policy refused) to the test, whether or not Chromium also logs it. Injected by the browser
# before the page's own scripts, so the policy does not apply to it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportCspViolation(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"} ` +
    `(${event.sourceFile || event.documentURI}:${event.lineNumber})`
  );
});
"""


@pytest.fixture
def console_errors(page: Page) -> list[str]:
    """Every console error, uncaught exception, failed request and Content-Security-Policy
    violation of this page, as it happens."""
    errors: list[str] = []
    page.expose_function("reportCspViolation", lambda text: errors.append(f"CSP: {text}"))
    page.add_init_script(REPORT_CSP_VIOLATIONS)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text} ({message.location.get('url', '')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: errors.append(f"uncaught: {error}"))
    page.on("requestfailed", lambda request: errors.append(f"failed: {request.url}"))
    page.on(
        "response",
        lambda response: (
            errors.append(f"HTTP {response.status}: {response.url}")
            if response.status >= 400
            else None
        ),
    )
    return errors


@pytest.fixture
def screenshot(pytestconfig: pytest.Config) -> Callable[[Page, str], Path]:
    """``screenshot(page, name)`` saves a full-page PNG as test-artifacts/screenshots/<name>.png."""
    folder = pytestconfig.rootpath / "test-artifacts" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def worker(live_server_env: dict[str, str], settings: Any) -> Iterator[None]:
    """A real Celery worker on a Redis broker of the test's own, for the playground's queued
    generations. It reads reference images and stores images under its DATA_DIR: the page's
    server must write and find them there too."""
    settings.MEDIA_ROOT = str(Path(live_server_env["DATA_DIR"]) / "media")
    with redis_broker(live_server_env) as env, running_worker(env):
        yield
