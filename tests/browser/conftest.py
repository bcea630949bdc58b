"""The browser tests' fixtures: one gateway and one Chromium per module, and watched tabs
(`tests/support/browser.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.browser import REFUSED_FETCH, Shots, Tab, chromium, open_tab
from tests.support.gateway import GatewayThread


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """A gateway of the module's own (not the backend-parametrized one of tests/conftest)."""
    gw = GatewayThread(tmp_path_factory.mktemp("browser") / "data", None).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium(), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, tmp_path: Path) -> Iterator[tuple[Page, list[str], Shots]]:
    """One tab; the test checks its problems."""
    tab = open_tab(browser, tmp_path / "screenshots")
    yield tab.page, tab.problems, tab.shots
    print(f"\nscreenshots: {tab.shots.folder}")
    print("\n".join(tab.problems))
    tab.page.context.close()


def _not_a_refusal(message: ConsoleMessage) -> str | None:
    return None if REFUSED_FETCH.match(message.text) else message.text


@pytest.fixture
def tabs(browser: Browser, tmp_path: Path) -> Iterator[Callable[[str], Tab]]:
    """Opens a tab of its own per person (no cookie shared); none may log a problem."""
    opened: list[Tab] = []

    def open_for(who: str) -> Tab:
        tab = open_tab(browser, tmp_path / f"screenshots-{who}", width=1280, noted=_not_a_refusal)
        opened.append(tab)
        return tab

    yield open_for
    for tab in opened:
        print(f"\nscreenshots: {tab.shots.folder}")
        tab.page.context.close()
    assert [p for tab in opened for p in tab.problems] == []
