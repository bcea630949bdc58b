"""The web console at `/console`: static pages, and the console's own sign-in and session.

`assets` names every page and file (and which paths are public: the sign-in
page and the static files, which hold no data); `endpoints` serves them.
Everything a page shows or changes goes through the platform and tenant APIs
(`/admin/v1`, `/tenant/v1`) with the session cookie and the CSRF header, so
their authorization is the APIs' own.  docs/console.md says how it is built
and why.

Nothing is imported here: the gateway reads `assets` for its allowlist, and
must not import `endpoints` (which uses the sign-in service of `admin`).
"""
