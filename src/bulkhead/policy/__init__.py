"""Authorization: every decision in the code goes through `Authorizer.authorize`.

The decisions are made by Cedar policies (`platform.cedar`, checked against
`schema.cedarschema`) in `CedarAuthorizer`; the actions are registered in
`rbac.py`.  Tenant-written Cedar is bounded by `_bounds` before cedarpy parses
it and named into its own namespace by `_compile`.
"""

from bulkhead.policy._compile import compile_tenant_policies
from bulkhead.policy.cedar import (
    CLEARANCE,
    DEFAULT_CLEARANCE,
    SENSITIVITY,
    CedarAuthorizer,
    PolicySource,
    load_schema,
    model_resource,
    schema_text,
)
from bulkhead.policy.rbac import (
    ACTIONS,
    READS,
    SELF_REPAIR,
    Authorizer,
    Environment,
    Resource,
    action_groups,
)

__all__ = [
    "ACTIONS",
    "CLEARANCE",
    "DEFAULT_CLEARANCE",
    "READS",
    "SELF_REPAIR",
    "SENSITIVITY",
    "Authorizer",
    "CedarAuthorizer",
    "Environment",
    "PolicySource",
    "Resource",
    "action_groups",
    "compile_tenant_policies",
    "load_schema",
    "model_resource",
    "schema_text",
]
