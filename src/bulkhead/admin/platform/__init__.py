"""/admin/v1: the platform API, for platform admins and auditors, one module per resource.

Each module holds its handlers (module-level functions, which reach their
dependencies through `call.services`) and one route table, `ROUTES`;
`bulkhead.admin.api.build_admin` puts the tables together.
"""
