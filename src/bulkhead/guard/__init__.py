"""Input and output guards: PII and secrets, prompt injection, streaming output filtering.

`Guard(config)` is the entry point: `scan_request` before the upstream call,
`output_filter` for each response.  The detectors, scorers and filters it
is built from are public too, for tests, benchmarks and other callers.
"""

from bulkhead.guard._canary import Canary, CanaryWatch, inject_canary
from bulkhead.guard._checksums import iban_valid, luhn_valid, prc_id_check_char, prc_id_valid
from bulkhead.guard._classifier import InjectionClassifier, TransformersClassifier, load_classifier
from bulkhead.guard._config import GuardConfig, InjectionMode
from bulkhead.guard._entities import PII_ENTITIES, SECRET_ENTITIES, Action, Entity, Finding
from bulkhead.guard._floor import FLOORED, looser_settings, settings_of, with_floor
from bulkhead.guard._guard import (
    LOGPROB_FIELDS,
    MAX_SCAN_CHARS,
    MAX_SCAN_TEXTS,
    Guard,
    RequestVerdict,
    asks_for_logprobs,
    check_text_bounds,
)
from bulkhead.guard._injection import InjectionDetector, InjectionResult
from bulkhead.guard._links import LinkPolicy
from bulkhead.guard._pseudonym import PseudonymVault
from bulkhead.guard._scan import EntityScanner
from bulkhead.guard._slots import TextSlot, text_slots
from bulkhead.guard._stream import DEFAULT_WINDOW, StreamFilter

__all__ = [
    "DEFAULT_WINDOW",
    "FLOORED",
    "LOGPROB_FIELDS",
    "MAX_SCAN_CHARS",
    "MAX_SCAN_TEXTS",
    "PII_ENTITIES",
    "SECRET_ENTITIES",
    "Action",
    "Canary",
    "CanaryWatch",
    "Entity",
    "EntityScanner",
    "Finding",
    "Guard",
    "GuardConfig",
    "InjectionClassifier",
    "InjectionDetector",
    "InjectionMode",
    "InjectionResult",
    "LinkPolicy",
    "PseudonymVault",
    "RequestVerdict",
    "StreamFilter",
    "TextSlot",
    "TransformersClassifier",
    "asks_for_logprobs",
    "check_text_bounds",
    "iban_valid",
    "inject_canary",
    "load_classifier",
    "looser_settings",
    "luhn_valid",
    "prc_id_check_char",
    "prc_id_valid",
    "settings_of",
    "text_slots",
    "with_floor",
]
