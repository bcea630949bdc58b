"""Authorization: every decision in the code goes through `Authorizer.authorize`."""

from bulkhead.policy.rbac import ACTIONS, Authorizer, RoleAuthorizer

__all__ = ["ACTIONS", "Authorizer", "RoleAuthorizer"]
