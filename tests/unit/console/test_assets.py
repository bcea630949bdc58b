"""The console's files and routes: every file shipped, every route judged, no inline code.

The pages run under `default-src 'none'; script-src 'self'; style-src 'self'`
(`gateway/headers.py`): an inline script or style would simply not run, so
these checks keep the source honest about it, and keep every page free of
the DOM sinks that turn text into markup and of any other origin.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path

import pytest

from bulkhead.console import assets
from bulkhead.console.endpoints import ROUTES
from bulkhead.gateway import chain
from bulkhead.policy import ACTIONS

STATIC = resources.files("bulkhead.console").joinpath("static")
HTML = sorted({*assets.PAGES.values(), "login.html"})
SCRIPTS = [name for name in assets.FILES if name.endswith(".js")]
ROOT = Path(__file__).resolve().parents[3]


def text(name: str) -> str:
    return STATIC.joinpath(name).read_text(encoding="utf-8")


def test_every_file_named_is_shipped_and_nothing_else() -> None:
    shipped = {entry.name for entry in STATIC.iterdir()}
    assert shipped == {*assets.FILES, *HTML}
    loaded = assets.load()
    assert set(loaded) == {
        *assets.PAGES,
        assets.SIGN_IN_PAGE,
        *(assets.STATIC + f for f in assets.FILES),
    }


def test_the_static_files_are_package_data() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "console/static/*" in pyproject["tool"]["setuptools"]["package-data"]["bulkhead"]


def test_public_routes_are_exactly_the_gateways_console_allowlist() -> None:
    public = {path for path, route in ROUTES.items() if route.action is None}
    assert public == set(assets.PUBLIC_PATHS) == set(chain.CONSOLE_PUBLIC)
    assert not set(assets.PAGES) & public  # pages need a session
    assert assets.SESSION not in public and assets.LOGOUT not in public


def test_every_other_route_names_a_registered_console_action() -> None:
    for path, route in ROUTES.items():
        if route.action is not None:
            assert route.action in ACTIONS and route.action.startswith("console:"), path
    assert ROUTES[assets.LOGOUT].method == ROUTES[assets.LOGIN].method == "POST"


def test_the_oidc_sign_in_is_public_and_takes_get_only() -> None:
    for path in (assets.OIDC_START, assets.OIDC_CALLBACK):
        assert path in chain.CONSOLE_PUBLIC and ROUTES[path].action is None
        assert ROUTES[path].method == "GET"  # the IdP's redirect back is a top-level GET


@pytest.mark.parametrize("name", HTML)
def test_pages_have_no_inline_script_or_style(name: str) -> None:
    page = text(name)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", page, re.S)
    assert len(scripts) == 1
    attributes, body = scripts[0]
    assert body.strip() == "" and 'type="module"' in attributes
    assert re.search(r'src="/console/static/\w+\.js"', attributes)
    assert "<style" not in page and " style=" not in page
    assert not re.search(r"\son\w+=", page)  # no inline event handlers
    assert "javascript:" not in page


@pytest.mark.parametrize("name", HTML)
def test_pages_load_nothing_from_another_origin(name: str) -> None:
    for link in re.findall(r'(?:src|href)="([^"]*)"', text(name)):
        assert link.startswith("/console/") or link == "data:,", link


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_never_parse_text_as_markup_or_code(name: str) -> None:
    # The SVG namespace is a name, not an address: charts.js makes SVG elements with it.
    source = text(name).replace('"http://www.w3.org/2000/svg"', "SVG_NAMESPACE")
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
        'setTimeout("',
        "http://",
        "https://",
    ):
        assert sink not in source, (name, sink)
    for module in re.findall(r'from "([^"]+)"', source):
        assert module.startswith("/console/static/"), module
    assert "fetch(" not in source or name == "api.js"  # one place talks to the server


# The one module that reads the page's URL (`?tenant=`, `?model=`: an object's name, which
# goes only into an API path, encoded); it navigates nowhere.
READS_URL = "page.js"


@pytest.mark.parametrize("name", SCRIPTS)
def test_scripts_keep_nothing_in_the_browser_and_follow_no_url_given_to_them(name: str) -> None:
    # A secret shown once (a key's) or the CSRF token must not outlive the page in
    # storage; and no redirect target comes from the URL (`?next=`: an open redirect).
    source = text(name)
    reads_url = ("location.search", "URLSearchParams") if name == READS_URL else ()
    for sink in (
        "localStorage",
        "sessionStorage",
        "indexedDB",
        "document.cookie",
        "caches.",
        "location.search",
        "location.hash",
        "URLSearchParams",
        "history.pushState",
    ):
        assert sink in reads_url or sink not in source, (name, sink)
    for target in re.findall(r"location\.(?:assign|replace)\(([^)]*)\)", source):
        assert target.startswith('"/console'), (name, target)


def test_the_verifier_stands_alone() -> None:
    # node runs verify.js as it is (tests/unit/console/test_verify_js.py): no import, no DOM.
    source = text("verify.js")
    assert "import " not in source and "document." not in source and "window." not in source
    assert "crypto.subtle" in source


def test_the_module_that_reads_the_url_navigates_nowhere() -> None:
    source = text(READS_URL)
    assert source.count("window.location.search") == 1
    for sink in ("location.assign", "location.replace", "location.href", ".href =", "open("):
        assert sink not in source, sink


def test_no_script_sends_a_url_value_anywhere_but_an_encoded_api_path() -> None:
    # `param()` feeds API path segments through `segment()` (encodeURIComponent) and form
    # fields; never a link, a redirect or a fetch of its own.
    for name in SCRIPTS:
        source = text(name)
        for found in re.findall(r"href: `([^`]*)`", source):
            assert found.startswith("/console/"), (name, found)
        assert "location.href" not in source and "window.open" not in source, name


def test_secrets_shown_once_are_dropped_when_the_page_is_left() -> None:
    # The back-forward cache could bring a page back with a new key's secret in it.
    assert 'addEventListener("pagehide", () => secret.replaceChildren())' in text("keys.js")


def test_every_page_is_linked_from_a_roles_page_list() -> None:
    # A page no one can reach is dead code; a link to no page is a 404 in the frame.
    ui = text("ui.js")
    linked = set(re.findall(r'\["(/console/[\w-]+)", "', ui))
    assert linked == set(assets.PAGES) - {"/console", "/console/"}
