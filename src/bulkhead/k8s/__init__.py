"""Kubernetes: each tenant's isolation as objects (`render`), the config they follow, and the
proofs run over them (`netpol`, `checks`, `proofs`): plain JSON-form dicts throughout."""
