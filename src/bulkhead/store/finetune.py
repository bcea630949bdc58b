"""Fine-tuning jobs and their events in SQL, always inside one tenant.

Every query names the tenant (and PostgreSQL's row-level security holds it
again); a job id of another tenant is "not found", the same as one that does
not exist.  A job's state moves only along `TRANSITIONS`, by a conditional
UPDATE, so a cancel racing the runner's end leaves exactly one final state.
The cross-tenant work (every replica claiming, renewing and reaping jobs
under its lease) is `store.finetune_lease`.  A job is made only while the
tenant's fine-tuned models and its jobs that may still make one are under
`BULKHEAD_TENANT_MAX_TUNED_MODELS` (`create`, under the tenant's lock), and
while its jobs, finished ones included, are under `BULKHEAD_TENANT_MAX_FINE_TUNING_JOBS`
(the maintenance loop deletes old finished ones, `store.history`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, literal, select, tuple_, update
from sqlalchemy.orm import Session

from bulkhead.errors import NotFound
from bulkhead.store.artifacts import check_tuned_room
from bulkhead.store.db import Database
from bulkhead.store.history import check_job_room
from bulkhead.store.repo import lock_tenant
from bulkhead.store.schema import FineTuningEventRow, FineTuningJobRow, UTCDateTime, utcnow

ACTIVE = frozenset({"validating_files", "queued", "running"})
FINAL = frozenset({"succeeded", "failed", "cancelled"})
TRANSITIONS: dict[str, frozenset[str]] = {
    # running -> queued: the replica that ran it shut down (`store.finetune_lease.requeue`)
    "queued": frozenset({"validating_files", "running"}),
    "running": frozenset({"queued"}),
    "succeeded": frozenset({"running"}),
    "failed": frozenset({"validating_files", "queued", "running"}),
    "cancelled": frozenset({"validating_files", "queued", "running"}),
}
MAX_MESSAGE = 512


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    tenant_id: str
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    hyper: dict[str, Any]
    status: str
    fine_tuned_model: str | None
    error_code: str | None
    error_message: str | None
    trained_tokens: int | None
    created_at: datetime
    finished_at: datetime | None
    created_by: str | None = None
    lease_owner: str | None = None  # the replica that runs it (`store.finetune_lease`)
    credential_id: str | None = None  # the key that created it: its budget is charged too

    def openai(self) -> dict[str, object]:
        """The job as OpenAI's `fine_tuning.job`; LoRA rank and sequence length under `bulkhead`."""
        hyper = self.hyper
        error = None
        if self.error_code is not None:
            error = {"code": self.error_code, "message": self.error_message or "", "param": None}
        return {
            "object": "fine_tuning.job",
            "id": self.id,
            "model": self.model,
            "created_at": int(self.created_at.timestamp()),
            "finished_at": int(self.finished_at.timestamp()) if self.finished_at else None,
            "fine_tuned_model": self.fine_tuned_model,
            "organization_id": self.tenant_id,
            "result_files": [],
            "status": self.status,
            "validation_file": self.validation_file,
            "training_file": self.training_file,
            "hyperparameters": {
                "n_epochs": hyper.get("epochs"),
                "batch_size": hyper.get("batch_size"),
                "learning_rate_multiplier": hyper.get("learning_rate_multiplier"),
            },
            "trained_tokens": self.trained_tokens,
            "error": error,
            "seed": hyper.get("seed", 0),
            "suffix": self.suffix,
            "estimated_finish": None,
            "integrations": [],
            "bulkhead": {
                "lora_rank": hyper.get("lora_rank"),
                "max_seq_len": hyper.get("max_seq_len"),
            },
        }


