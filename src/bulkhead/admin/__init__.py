"""The platform (/admin/v1) and tenant self-service (/tenant/v1) APIs.

One module per resource, each with module-level handlers and one route table
(`ROUTES`): the surface-only ones in `admin/platform/` and `admin/tenant/`,
the ones with routes on both surfaces (audit, limits, guard, quota requests,
...) beside them.  `admin.api.build_admin` puts the tables together.

This package's own module imports nothing: the gateway loads the sign-in and
enrolment modules at start-up, and the route tables (`admin.api`, some 45
modules with their pydantic models) only with the first management call
(`app.lazy`).
"""
