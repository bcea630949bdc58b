"""/admin/v1/principals: the platform's own principals (admins and auditors), through the API.

A new platform principal has no credential: its creator gets a one-time
enrolment secret (shown once, kept as a hash, expiring) and hands it to the
person, who sets their own password and enrols their authenticator with it
(`/auth/v1/enrol`, `bulkhead login --enrol`).  Nobody sets another platform
principal's password or mints another's admin key: a platform admin is one
person with credentials of its own, so "approved by a different admin"
means a different person.

Who holds a platform role is itself privileged (`Effect.PLATFORM_ROLES`):
adding a platform admin (which approves grants) or auditor (which reads the
whole audit log, something an admin does only under a grant), removing or
disabling an admin, enabling a principal again, and a key for another
principal each need a live grant for the route's action on the principal's
name, approved by another admin; a grant to give the `platform_admin` role
names it too (`NAME:platform_admin`), so an approval to add an auditor never
makes an admin.  While the platform has one active admin
there is nobody to approve, so its calls pass (`sole_platform_admin` in the
audit event), and the handler checks again under the write lock that it was
still alone.  An admin counts while it can act or may still enrol
(`operators.active_admins`).  Taking access away from an auditor needs no grant.  No
principal changes its own roles, disables or deletes itself, and the last
active admin is never disabled, deleted or demoted.

A key issues nothing that outlives it, as in a tenant (`admin/rules.py`): a
key held to an expiry mints only keys that expire no later (inheriting its
expiry where none is asked), and makes, re-enables or promotes no principal,
since a principal's enrolment secret or password outlives every key.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from bulkhead.admin import answers, rules, views
from bulkhead.admin import schemas as s
from bulkhead.admin.control import Control
from bulkhead.admin.effects import Effect, Exempt
from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.domain import ApiKey, Role
from bulkhead.errors import Conflict, PermissionDenied
from bulkhead.pam import refusal
from bulkhead.store import operators, repo

SOLE = Exempt("sole_platform_admin")
CREATE = "admin:platform_principals.create"
SET_ROLES = "admin:platform_principals.roles.set"
DISABLE = "admin:platform_principals.disable"
ENABLE = "admin:platform_principals.enable"
DELETE = "admin:platform_principals.delete"
KEYS = "admin:platform_principals.keys.create"
ENROLMENT_S = 72 * 3600


class OperatorCreate(Strict):
    name: str = Field(min_length=1, max_length=128)
    roles: list[Role] = Field(min_length=1, max_length=2)
    email: str | None = Field(default=None, max_length=254)
    enrolment_expires_in_s: int = Field(
        default=ENROLMENT_S,
        ge=300,
        le=7 * 86400,
        description="How long the enrolment secret stays good (5 minutes to 7 days).",
    )


class OperatorRoles(Strict):
    roles: list[Role] = Field(min_length=1, max_length=2)


class OperatorKeyCreate(Strict):
    role: Role
    name: str = Field(default="", max_length=128)
    expires_in_s: int | None = Field(default=None, ge=60, le=10 * 365 * 86400)


class OperatorOut(BaseModel):
    id: str
    name: str
    roles: list[Role]
    email: str | None
    status: str
    enrolled: bool
    enrolment_expires_at: datetime | None
    keys: int
    created_at: datetime
    disabled_at: datetime | None


class OperatorDisabled(OperatorOut):
    revoked_keys: list[str]


class OperatorCreated(OperatorOut):
    enrolment_secret: str = Field(
        repr=False,
        description="Shown once: the person sets their password and authenticator with it "
        "(`bulkhead login --enrol`). Only its hash is stored.",
    )


def out(op: operators.Operator) -> OperatorOut:
    p = op.principal
    return OperatorOut(
        id=p.id,
        name=p.name,
        roles=sorted(p.roles),
        email=p.email,
        status="disabled" if p.disabled else "active",
        enrolled=op.enrolled,
        enrolment_expires_at=op.enrolment_expires_at,
        keys=op.keys,
        created_at=op.created_at,
        disabled_at=op.disabled_at,
    )


def admin_target(name: str) -> str:
    """The grant target for giving `name` the platform_admin role.

    Its creator holds a new principal's enrolment secret, so an admin made with a
    grant approved for an auditor would be a second admin under one person.
    """
    return f"{name}:{Role.PLATFORM_ADMIN.value}"


def create_target(body: OperatorCreate) -> str:
    return admin_target(body.name) if Role.PLATFORM_ADMIN in body.roles else body.name


def _not_self(call: Call, what: str) -> None:
    if call.params["principal"] == call.ctx.principal.name:
        raise PermissionDenied(
            f"You cannot {what} yourself: another platform admin must.", policy="platform.not-self"
        )


def still_alone(db: Session, call: Call, action: str, target: str | Callable[[], str]) -> None:
    """Under the write lock: a call let through as the sole admin's finds it still alone."""
    operators.serialise(db)
    if call.exempt == SOLE and len(operators.active_admins(db)) > 1:
        raise refusal(action, target if isinstance(target, str) else target())


