"""Input and output guards (PII, secrets, prompt injection) plug in here."""

from bulkhead.guard.base import InputGuard, OutputGuard

__all__ = ["InputGuard", "OutputGuard"]
