"""Tenant-isolated vector stores (issue 18): chunking, the in-memory index, the service."""
