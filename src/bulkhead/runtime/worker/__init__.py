"""Local model worker: one model served over HTTP/1.1 on a Unix domain socket.

A worker is a separate OS process started by the runtime supervisor. It speaks a subset of
the OpenAI HTTP API so that the gateway can treat it like any other upstream. Run it with
``python -m bulkhead.runtime.worker --help``.

This package deliberately imports nothing heavy at import time: torch, transformers and
sentence-transformers are only loaded by the worker process for the model kind it serves.
"""
