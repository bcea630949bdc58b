"""The loud part of break-glass: a JSON POST to an operator's webhook, best effort.

The POST runs on its own daemon thread with a short timeout, so neither the
event loop nor the request that broke the glass waits for the receiver; a
receiver that is down costs one warning in the log, never the grant.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("bulkhead.pam")


class WebhookAlert:
    """`alert(payload)` POSTs `payload` as JSON to `url` in the background."""

    def __init__(self, url: str, *, timeout_s: float = 3.0):
        if not url.startswith(("http://", "https://")):
            raise ValueError("the alert webhook must be an http(s) URL")
        self.url = url
        self.timeout_s = timeout_s

    def __call__(self, payload: dict[str, Any]) -> None:
        threading.Thread(target=self._post, args=(payload,), daemon=True).start()

    def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        # The scheme is checked in __init__, so no file: or custom scheme gets opened.
        request = urllib.request.Request(self.url, data=body, method="POST")  # noqa: S310
        request.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s):  # noqa: S310
                pass
        except (urllib.error.URLError, OSError) as exc:
            log.warning("break-glass webhook failed: %s", type(exc).__name__)

    def __repr__(self) -> str:
        return "WebhookAlert(<url>)"  # the URL may carry a token
