"""The data plane's in-memory view of keys, tenants and models.

Requests never go to the database: they read an immutable `Snapshot` that
the catalog swaps atomically.  Every control-plane change bumps a version
row; the process that made the change reloads at once (so a revoked key is
refused on the very next request), and every other replica notices the new
version on its next poll.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from sqlalchemy import select

from bulkhead.domain import ApiKey, DeploymentKind, IdpConfig, Principal, ResolvedModel, Tenant
from bulkhead.store import repo, selfservice, signin
from bulkhead.store.artifacts import BASE_ARTIFACT, BASE_OPTION, LORA_WORKER
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION
from bulkhead.store.changes import CommitWatch
from bulkhead.store.db import Database
from bulkhead.store.policies import all_tenant_policies
from bulkhead.store.schema import ModelGrantRow, PrincipalRow, TenantRow
from bulkhead.store.upstreams import SecretOpener, UpstreamBook, load_book

_EMPTY: Mapping[str, ResolvedModel] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int = 0
    keys: Mapping[str, ApiKey] = field(default_factory=dict)
    tenants: Mapping[str, Tenant] = field(default_factory=dict)
    principals: Mapping[str, Principal] = field(default_factory=dict)
    # tenant id -> model name -> the model and its deployment, for the models
    # that tenant may use (its private ones and the shared ones granted to it).
    visible: Mapping[str, Mapping[str, ResolvedModel]] = field(default_factory=dict)
    deployments: tuple[ResolvedModel, ...] = ()
    # tenant id -> that tenant's own Cedar policies (text), for `bulkhead.policy`.
    policies: Mapping[str, str] = field(default_factory=dict)
    # OIDC identity providers by issuer (each issuer belongs to one tenant), and
    # principal ids by (tenant id, principal name) to map a token's subject.
    idps: Mapping[str, IdpConfig] = field(default_factory=dict)
    principal_names: Mapping[tuple[str | None, str], str] = field(default_factory=dict)
    # Upstream credentials (opened), their grants and each tenant's egress policy.
    upstreams: UpstreamBook = field(default_factory=UpstreamBook)

    def models_for(self, tenant_id: str) -> Mapping[str, ResolvedModel]:
        return self.visible.get(tenant_id, _EMPTY)


def load_snapshot(
    db: Database, opener: SecretOpener | None = None, env: Mapping[str, str] | None = None
) -> Snapshot:
    """Everything the data plane reads; `opener` opens sealed upstream credentials."""
    with db.platform_transaction() as session:
        version = repo.catalog_version(session)
        tenants = {r.id: repo.tenant_of(r) for r in session.execute(select(TenantRow)).scalars()}
        principals = {
            r.id: repo.principal_of(r) for r in session.execute(select(PrincipalRow)).scalars()
        }
        keys = {k.id: k for k in repo.all_keys(session)}
        listings = repo.list_models(session)
        idps = {i.issuer: i for i in signin.all_idps(session)}
        grants = [
            (g.model_id, g.tenant_id) for g in session.execute(select(ModelGrantRow)).scalars()
        ]
        policies = all_tenant_policies(session)
        versions = selfservice.live_versions(session)
        upstreams = load_book(session, opener, os.environ if env is None else env)
    by_id = {m.model.id: ResolvedModel(m.model, m.deployment) for m in listings}
    visible: dict[str, dict[str, ResolvedModel]] = {t: {} for t in tenants}
    for model_id, tenant_id in grants:
        resolved = by_id[model_id]
        visible.setdefault(tenant_id, {})[resolved.model.name] = resolved
    # Private models come last so that they win over a shared model of the same name.
    for resolved in by_id.values():
        owner = resolved.model.owner_tenant_id
        if owner is not None:
            visible.setdefault(owner, {})[resolved.model.name] = resolved
    _route_versions(visible, by_id, versions)
    for models in visible.values():
        _drop_tuned_without_base(models)
    return Snapshot(
        version=version,
        keys=MappingProxyType(keys),
        tenants=MappingProxyType(tenants),
        principals=MappingProxyType(principals),
        visible=MappingProxyType({t: MappingProxyType(m) for t, m in visible.items()}),
        deployments=tuple(by_id.values()),
        policies=MappingProxyType(policies),
        idps=MappingProxyType(idps),
        principal_names=MappingProxyType(
            {(p.tenant_id, p.name): p.id for p in principals.values()}
        ),
        upstreams=upstreams,
    )


def _weights(resolved: ResolvedModel) -> str | None:
    """The base weights a local model serves, as a tuned model's `BASE_OPTION` names them."""
    deployment = resolved.deployment
    if deployment.kind is not DeploymentKind.LOCAL or deployment.worker == LORA_WORKER:
        return None
    artifact = deployment.options.get(ARTIFACT_OPTION)
    return BASE_ARTIFACT + str(artifact) if artifact else deployment.worker


