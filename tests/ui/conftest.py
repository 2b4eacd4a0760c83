"""Browser tests of the JupyterLab panel: a real `jupyter lab` and Debian's Chromium driven by Playwright.

They run in their own pytest process (`KALE_LIKE_UI_TESTS=1 python -m pytest tests/ui`, as
scripts/test.sh does): pytest-jupyter's event-loop fixtures (tests/test_server_api.py) and
Playwright's sync API cannot share one process. Without the variable this folder is not collected.

The lab serves this checkout's build of the extension (kale_like/surfaces/server/labextension,
put first on the labextensions path) with this checkout's server extension. Screenshots and
timings are written to tests/ui/artifacts/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

if os.environ.get("KALE_LIKE_UI_TESTS") != "1":
    collect_ignore_glob = ["test_*.py"]

from ui_lab import ARTIFACTS, BUILD, CHROMIUM, CHROMIUM_ARGS, Lab  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _requirements():
    if not (BUILD / "package.json").exists():
        pytest.fail(f"the extension is not built ({BUILD}); run `jlpm build` (scripts/test.sh does)")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install Debian's chromium package (.ci/run does)")
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lab_without_extension(tmp_path_factory):
    server = Lab(tmp_path_factory.mktemp("lab_plain"), with_extension=False).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    messages: list[str] = []
    page.on("pageerror", lambda error: messages.append(f"pageerror: {error}"))
    page.on("console", lambda message: messages.append(f"{message.type}: {message.text}")
            if message.type == "error" else None)
    page.errors = messages  # type: ignore[attr-defined]
    yield page
    context.close()
