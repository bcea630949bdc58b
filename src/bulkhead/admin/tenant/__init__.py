"""/tenant/v1: self-service for a tenant's own admins and auditors, one module per resource.

The tenant is always the caller's own, taken from the credential
(`rules.tenant_id`); no route takes a tenant name or id, so another tenant's
objects are unreachable and a key id of another tenant answers 404.  A key
issues nothing broader than itself (`bulkhead.admin.rules`).  Each module
holds its handlers and one route table, `ROUTES`.
"""
