"""Kubernetes: each tenant's isolation as objects (`render`), and the config they follow."""