TAKES_AWAY = frozenset({"takes_access_away", "not_a_platform_admin"})


def still_takes_away(
    db: Session, call: Call, action: str, name: str, after: set[Role] | None = None
) -> None:
    """Under the write lock: a call let through for only taking access away still does.

    Its principal's roles were read before the lock; one made an admin meanwhile is
    removed, disabled or demoted only with a grant. `after`: the roles it is given.
    """
    if call.exempt is None or call.exempt.reason not in TAKES_AWAY:
        return
    before = operators.find(db, name).roles
    admin = Role.PLATFORM_ADMIN
    gives = after is not None and bool(after - before)
    if gives or (admin in before and (after is None or admin not in after)):
        raise refusal(action, name)


def _roles_target(db: Session, name: str, roles: list[Role]) -> str:
    promotes = Role.PLATFORM_ADMIN in set(roles) - operators.find(db, name).roles
    return admin_target(name) if promotes else name


class _Targets:
    """The grant each write needs: its principal's name, or why it needs none."""

    def __init__(self, control: Control):
        self.control = control

    async def alone_or(self, target: str) -> str | Exempt:
        """The grant target, or no grant while the platform has a single active admin."""
        count = await self.control.read(lambda db: len(operators.active_admins(db)))
        return SOLE if count <= 1 else target

    async def held(self, name: str) -> frozenset[Role]:
        return (await self.control.read(lambda db: operators.find(db, name))).roles

    async def create(self, call: Call) -> str | Exempt:
        body: OperatorCreate = call.body
        operators.check_new(body.name, body.roles, body.email)
        return await self.alone_or(create_target(body))

    async def roles(self, call: Call) -> str | Exempt:
        _not_self(call, "change the roles of")
        body: OperatorRoles = call.body
        before, after = await self.held(call.params["principal"]), set(body.roles)
        added, name = after - before, call.params["principal"]
        if Role.PLATFORM_ADMIN in added:
            return await self.alone_or(admin_target(name))
        if added or (Role.PLATFORM_ADMIN in before and Role.PLATFORM_ADMIN not in after):
            return await self.alone_or(name)
        return Exempt("takes_access_away")

    async def removal(self, call: Call) -> str | Exempt:
        _not_self(call, "disable or delete")
        if Role.PLATFORM_ADMIN in await self.held(call.params["principal"]):
            return await self.alone_or(call.params["principal"])
        return Exempt("not_a_platform_admin")

    async def enable(self, call: Call) -> str | Exempt:
        return await self.alone_or(call.params["principal"])

    async def key(self, call: Call) -> str | Exempt:
        body: OperatorKeyCreate = call.body
        if call.params["principal"] == call.ctx.principal.name:
            return Exempt("own_key")
        if body.role is Role.PLATFORM_ADMIN:
            # Whoever holds another admin's key is that admin: it could approve its own grants.
            raise PermissionDenied(
                "A platform admin key is made only by its own principal, signed in with its "
                "second factor.",
                policy="platform.own-admin-key",
            )
        return await self.alone_or(call.params["principal"])