@dataclass(frozen=True, slots=True)
class JobEvent:
    id: str
    job_id: str
    seq: int
    kind: str
    level: str
    message: str
    step: int
    train_loss: float | None
    valid_loss: float | None
    created_at: datetime

    def openai(self) -> dict[str, object]:
        data: dict[str, object] = {"step": self.step}
        if self.train_loss is not None:
            data["train_loss"] = self.train_loss
        if self.valid_loss is not None:
            data["valid_loss"] = self.valid_loss
        return {
            "object": "fine_tuning.job.event",
            "id": self.id,
            "created_at": int(self.created_at.timestamp()),
            "level": self.level,
            "message": self.message,
            "type": "metrics" if self.kind == "metrics" else "message",
            "data": data,
        }

    def checkpoint(self, fine_tuned_model: str | None) -> dict[str, object]:
        metrics: dict[str, object] = {"step": self.step}
        if self.train_loss is not None:
            metrics["train_loss"] = self.train_loss
        if self.valid_loss is not None:
            metrics["valid_loss"] = self.valid_loss
        name = f"{fine_tuned_model or self.job_id}:ckpt-step-{self.step}"
        return {
            "object": "fine_tuning.job.checkpoint",
            "id": "ftckpt-" + self.id.removeprefix("ftevent-"),
            "created_at": int(self.created_at.timestamp()),
            "fine_tuning_job_id": self.job_id,
            "fine_tuned_model_checkpoint": name,
            "step_number": self.step,
            "metrics": metrics,
        }


def _job(row: FineTuningJobRow) -> JobInfo:
    return JobInfo(
        id=row.id,
        tenant_id=row.tenant_id,
        model=row.model,
        training_file=row.training_file,
        validation_file=row.validation_file,
        suffix=row.suffix,
        hyper=orjson.loads(row.hyper),
        status=row.status,
        fine_tuned_model=row.fine_tuned_model,
        error_code=row.error_code,
        error_message=row.error_message,
        trained_tokens=row.trained_tokens,
        created_at=row.created_at,
        finished_at=row.finished_at,
        created_by=row.created_by,
        lease_owner=row.lease_owner,
        credential_id=row.credential_id,
    )


def _event(row: FineTuningEventRow) -> JobEvent:
    return JobEvent(
        row.id,
        row.job_id,
        row.seq,
        row.kind,
        row.level,
        row.message,
        row.step,
        row.train_loss,
        row.valid_loss,
        row.created_at,
    )


@dataclass(frozen=True, slots=True)
class NewJob:
    model: str
    training_file: str
    validation_file: str | None
    suffix: str | None
    hyper: dict[str, Any]
    created_by: str | None = None
    credential_id: str | None = None


