"""What the console's browser tests share: Debian's Chromium, a watched tab, screenshots,
and the console's sign-in page filled in as a person would.

The browser is the system's Chromium (`make services`: Debian package `chromium`),
passed to Playwright as `executable_path`; Playwright's own browser downloads are never
used.  Without it a test fails, it does not skip.  The fixtures that use these are in
`tests/browser/conftest.py`.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, expect

from tests.integration.test_sign_in import PASSWORD
from tests.support.console import Person
from tests.support.gateway import GatewayThread

# The browser's own note of a fetch the gateway refused: expected where a refusal is the point.
REFUSED_FETCH = re.compile(
    r"^Failed to load resource: the server responded with a status of 40[034]\b"
)


def chromium() -> str:
    found = os.environ.get("BULKHEAD_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.fail("Chromium is not installed: run `make services` (apt-get install chromium).")
    return found


@dataclass
class Shots:
    """Screenshots of each page, numbered in the order taken."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def take(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


@dataclass
class Tab:
    """A page in a browser context of its own, what it logged wrong, and its screenshots."""

    page: Page
    problems: list[str]
    shots: Shots

    def goto(self, gw: GatewayThread, path: str) -> None:
        self.page.goto(gw.url + path)


def open_tab(
    browser: Browser,
    folder: Path,
    *,
    width: int = 1200,
    noted: Callable[[ConsoleMessage], str | None] | None = None,
    page_errors: bool = True,
) -> Tab:
    """A fresh context (no cookie shared) and page whose console errors and warnings, and
    uncaught script errors, go to `problems`; `noted` words a message, or drops it (None).
    Screenshots go to `folder`, made here."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            text = noted(message) if noted is not None else message.text
            if text is not None:
                problems.append(text)

    page.on("console", on_console)
    if page_errors:
        page.on("pageerror", lambda error: problems.append(str(error)))
    folder.mkdir()
    return Tab(page, problems, Shots(folder))


def sign_in(page: Page, gw: GatewayThread, who: Person, shots: Shots) -> None:
    """`who` signs in on the console's page with password and TOTP, as a person would."""
    page.goto(gw.url + "/console/keys")
    expect(page).to_have_url(gw.url + "/console/login")  # no session: sent to sign in
    shots.take(page, "sign-in")
    if who.tenant is not None:
        page.fill("input[name=tenant]", who.tenant)
    page.fill("input[name=principal]", who.name)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=totp]", who.next_code())
    page.click("button[type=submit]")
    expect(page).to_have_url(gw.url + "/console")
    expect(page.locator("dl.facts")).to_contain_text(who.name)
    shots.take(page, "overview")
