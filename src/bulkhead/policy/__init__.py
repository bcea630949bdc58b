"""Authorization: every decision in the code goes through `Authorizer.authorize`.

The decisions are made by Cedar policies (`platform.cedar`, checked against
`schema.cedarschema`) in `CedarAuthorizer`; the actions are registered in
`rbac.py`.
"""

from bulkhead.policy.cedar import (
    CLEARANCE,
    SENSITIVITY,
    CedarAuthorizer,
    PolicySource,
    compile_tenant_policies,
    load_schema,
    model_resource,
    schema_text,
)
from bulkhead.policy.rbac import ACTIONS, READS, Authorizer, Environment, Resource, action_groups

__all__ = [
    "ACTIONS",
    "CLEARANCE",
    "READS",
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
