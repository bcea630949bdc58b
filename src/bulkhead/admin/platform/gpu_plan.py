"""The MIG planner behind the API (`POST /admin/v1/gpus/plan`): `bulkhead gpu plan` for the console.

Read-only, like Bulkhead's whole relation to MIG: it plans, and the operator
applies.  A plan is pure computation, a search bounded by the planner's
`MAX_SEARCH_STEPS`: it reads no device and changes nothing, so every gateway
serves it, with or without a GPU inventory.  The body's sizes are bounded
before the search starts, and it runs in a thread, off the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from pydantic import BaseModel, Field, StringConstraints

from bulkhead.admin.router import Call, Route
from bulkhead.admin.schemas import Strict
from bulkhead.runtime.gpu import MAX_GPUS, gpu_model, plan

# The most instances a plan may ask for: 7 per GPU on the most GPUs a plan spans.
MAX_PROFILES = 7 * MAX_GPUS
ProfileName = Annotated[
    str, StringConstraints(min_length=1, max_length=24, pattern=r"^[0-9]+g\.[0-9]+gb(\+me)?$")
]


class PlanRequest(Strict):
    gpu: str = Field(
        min_length=1,
        max_length=32,
        description="GPU model, e.g. h100-80gb (`bulkhead gpu profiles`).",
    )
    profiles: list[ProfileName] = Field(
        min_length=1,
        max_length=MAX_PROFILES,
        description="MIG profile names, one per instance wanted (repeat a name for more).",
    )
    gpus: int = Field(default=1, ge=1, le=MAX_GPUS, description="How many GPUs to spread over.")


class PlacedOut(BaseModel):
    profile: str
    start: int
    size: int
    compute_slices: int


class GpuLayoutOut(BaseModel):
    gpu: int
    memory_slices_used: int
    compute_slices_used: int
    instances: list[PlacedOut]


class MigPlanOut(BaseModel):
    """A valid layout: the instances on each GPU, by memory slice; nothing is applied."""

    gpu: str
    gpus: list[GpuLayoutOut]


async def plan_layout(call: Call) -> MigPlanOut:
    body: PlanRequest = call.body
    model = gpu_model(body.gpu)
    found = await asyncio.to_thread(plan, model, body.profiles, gpus=body.gpus)
    return MigPlanOut.model_validate(found.to_json())


ROUTES = (
    Route.post(
        "/admin/v1/gpus/plan",
        action="admin:gpus.plan",
        handler=plan_layout,
        summary="Plan a MIG layout of the profiles on GPUs of a model (read-only: nothing is "
        "applied; 400 no_mig_layout says why none exists)",
        body=PlanRequest,
        response=MigPlanOut,
    ),
)