def _create(db: Session, call: Call) -> OperatorCreated:
    body: OperatorCreate = call.body
    still_alone(db, call, CREATE, create_target(body))
    made = operators.create(
        db,
        body.name,
        body.roles,
        email=body.email,
        created_by=call.ctx.principal.id,
        lifetime=timedelta(seconds=body.enrolment_expires_in_s),
    )
    shown = out(made.operator).model_dump()
    return OperatorCreated(**shown, enrolment_secret=made.enrolment.secret)


def _set_roles(db: Session, call: Call) -> OperatorOut:
    body: OperatorRoles = call.body
    name = call.params["principal"]
    still_alone(db, call, SET_ROLES, lambda: _roles_target(db, name, body.roles))
    still_takes_away(db, call, SET_ROLES, name, set(body.roles))
    return out(operators.set_roles(db, name, body.roles, actor=call.ctx.principal))


def _disable(db: Session, call: Call) -> OperatorDisabled:
    name = call.params["principal"]
    still_alone(db, call, DISABLE, name)
    still_takes_away(db, call, DISABLE, name)
    done, revoked = operators.disable(db, name, actor=call.ctx.principal)
    return OperatorDisabled(**out(done).model_dump(), revoked_keys=revoked)


def _enable(db: Session, call: Call) -> OperatorOut:
    name = call.params["principal"]
    still_alone(db, call, ENABLE, name)
    return out(operators.enable(db, name))


def _delete(db: Session, call: Call) -> answers.OperatorDeleted:
    name = call.params["principal"]
    still_alone(db, call, DELETE, name)
    still_takes_away(db, call, DELETE, name)
    gone = operators.remove(db, name, actor=call.ctx.principal)
    return answers.OperatorDeleted(principal=gone.name, id=gone.id, deleted=True)


def _create_key(db: Session, call: Call, by: ApiKey | None) -> s.KeyCreated:
    body: OperatorKeyCreate = call.body
    name = call.params["principal"]
    still_alone(db, call, KEYS, name)
    principal = operators.find(db, name)
    if principal.disabled:
        raise Conflict(f"'{name}' is disabled.")
    rules.holds(principal, body.role)
    if body.role is Role.PLATFORM_ADMIN and principal.id != call.ctx.principal.id:
        raise PermissionDenied("A platform admin key is made only by its own principal.")
    expires_at = rules.bounded_expiry(by, rules.expiry(body.expires_in_s))
    created = repo.create_key(
        db, None, role=body.role, principal=principal, expires_at=expires_at, name=body.name
    )
    return s.KeyCreated(key=views.key(created.key, None), secret=created.secret)


def _list_keys(db: Session, call: Call) -> list[s.KeyOut]:
    principal = operators.find(db, call.params["principal"])
    keys = repo.list_keys(db, None)
    return [views.key(k, None) for k in keys if k.principal_id == principal.id]


Work = Callable[[Session, Call], Any]


async def _writes(call: Call, work: Work) -> Any:
    return await call.services.control.write(lambda db: work(db, call))


async def _lasting(call: Call, work: Work) -> Any:
    """A write that gives a principal access for good: refused to a key held to an expiry."""
    control = call.services.control
    rules.unrestricted(rules.issuer(control, call.ctx))
    return await control.write(lambda db: work(db, call))


async def create(call: Call) -> OperatorCreated:
    made: OperatorCreated = await _lasting(call, _create)
    return made


async def list_operators(call: Call) -> list[OperatorOut]:
    return [out(o) for o in await call.services.control.read(operators.list_all)]


async def get_operator(call: Call) -> OperatorOut:
    name = call.params["principal"]
    return out(await call.services.control.read(lambda db: operators.get(db, name)))


async def set_roles(call: Call) -> OperatorOut:
    done: OperatorOut = await _lasting(call, _set_roles)
    return done


async def disable(call: Call) -> OperatorDisabled:
    done: OperatorDisabled = await _writes(call, _disable)
    return done


