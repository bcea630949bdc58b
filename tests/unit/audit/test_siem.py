"""SIEM lines: JSON lines, and syslog per RFC 5424 §6."""

from __future__ import annotations

import json
import re

from bulkhead.audit.siem import jsonl, syslog

EVENT = {
    "action": "v1:chat",
    "status": 403,
    "decision": "deny",
    "outcome": "failure",
    "event_id": "e1",
    "idx": 7,
    "tenant_id": 't"x]\\',
    "time": 1795633211.5,
}

# RFC 5424 §6: HEADER SP STRUCTURED-DATA [SP MSG]
LINE = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) - (\S+) (\[.*?[^\\]\]|-) (.*)$")


def test_syslog_line_has_the_rfc5424_shape() -> None:
    match = LINE.match(syslog(EVENT, hostname="gw-1"))
    assert match is not None
    pri, stamp, host, app, msgid, sd, msg = match.groups()
    assert int(pri) == 13 * 8 + 4  # log audit, warning for a denial
    assert stamp == "2026-11-25T19:00:11.500000Z" and host == "gw-1" and app == "bulkhead"
    assert msgid == "v1:chat"
    assert sd.startswith("[bulkhead@32473 ") and 'tenant_id="t\\"x\\]\\\\"' in sd
    assert json.loads(msg) == EVENT


def test_allowed_events_are_informational() -> None:
    assert syslog({"action": "v1:chat", "decision": "allow", "outcome": "success"}).startswith(
        "<110>1 "
    )


def test_jsonl_is_one_sorted_line() -> None:
    line = jsonl(EVENT)
    assert "\n" not in line and json.loads(line) == EVENT
    assert line.index('"action"') < line.index('"time"')
