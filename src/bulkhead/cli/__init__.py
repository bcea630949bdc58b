"""The `bulkhead` command: an API client of the management API, plus `init` and `serve`.

The whole command is `bulkhead.cli.main.app`, built when asked for.
"""

from bulkhead.cli.main import main

__all__ = ["main"]