async def enable(call: Call) -> OperatorOut:
    done: OperatorOut = await _lasting(call, _enable)
    return done


async def delete(call: Call) -> answers.OperatorDeleted:
    done: answers.OperatorDeleted = await _writes(call, _delete)
    return done


async def create_key(call: Call) -> s.KeyCreated:
    control = call.services.control
    by = rules.issuer(control, call.ctx)
    return await control.write(lambda db: _create_key(db, call, by))


async def list_keys(call: Call) -> list[s.KeyOut]:
    return await call.services.control.read(lambda db: _list_keys(db, call))


# The grant each write needs (`_Targets`), asked of the principals as they are now.
async def create_target_of(call: Call) -> str | Exempt:
    return await _Targets(call.services.control).create(call)


async def roles_target_of(call: Call) -> str | Exempt:
    return await _Targets(call.services.control).roles(call)


async def removal_target_of(call: Call) -> str | Exempt:
    return await _Targets(call.services.control).removal(call)


async def enable_target_of(call: Call) -> str | Exempt:
    return await _Targets(call.services.control).enable(call)


async def key_target_of(call: Call) -> str | Exempt:
    return await _Targets(call.services.control).key(call)


_ROLES = frozenset({Effect.PLATFORM_ROLES})
ROUTES = (
    Route.post(
        "/admin/v1/principals",
        action=CREATE,
        handler=create,
        summary="Create a platform admin or auditor; its one-time enrolment secret is shown once "
        "(a grant, but while the platform has a single admin)",
        body=OperatorCreate,
        response=OperatorCreated,
        status=201,
        effects=_ROLES,
        grant_target=create_target_of,
    ),
    Route.get(
        "/admin/v1/principals",
        action="admin:platform_principals.list",
        handler=list_operators,
        summary="Platform principals",
        response=OperatorOut,
        many=True,
    ),
    Route.get(
        "/admin/v1/principals/{principal}",
        action="admin:platform_principals.get",
        handler=get_operator,
        summary="One platform principal",
        response=OperatorOut,
    ),
    Route.put(
        "/admin/v1/principals/{principal}/roles",
        action=SET_ROLES,
        handler=set_roles,
        summary="Replace a platform principal's roles (adding any or removing platform_admin: "
        "a grant); keys and sessions in a dropped role end",
        body=OperatorRoles,
        response=OperatorOut,
        effects=_ROLES,
        grant_target=roles_target_of,
    ),
    Route.post(
        "/admin/v1/principals/{principal}/disable",
        action=DISABLE,
        handler=disable,
        summary="Disable a platform principal: its keys, sessions and enrolment end at once "
        "(an admin: a grant)",
        response=OperatorDisabled,
        effects=_ROLES,
        grant_target=removal_target_of,
    ),
    Route.post(
        "/admin/v1/principals/{principal}/enable",
        action=ENABLE,
        handler=enable,
        summary="Let a disabled platform principal sign in again (a grant)",
        response=OperatorOut,
        effects=_ROLES,
        grant_target=enable_target_of,
    ),
    Route.delete(
        "/admin/v1/principals/{principal}",
        action=DELETE,
        handler=delete,
        summary="Delete a platform principal (an admin: a grant)",
        response=answers.OperatorDeleted,
        effects=_ROLES,
        grant_target=removal_target_of,
    ),
    Route.post(
        "/admin/v1/principals/{principal}/keys",
        action=KEYS,
        handler=create_key,
        summary="An API key of a platform principal, in a role it holds: an admin key only for "
        "yourself, another's auditor key with a grant",
        body=OperatorKeyCreate,
        response=s.KeyCreated,
        status=201,
        effects=_ROLES,
        grant_target=key_target_of,
    ),
    Route.get(
        "/admin/v1/principals/{principal}/keys",
        action="admin:platform_principals.keys.list",
        handler=list_keys,
        summary="A platform principal's API keys (never their secrets)",
        response=s.KeyOut,
        many=True,
    ),
)
