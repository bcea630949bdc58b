"""The composition root: the one place that picks concrete backends from settings.

`build` wires the gateway in a few steps (`app.build`); the rest is split by job:

- `application`: the ASGI application's lifecycle (start-up, catalog polling,
  the maintenance loop, shut-down);
- `backends`: factories picking the KMS, limiter, database, audit witnesses,
  worker supervisor, model client and TLS context from settings;
- `alerts`: who hears of a failing audit writer, key rotation, anomaly or
  limiter;
- `keys`: the platform's own keys (audit signing key, internal CA, cache salt);
- `jobs`: the scheduled maintenance work;
- `specs`: the local workers the catalog wants;
- `bootstrap`: `bulkhead init`;
- `sequencing`: `bulkhead audit sequencer`, the audit sequencer alone.
"""

from __future__ import annotations

from bulkhead.app.alerts import admission, anomaly_detector, audit_alert, rotation_alerter
from bulkhead.app.application import GC_THRESHOLDS, Application
from bulkhead.app.backends import (
    open_database,
    open_kms,
    open_limiter,
    open_webhook,
    sandbox_policy,
    server_ssl_context,
    workload_clients,
)
from bulkhead.app.bootstrap import DEMO_MODELS, DEMO_TENANT, InitResult, initialize
from bulkhead.app.build import build
from bulkhead.app.jobs import Maintenance, key_event
from bulkhead.app.keys import PlatformKeys, hsm_signing, rotate_audit_key
from bulkhead.app.sequencing import run_sequencer
from bulkhead.app.specs import local_specs

__all__ = [
    "DEMO_MODELS",
    "DEMO_TENANT",
    "GC_THRESHOLDS",
    "Application",
    "InitResult",
    "Maintenance",
    "PlatformKeys",
    "admission",
    "anomaly_detector",
    "audit_alert",
    "build",
    "hsm_signing",
    "initialize",
    "key_event",
    "local_specs",
    "open_database",
    "open_kms",
    "open_limiter",
    "open_webhook",
    "rotate_audit_key",
    "rotation_alerter",
    "run_sequencer",
    "sandbox_policy",
    "server_ssl_context",
    "workload_clients",
]
