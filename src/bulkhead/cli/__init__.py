"""The `bulkhead` command: an API client of the management API, plus `init` and `serve`."""

from bulkhead.cli.main import app, main

__all__ = ["app", "main"]
