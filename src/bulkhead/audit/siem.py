"""Audit events as SIEM streams: JSON lines, and syslog lines per RFC 5424."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# RFC 5424 §6.2.1, Table 1: facility 13 is "log audit".
FACILITY_LOG_AUDIT = 13
# RFC 5424 Table 2 severities: 6 informational, 4 warning.
_INFO, _WARNING = 6, 4
# RFC 5612 reserves enterprise number 32473 for documentation and examples;
# operators with their own number can replace it.
SD_ID = "bulkhead@32473"


def jsonl(event: dict[str, Any]) -> str:
    return json.dumps(event, sort_keys=True, separators=(",", ":"))


def _sd_value(value: object) -> str:
    # RFC 5424 §6.3.3: '"', '\' and ']' must be escaped inside PARAM-VALUE.
    text = str(value)
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _printable(text: str, limit: int) -> str:
    """PRINTUSASCII without spaces (RFC 5424 §6), or the NILVALUE '-'."""
    cleaned = "".join(c for c in text if 33 <= ord(c) <= 126)[:limit]
    return cleaned or "-"


def syslog(event: dict[str, Any], *, hostname: str = "-", app_name: str = "bulkhead") -> str:
    """One RFC 5424 line: `<PRI>1 TIMESTAMP HOST APP - MSGID [SD] MSG`."""
    denied = event.get("decision") == "deny" or event.get("outcome") == "failure"
    pri = FACILITY_LOG_AUDIT * 8 + (_WARNING if denied else _INFO)
    stamp = datetime.fromtimestamp(float(event.get("time", 0)), UTC)
    timestamp = stamp.isoformat(timespec="microseconds").replace("+00:00", "Z")
    params = " ".join(
        f'{key}="{_sd_value(event[key])}"'
        for key in (
            "event_id",
            "idx",
            "tenant_id",
            "principal_id",
            "credential_id",
            "status",
            "decision",
            "model",
            "request_id",
        )
        if event.get(key) is not None
    )
    structured = f"[{SD_ID} {params}]" if params else "-"
    return (
        f"<{pri}>1 {timestamp} {_printable(hostname, 255)} {_printable(app_name, 48)} - "
        f"{_printable(str(event.get('action', '')), 32)} {structured} {jsonl(event)}"
    )
