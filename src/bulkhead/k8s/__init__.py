"""Kubernetes objects Bulkhead renders, and the proofs run over them (plain JSON-form dicts)."""
