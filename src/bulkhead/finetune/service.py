"""Fine-tuning jobs: checked before they are queued, run by the scheduler, recorded as they go.

`create` refuses, with a 4xx and before any job exists, what could never
train: files that are not the caller's own `fine-tune` files (another
tenant's id is "not found", the same as no file), a JSONL file that is not
the chat format (the error names the line), a base model whose weights
Bulkhead does not hold for this tenant, hyper-parameters outside the tier's
bounds, a job whose estimated tokens do not fit the tenant's token budgets
(`budget`).  Then the job is `queued`, in the database: the replicas share
one queue there (`lease`), and a replica with a free slot claims it.

As the `Sink` of the scheduler it decrypts a job's files and base weights
into memory only when the job starts, and records each state change as a
job event and an audit event (`system:fine_tuning.job.<status>`).  The
tokens a run trained on are charged to the tenant's token budgets as they
come (`budget`) and recorded as a model call of the tenant
(`v1:fine_tuning.train`, key "fine-tuning") so they count in its usage.
A replica that shuts down puts the jobs it ran back in the queue (`close`):
a rolling restart never cancels a job; what the stopped run trained on
stays charged, and the job trains again from the start on the replica that
claims it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bulkhead.audit.events import AuditEvent
from bulkhead.domain import DeploymentKind, Endpoint, ResolvedModel, Tenant, TenantContext
from bulkhead.errors import Conflict, InvalidRequest, NotFound, RateLimited
from bulkhead.finetune.budget import TokenBudget
from bulkhead.finetune.contract import (
    BUNDLED_BASES,
    Outcome,
    Runner,
    TrainEvent,
    TrainInput,
    check_hyper,
    parse_examples,
)
from bulkhead.finetune.lease import LeaseLoop
from bulkhead.finetune.queue import Scheduler, Ticket
from bulkhead.finetune.request import CreateJob
from bulkhead.limits.policy import effective
from bulkhead.store.artifacts import OPTION as ARTIFACT_OPTION
from bulkhead.store.artifacts import WORKER as ARTIFACT_WORKER
from bulkhead.store.artifacts import ArtifactService
from bulkhead.store.files import FileService
from bulkhead.store.finetune import ACTIVE, JobInfo, JobStore, NewJob
from bulkhead.store.finetune_lease import JobLeases

log = logging.getLogger("bulkhead.finetune")

PURPOSE = "fine-tune"
MAX_EXAMPLES = 100_000
# Creates one tenant may have checking at once: each decrypts and parses its files on the
# loop's shared worker threads, which a tenant must not hold all of.
MAX_CREATING = 2
USAGE_KEY = "fine-tuning"  # the key column training tokens are counted under
HYPER_NAMES = frozenset({"epochs", "learning_rate_multiplier", "batch_size", "lora_rank"})
HYPER_NAMES |= {"max_seq_len", "seed"}


def replica_id() -> str:
    """This process's name in the lease: the host and a random part (unique per start)."""
    return f"{socket.gethostname()[:40]}-{secrets.token_hex(6)}"


@dataclass(frozen=True, slots=True)
class Limits:
    capacity: int = 1  # jobs running at once on this replica, all tenants together
    max_examples: int = MAX_EXAMPLES
    max_bytes: int = 512 * 1024 * 1024
    poll_s: float = 1.0  # how often the replica heartbeats, reaps and claims (`lease`)
    lease_s: float = 30.0  # a job whose lease is not renewed for this long is failed
    replica: str = field(default_factory=replica_id)


def base_of(resolved: ResolvedModel) -> str:
    """What the job trains from: a bundled base's name or "artifact:<id>", or a 400."""
    deployment = resolved.deployment
    if Endpoint.CHAT in resolved.model.endpoints and deployment.kind is DeploymentKind.LOCAL:
        if deployment.worker in BUNDLED_BASES:
            return deployment.worker
        artifact = deployment.options.get(ARTIFACT_OPTION)
        if deployment.worker == ARTIFACT_WORKER and artifact:
            return "artifact:" + artifact
    raise _not_trainable(resolved.model.name)


def _not_trainable(name: str) -> InvalidRequest:
    message = f"The model '{name}' cannot be fine-tuned here: Bulkhead does not hold its weights."
    return InvalidRequest(message, param="model", code="model_not_trainable")


def fine_tuned_name(job: JobInfo) -> str:
    """`ft:<base>:<tenant>:<suffix>:<job id>`, OpenAI's form with the tenant as organisation."""
    return f"ft:{job.model}:{job.tenant_id}:{job.suffix or ''}:{job.id}"


JOB_ID_CHARS = len("ftjob-") + 24  # `store.finetune`: "ftjob-" and 12 random bytes in hex
MAX_MODEL_NAME = 128  # `store.repo.MODEL_NAME`


