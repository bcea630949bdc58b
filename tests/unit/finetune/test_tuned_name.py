"""A job whose tuned model's name could never be registered is refused at `create`."""

from __future__ import annotations

import pytest

from bulkhead.domain import Tier
from bulkhead.errors import InvalidRequest
from bulkhead.finetune.service import JOB_ID_CHARS, MAX_MODEL_NAME, check_name_fits
from bulkhead.store import Database, repo, upgrade
from bulkhead.store.finetune import JobStore, NewJob


def test_the_job_id_length_is_the_stores(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'b.db'}")
    upgrade(db)
    with db.transaction() as session:
        tenant = repo.create_tenant(session, "acme", Tier.SHARED)
    job = JobStore(db).create(
        tenant.id,
        NewJob(model="m", training_file="file-x", validation_file=None, suffix=None,
               hyper={}, created_by="p"),
    )  # fmt: skip
    assert len(job.id) == JOB_ID_CHARS


def test_a_name_over_the_limit_is_refused_naming_the_suffix() -> None:
    check_name_fits("smollm2-135m", "acme", "x" * 40)
    room = MAX_MODEL_NAME - len("ft:m:acme::") - JOB_ID_CHARS
    check_name_fits("m", "acme", "x" * room)
    with pytest.raises(InvalidRequest) as refused:
        check_name_fits("m", "acme", "x" * (room + 1))
    assert refused.value.param == "suffix"
    with pytest.raises(InvalidRequest) as refused:
        check_name_fits("m" * 100, "acme", None)
    assert refused.value.param == "model"
