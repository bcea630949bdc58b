"""Bulkhead: a secure multi-tenant gateway and control plane for serving LLMs."""

__version__ = "0.1.0"