def check_name_fits(model: str, tenant_id: str, suffix: str | None) -> None:
    """Refuse at `create` a job whose tuned model's name could never be registered."""
    length = len(f"ft:{model}:{tenant_id}:{suffix or ''}:") + JOB_ID_CHARS
    if length > MAX_MODEL_NAME:
        message = (
            f"The fine-tuned model's name would be {length} characters, over "
            f"{MAX_MODEL_NAME}: use a shorter suffix."
        )
        raise InvalidRequest(message, param="suffix" if suffix else "model")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class FineTuning:
    def __init__(
        self,
        *,
        jobs: JobStore,
        files: FileService,
        artifacts: ArtifactService | None,
        tenant_of: Callable[[str], Tenant | None],
        resolve: Callable[[str, str], ResolvedModel | None],
        emit: Callable[[AuditEvent], object],
        runner: Runner,
        limits: Limits | None = None,
        on_adapter: Callable[[JobInfo, tuple[tuple[str, bytes], ...]], None] | None = None,
        budget: TokenBudget | None = None,
    ):
        self.jobs, self.files, self.artifacts = jobs, files, artifacts
        self.tenant_of, self.resolve, self.emit = tenant_of, resolve, emit
        self.limits = limits = limits or Limits()
        self.on_adapter = on_adapter  # stores and registers the adapter (`finetune.publish`)
        self.budget = budget  # None: training counts in usage only, against no budget
        self._charged: dict[str, int] = {}  # job id -> tokens charged to the budgets so far
        self._creating: dict[str, int] = {}  # tenant id -> its creates being checked
        self._creating_lock = threading.Lock()
        self.scheduler = Scheduler(
            runner, self, concurrency=self.concurrency, capacity=limits.capacity
        )
        leases = JobLeases(jobs.db, owner=limits.replica, ttl_s=limits.lease_s)
        self.lease = LeaseLoop(
            leases,
            self.scheduler,
            concurrency=self.concurrency,
            poll_s=limits.poll_s,
            on_change=self._audit,
        )
        self.scheduler.on_free = self.lease.wake

    def concurrency(self, tenant_id: str) -> int:
        tenant = self.tenant_of(tenant_id)
        if tenant is None or not tenant.active:
            return 0
        value = effective(tenant.tier, tenant.quotas).get("fine_tuning_concurrency")
        return int(value) if value is not None else 0

    # --- create and cancel ---------------------------------------------------------------------

    def _examples(self, tenant_id: str, file_id: str, param: str) -> list[dict[str, Any]]:
        """The file's examples, checked (on a worker thread: it decrypts and parses)."""
        try:
            info = self.files.get(tenant_id, file_id)
        except NotFound:
            raise NotFound(f"No such File object: {file_id}", param=param) from None
        if info.purpose != PURPOSE:
            message = f"The file '{file_id}' has purpose '{info.purpose}', not '{PURPOSE}'."
            raise InvalidRequest(message, param=param)
        raw = self.files.content(tenant_id, file_id)
        limits = self.limits
        return parse_examples(
            raw, max_examples=limits.max_examples, max_bytes=limits.max_bytes, param=param
        )

    def check(self, ctx: TenantContext, request: CreateJob, resolved: ResolvedModel) -> JobInfo:
        """Every check before the job exists (on a worker thread: it decrypts and parses)."""
        assert ctx.tenant is not None
        tenant = ctx.tenant
        base = base_of(resolved)
        check_name_fits(resolved.model.name, tenant.id, request.suffix)
        if base.startswith("artifact:") and self.artifacts is not None:
            try:
                self.artifacts.get(tenant.id, base.removeprefix("artifact:"))
            except NotFound:  # a shared model imported by another tenant: not ours to read
                raise _not_trainable(resolved.model.name) from None
        hyper = check_hyper(tenant.tier, request.hyper)
        examples = self._examples(tenant.id, request.training_file, "training_file")
        if request.validation_file is not None:
            self._examples(tenant.id, request.validation_file, "validation_file")
        if self.budget is not None:  # the error a model call gets when the budget is spent
            self.budget.check(ctx, self.budget.estimate(examples, hyper.epochs))
        new = NewJob(
            model=resolved.model.name,
            training_file=request.training_file,
            validation_file=request.validation_file,
            suffix=request.suffix,
            hyper=asdict(hyper),
            created_by=ctx.principal.id,
            credential_id=ctx.credential_id,
        )
        job = self.jobs.create(tenant.id, new)
        queued = self.jobs.move(tenant.id, job.id, "queued", "Files validated; job queued.")
        return queued or job

    async def create(
        self, ctx: TenantContext, request: CreateJob, resolved: ResolvedModel
    ) -> JobInfo:
        assert ctx.tenant is not None
        tenant_id = ctx.tenant.id
        with self._creating_lock:
            if self._creating.get(tenant_id, 0) >= MAX_CREATING:
                raise RateLimited("Too many fine-tuning jobs are being created at once; retry.")
            self._creating[tenant_id] = self._creating.get(tenant_id, 0) + 1

        def check() -> JobInfo:  # the slot is freed when the thread is done, not its caller
            try:
                return self.check(ctx, request, resolved)
            finally:
                with self._creating_lock:
                    if (left := self._creating.pop(tenant_id) - 1) > 0:
                        self._creating[tenant_id] = left

        job = await asyncio.to_thread(check)
        self._audit(job, "queued")
        self.lease.wake()  # this replica claims it now if it has a free slot; else another
        return job

    async def cancel(self, tenant_id: str, job_id: str) -> JobInfo:
        job = await asyncio.to_thread(self.jobs.get, tenant_id, job_id)
        if job.status in ACTIVE:
            moved = await asyncio.to_thread(
                self.jobs.move, tenant_id, job_id, "cancelled", "Job cancelled.", level="warn"
            )
            if moved is not None:
                self._audit(moved, "cancelled")
                await self.scheduler.cancel(tenant_id, job_id)
                return moved
            job = await asyncio.to_thread(self.jobs.get, tenant_id, job_id)
        return job  # already final: OpenAI answers with the job as it is

    async def resume(self) -> None:
        """At start-up: take part in the fleet's queue (`lease`).  Jobs queued before (and
        those a replica shutting down requeued) are claimed as slots free; a job left running
        by a replica that died without shutting down fails once its lease ends; another
        replica's live job runs on."""
        self.lease.start()

    async def close(self) -> None:
        """At shutdown: no more claims or heartbeats; the runs here stop and their jobs go
        back to the queue (`finished` with a `shutdown` ticket), for another replica, or this
        one after its restart, to claim again — never "cancelled", which only a user asks.
        A run that did not end within the scheduler's wait is requeued here; the runner's
        own close, next, ends its process."""
        await self.lease.stop()
        stuck = await self.scheduler.close()
        if stuck:
            await self._requeue([t.job_id for t in stuck])

    # --- the scheduler's sink ------------------------------------------------------------------

    async def started(self, ticket: Ticket) -> bool:
        moved = await asyncio.to_thread(
            self.jobs.move, ticket.tenant_id, ticket.job_id, "running", "Training started."
        )
        if moved is not None:
            self._audit(moved, "running")
        return moved is not None

    def _load(self, ticket: Ticket) -> TrainInput:
        job = self.jobs.get(ticket.tenant_id, ticket.job_id)
        resolved = self.resolve(job.tenant_id, job.model)
        if resolved is None:  # the grant was revoked while the job waited
            raise InvalidRequest(f"The model '{job.model}' is no longer granted to the tenant.")
        base: Any = base_of(resolved)
        if base.startswith("artifact:"):
            if self.artifacts is None:
                raise _not_trainable(job.model)
            base = self.artifacts.load(job.tenant_id, base.removeprefix("artifact:"))
        training = self._examples(job.tenant_id, job.training_file, "training_file")
        validation = []
        if job.validation_file is not None:
            validation = self._examples(job.tenant_id, job.validation_file, "validation_file")
        hyper = check_hyper(self._tier(job.tenant_id), _hyper_args(job.hyper))
        tenant = self.tenant_of(job.tenant_id)
        if self.budget is not None and tenant is not None:  # again: others ran since create
            tokens = self.budget.estimate(training, hyper.epochs)
            self.budget.check_job(tenant, job.credential_id, tokens)
        return TrainInput(base=base, training=training, validation=validation, hyper=hyper)

    def _tier(self, tenant_id: str) -> Any:
        tenant = self.tenant_of(tenant_id)
        if tenant is None:
            raise InvalidRequest("The tenant is gone.")
        return tenant.tier

    async def load(self, ticket: Ticket) -> TrainInput:
        return await asyncio.to_thread(self._load, ticket)

    async def event(self, ticket: Ticket, event: TrainEvent) -> None:
        await self._charge(ticket.tenant_id, ticket.job_id, event.tokens)
        kind = event.kind if event.kind in ("metrics", "checkpoint", "message") else "message"
        text = event.text or (f"Step {event.step}" if kind != "message" else "")
        await asyncio.to_thread(
            self.jobs.add_event,
            ticket.tenant_id,
            ticket.job_id,
            kind,
            text,
            step=event.step,
            train_loss=_finite(event.train_loss),
            valid_loss=_finite(event.valid_loss),
        )

    async def finished(self, ticket: Ticket, outcome: Outcome) -> None:
        if ticket.shutdown and not outcome.succeeded:  # stopped by `close`: back to the queue
            await self._charge(ticket.tenant_id, ticket.job_id, outcome.trained_tokens)
            self._charged.pop(ticket.job_id, None)
            if outcome.trained_tokens > 0:  # what it trained on stays charged and counted
                job = await asyncio.to_thread(self.jobs.get, ticket.tenant_id, ticket.job_id)
                self._usage(job, outcome.trained_tokens)
            await self._requeue([ticket.job_id])
            return
        await self._finish(ticket.tenant_id, ticket.job_id, outcome)

    async def _requeue(self, job_ids: list[str]) -> None:
        for job in await asyncio.to_thread(self.lease.leases.requeue, job_ids):
            log.info("fine-tuning job %s: requeued (this replica shuts down)", job.id)
            self._audit(job, "queued", "replica_shutdown")

    async def _charge(self, tenant_id: str, job_id: str, tokens: int) -> None:
        """Charge the budgets with what the run trained on since the last charge."""
        delta = tokens - self._charged.get(job_id, 0)
        if self.budget is None or delta <= 0:
            return
        self._charged[job_id] = tokens
        job = await asyncio.to_thread(self.jobs.get, tenant_id, job_id)
        await asyncio.to_thread(self.budget.charge, tenant_id, job.credential_id, delta)

    async def _finish(self, tenant_id: str, job_id: str, outcome: Outcome) -> None:
        await self._charge(tenant_id, job_id, outcome.trained_tokens)
        self._charged.pop(job_id, None)
        job = await asyncio.to_thread(self.jobs.get, tenant_id, job_id)
        if outcome.trained_tokens > 0:
            self._usage(job, outcome.trained_tokens)
        mine = job.status == "running" and job.lease_owner in (None, self.limits.replica)
        if outcome.succeeded and not mine:
            return  # cancelled, failed or requeued meanwhile: its adapter is dropped
        if outcome.succeeded and self.on_adapter is not None:
            outcome = await self._publish(job, outcome)
        if outcome.succeeded:
            moved = await asyncio.to_thread(
                self.jobs.move,
                tenant_id,
                job_id,
                "succeeded",
                "The job has successfully completed.",
                fine_tuned_model=fine_tuned_name(job),
                trained_tokens=outcome.trained_tokens,
            )
        elif outcome.reason == "cancelled":
            moved = await asyncio.to_thread(
                self.jobs.move,
                tenant_id,
                job_id,
                "cancelled",
                "Job cancelled.",
                level="warn",
                trained_tokens=outcome.trained_tokens,
            )
        else:
            moved = await asyncio.to_thread(
                self.jobs.move,
                tenant_id,
                job_id,
                "failed",
                f"The job failed: {outcome.reason}.",
                level="error",
                error_code=outcome.reason or "crashed",
                error_message=outcome.message[:512] or "The job failed.",
                trained_tokens=outcome.trained_tokens,
            )
        if moved is not None:
            self._audit(moved, moved.status, outcome.reason)

    async def _publish(self, job: JobInfo, outcome: Outcome) -> Outcome:
        """Store and register the adapter (`on_adapter`); a refusal fails the job with why."""
        assert self.on_adapter is not None
        try:
            await asyncio.to_thread(self.on_adapter, job, outcome.adapter)
        except (InvalidRequest, NotFound, Conflict) as exc:  # a clear reason, safe to show
            return Outcome.failure("invalid_data", exc.message, outcome.trained_tokens)
        except Exception as exc:
            why = type(exc).__name__
            log.error("fine-tuning job %s: storing its adapter failed: %s", job.id, why)
            message = "The adapter could not be stored."
            return Outcome.failure("crashed", message, outcome.trained_tokens)
        return outcome

    # --- the record ----------------------------------------------------------------------------

    def _audit(self, job: JobInfo, status: str, reason: str | None = None) -> None:
        self.emit(
            AuditEvent(
                action=f"system:fine_tuning.job.{status}",
                outcome="failure" if status == "failed" else "success",
                status=200,
                tenant_id=job.tenant_id,
                principal_id=job.created_by,
                resource=job.id,
                object_id=job.id,
                model=job.model,
                reason=reason,
            )
        )

    def _usage(self, job: JobInfo, tokens: int) -> None:
        self.emit(
            AuditEvent(
                action="v1:fine_tuning.train",
                outcome="success",
                status=200,
                tenant_id=job.tenant_id,
                credential_id=USAGE_KEY,
                resource=job.id,
                model=job.model,
                prompt_tokens=tokens,
                completion_tokens=0,
            )
        )


def _hyper_args(hyper: Mapping[str, Any]) -> dict[str, object]:
    return {k: v for k, v in hyper.items() if k in HYPER_NAMES}
