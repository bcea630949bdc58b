"""The data plane: one ASGI chain that every call passes through."""

from bulkhead.gateway.chain import GatewayDeps, build_chain

__all__ = ["GatewayDeps", "build_chain"]
