"""ASGI plumbing shared by the gateway and the admin APIs: scope keys and responses."""