class JobStore:
    def __init__(self, db: Database):
        self.db = db

    def _row(self, session: Session, tenant_id: str, job_id: str, param: str) -> FineTuningJobRow:
        row = session.get(FineTuningJobRow, job_id)
        if row is None or row.tenant_id != tenant_id:
            raise NotFound(f"No such fine-tuning job: {job_id}", param=param)
        return row

    def create(self, tenant_id: str, new: NewJob) -> JobInfo:
        """A job in `validating_files`, with its first event; a 409 when the tenant's
        fine-tuned models and active jobs are at their bound (`check_tuned_room`)."""
        job_id = "ftjob-" + secrets.token_hex(12)
        with self.db.tenant_transaction(tenant_id) as session:
            lock_tenant(session, tenant_id)
            active = session.execute(
                select(func.count())
                .select_from(FineTuningJobRow)
                .where(
                    FineTuningJobRow.tenant_id == tenant_id,
                    FineTuningJobRow.status.in_(ACTIVE),
                )
            ).scalar_one()
            check_tuned_room(session, tenant_id, jobs=active)
            check_job_room(session, tenant_id)
            row = FineTuningJobRow(
                id=job_id,
                tenant_id=tenant_id,
                model=new.model,
                training_file=new.training_file,
                validation_file=new.validation_file,
                suffix=new.suffix,
                hyper=orjson.dumps(new.hyper).decode(),
                status="validating_files",
                created_by=new.created_by,
                credential_id=new.credential_id,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            _add_event(session, tenant_id, job_id, "status", "info", "Validating training file.")
            return _job(row)

    def get(self, tenant_id: str, job_id: str) -> JobInfo:
        with self.db.tenant_transaction(tenant_id) as session:
            return _job(self._row(session, tenant_id, job_id, "fine_tuning_job_id"))

    def page(
        self, tenant_id: str, *, after: str | None = None, limit: int = 20
    ) -> tuple[list[JobInfo], bool]:
        """One page of the tenant's jobs, newest first, and whether more follow."""
        with self.db.tenant_transaction(tenant_id) as session:
            query = select(FineTuningJobRow).where(FineTuningJobRow.tenant_id == tenant_id)
            if after is not None:
                cursor = self._row(session, tenant_id, after, "after")
                key = tuple_(FineTuningJobRow.created_at, FineTuningJobRow.id)
                mark = tuple_(literal(cursor.created_at, UTCDateTime()), literal(cursor.id))
                query = query.where(key < mark)
            query = query.order_by(FineTuningJobRow.created_at.desc(), FineTuningJobRow.id.desc())
            rows = list(session.execute(query.limit(limit + 1)).scalars())
            return [_job(r) for r in rows[:limit]], len(rows) > limit

    def move(
        self,
        tenant_id: str,
        job_id: str,
        status: str,
        message: str,
        *,
        level: str = "info",
        **fields: Any,
    ) -> JobInfo | None:
        """Move the job to `status` if `TRANSITIONS` allows it from where it is, with an event;
        None (and nothing written) when it is elsewhere."""
        values: dict[str, Any] = {"status": status, **fields}
        if status in FINAL:
            values["finished_at"] = utcnow()
        with self.db.tenant_transaction(tenant_id) as session:
            moved = session.execute(
                update(FineTuningJobRow)
                .where(
                    FineTuningJobRow.id == job_id,
                    FineTuningJobRow.tenant_id == tenant_id,
                    FineTuningJobRow.status.in_(TRANSITIONS[status]),
                )
                .values(**values)
            )
            if getattr(moved, "rowcount", 0) != 1:
                return None
            _add_event(session, tenant_id, job_id, "status", level, message)
            return _job(self._row(session, tenant_id, job_id, "fine_tuning_job_id"))

    def add_event(
        self,
        tenant_id: str,
        job_id: str,
        kind: str,
        message: str,
        *,
        step: int = 0,
        train_loss: float | None = None,
        valid_loss: float | None = None,
    ) -> None:
        with self.db.tenant_transaction(tenant_id) as session:
            self._row(session, tenant_id, job_id, "fine_tuning_job_id")
            _add_event(
                session, tenant_id, job_id, kind, "info", message, step, train_loss, valid_loss
            )

    def events(
        self,
        tenant_id: str,
        job_id: str,
        *,
        after: str | None = None,
        limit: int = 20,
        kind: str | None = None,
    ) -> tuple[list[JobEvent], bool]:
        """One page of the job's events, newest first (OpenAI's order)."""
        with self.db.tenant_transaction(tenant_id) as session:
            self._row(session, tenant_id, job_id, "fine_tuning_job_id")
            query = select(FineTuningEventRow).where(
                FineTuningEventRow.tenant_id == tenant_id, FineTuningEventRow.job_id == job_id
            )
            if kind is not None:
                query = query.where(FineTuningEventRow.kind == kind)
            if after is not None:
                cursor = session.get(FineTuningEventRow, after)
                if cursor is None or cursor.tenant_id != tenant_id or cursor.job_id != job_id:
                    raise NotFound(f"No such event: {after}", param="after")
                query = query.where(FineTuningEventRow.seq < cursor.seq)
            query = query.order_by(FineTuningEventRow.seq.desc()).limit(limit + 1)
            rows = list(session.execute(query).scalars())
            return [_event(r) for r in rows[:limit]], len(rows) > limit


def _add_event(
    session: Session,
    tenant_id: str,
    job_id: str,
    kind: str,
    level: str,
    message: str,
    step: int = 0,
    train_loss: float | None = None,
    valid_loss: float | None = None,
) -> None:
    last = session.execute(
        select(func.max(FineTuningEventRow.seq)).where(
            FineTuningEventRow.tenant_id == tenant_id, FineTuningEventRow.job_id == job_id
        )
    ).scalar()
    session.add(
        FineTuningEventRow(
            id="ftevent-" + secrets.token_hex(12),
            tenant_id=tenant_id,
            job_id=job_id,
            seq=(last or 0) + 1,
            kind=kind,
            level=level,
            message=message[:MAX_MESSAGE],
            step=max(0, min(step, 2**31 - 1)),
            train_loss=train_loss,
            valid_loss=valid_loss,
            created_at=utcnow(),
        )
    )
