"""What the supervisor wants run (`WorkerSpec`) and what it knows of each worker.

`WorkerSupervisor` (`runtime.workers`) keeps one `WorkerState` per local
deployment, across the worker's restarts; its `status` is what
`GET /admin/v1/workers` shows.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from bulkhead.domain import Tier
from bulkhead.errors import ConfigError
from bulkhead.runtime.sandbox import Confinement

WeightsLoader = Callable[[], Sequence[tuple[str, bytes | bytearray]]]
# What a GPU assignment may set in a worker's environment; nothing else gets through.
DEVICE_ENV_PREFIXES = ("CUDA_", "BULKHEAD_GPU_", "PYTORCH_CUDA_ALLOC_CONF")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    key: str  # the deployment id
    kind: str
    model_name: str
    timeout_s: float = 120.0
    # What to load (e.g. the artifact id): a changed source restarts the worker.
    source: str = ""
    # Decrypts and verifies the model files in memory (kinds in WEIGHTS_ON_STDIN).
    load_weights: WeightsLoader | None = field(default=None, compare=False, repr=False)
    # The owner tenant, named in the worker's SPIFFE ID; None for a shared model.
    tenant: str | None = None
    # The owner's isolation tier: it picks the sandbox's limits.
    tier: Tier = Tier.SHARED
    # From the GPU assignment (e.g. CUDA_VISIBLE_DEVICES=<uuid>); empty runs on the CPU.
    device_env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [k for k in self.device_env if not k.startswith(DEVICE_ENV_PREFIXES)]
        if bad:
            raise ConfigError(f"a worker's device environment may not set {', '.join(bad)}")


@dataclass(slots=True)
class WorkerState:
    """What the supervisor knows of one worker, across its restarts."""

    spec: WorkerSpec
    socket: str
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    process: asyncio.subprocess.Process | None = None
    ready: bool = False
    restarts: int = 0
    task: asyncio.Task[None] | None = None
    started_at: float = 0.0
    spiffe_id: str | None = None  # set when the channel is mutual TLS
    rotations: int = 0
    confinement: Confinement | None = None
    sandbox: tuple[str, ...] = ()  # the features in force, as the worker reported them
    last_exit: str | None = None
    oom_kills: int = 0
    failed_starts: int = 0  # in a row, each ending before the worker was ready
    given_up: bool = False
    record: str = field(default_factory=lambda: secrets.token_hex(8))  # its ledger key

    @property
    def state(self) -> str:
        if self.ready:
            return "ready"
        if self.given_up:
            return "failed"
        return "restarting" if self.restarts else "starting"

    def missing(self) -> list[str]:
        """Sandbox features this worker goes without, each with the reason."""
        if self.confinement is None:
            return []
        missing = [f"{f}: {why}" for f, why in self.confinement.missing.items()]
        if self.sandbox:
            lost = sorted(self.confinement.plan.features - set(self.sandbox))
            missing += [f"{f}: failed to apply (see the worker's log)" for f in lost]
        return missing

    def status(self) -> dict[str, object]:
        return {
            "deployment": self.spec.key,
            "kind": self.spec.kind,
            "model": self.spec.model_name,
            "tenant": self.spec.tenant,
            "tier": str(self.spec.tier),
            "device": self.spec.device_env.get("CUDA_VISIBLE_DEVICES"),
            "state": self.state,
            "ready": self.ready,
            "pid": self.process.pid if self.process else None,
            "restarts": self.restarts,
            "last_exit": self.last_exit,
            "sandbox": list(self.sandbox),
            "sandbox_missing": self.missing(),
            "uid": self.confinement.uid if self.confinement else None,
            "spiffe_id": self.spiffe_id,
            "rotations": self.rotations,
        }