def _drop_tuned_without_base(models: dict[str, ResolvedModel]) -> None:
    """A fine-tuned model (`LORA_WORKER`) is its base's weights with an adapter: a tenant
    may use it only while it may use a model of those weights, so revoking the base's
    grant takes the tuned models with it (back with the grant; tenant deletion shreds)."""
    bases = {_weights(r) for r in models.values()} - {None}
    for name, resolved in list(models.items()):
        deployment = resolved.deployment
        if deployment.worker == LORA_WORKER and deployment.options.get(BASE_OPTION) not in bases:
            del models[name]


def _route_versions(
    visible: dict[str, dict[str, ResolvedModel]],
    by_id: Mapping[str, ResolvedModel],
    versions: list[selfservice.ModelVersion],
) -> None:
    """`model@version` for each live version; the plain name to the newest (oldest first).

    Each version keeps its model's safety options (`selfservice.inherited`).
    """
    for version in versions:
        base = by_id.get(version.model_id)
        if base is None or base.model.owner_tenant_id is None:
            continue
        model = base.model
        resolved = ResolvedModel(model, selfservice.inherited(base.deployment, version.deployment))
        names = visible.setdefault(base.model.owner_tenant_id, {})
        names[f"{model.name}{selfservice.VERSION_SEPARATOR}{version.version}"] = resolved
        names[model.name] = resolved


class Catalog:
    """Holds the current snapshot; reloads it when the version row changes.

    `prepare` gets each loaded snapshot before it is published: the heavy work
    a snapshot implies (compiling tenants' policies) happens there, on the
    reloading thread, never on a request.
    """

    def __init__(
        self,
        db: Database,
        *,
        opener: SecretOpener | None = None,
        prepare: Callable[[Snapshot], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._db = db
        self._commits: CommitWatch | None = None  # opened at the first look (SQLite only)
        self._watching = False
        self._checked_at: int | None = None  # the commit counter at the last good look
        self._opener = opener  # opens sealed upstream credentials; None: they stay unavailable
        self._lock = threading.Lock()
        self._prepare = prepare
        self.snapshot = Snapshot()
        self._clock = clock
        self.confirmed_at = clock()  # when the snapshot was last known to be the newest
        self.max_stale_s = 0.0  # 0: never stale (until `watch`)

    def reload(self) -> Snapshot:
        with self._lock:
            started = self._clock()
            loaded = load_snapshot(self._db, self._opener)
            if self._prepare is not None:
                self._prepare(loaded)
            self.snapshot = loaded
            self.confirmed_at = max(self.confirmed_at, started)
            return self.snapshot

    def refresh_if_changed(self) -> bool:
        """One cheap query; reload only when another process changed something.

        On SQLite the query waits for a commit: the counter of commits
        (`store.changes`) read before it says whether any was made since the
        last look; if none was, the version is the one last read, which the
        snapshot has, so it is confirmed without a transaction.
        """
        started = self._clock()
        commits = self._commit_counter()
        if commits is not None and commits == self._checked_at:
            self.confirm(started, self.snapshot.version)
            return False
        with self._db.platform_transaction() as session:
            version = repo.catalog_version(session)
        changed = version != self.snapshot.version
        if changed:
            self.reload()
        self.confirm(started, version)
        # Only once the version read is in the snapshot: a failed look is looked at again.
        self._checked_at = commits
        return changed

    def confirm_if_unchanged(self) -> bool:
        """`refresh_if_changed`'s quick answer, which never waits (for the event loop): True,
        and the snapshot confirmed fresh, when SQLite's commit counter says nothing was
        committed since the last good look; False when that look must be made (a commit,
        no look yet, PostgreSQL, or a database too busy to answer at once)."""
        watch, checked = self._commits, self._checked_at
        if watch is None or checked is None:
            return False
        started = self._clock()
        if watch.counter() != checked:
            return False
        self.confirm(started, self.snapshot.version)
        return True

    def _commit_counter(self) -> int | None:
        """SQLite's count of commits now (None on PostgreSQL, which has no such counter, or
        when SQLite could not answer at once)."""
        if not self._watching:
            self._commits, self._watching = CommitWatch.for_url(self._db.url), True
        return self._commits.counter() if self._commits is not None else None

    def confirm(self, at: float, newest: int) -> None:
        """The version was at most `newest` at `at`: if this snapshot has it, it was fresh then."""
        if newest <= self.snapshot.version:
            self.confirmed_at = max(self.confirmed_at, at)

    def watch(self, max_stale_s: float) -> None:
        """From now on, be `stale` when unconfirmed for over `max_stale_s` (0: never)."""
        self.confirmed_at = max(self.confirmed_at, self._clock())
        self.max_stale_s = max_stale_s

    def unconfirmed_s(self) -> float:
        """Seconds since the snapshot was last confirmed to be the newest."""
        return max(0.0, self._clock() - self.confirmed_at)

    def stale(self) -> bool:
        """Whether the snapshot may miss a change: unconfirmed for longer than the bound."""
        limit = self.max_stale_s
        return limit > 0 and self._clock() - self.confirmed_at > limit
