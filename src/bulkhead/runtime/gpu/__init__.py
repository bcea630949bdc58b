"""GPUs: NVML discovery, the MIG profile catalog and planner, mig-parted configs, device pinning.

Bulkhead plans and reports; it never changes MIG mode or instances itself.
"""

from bulkhead.runtime.gpu._assign import (
    GPU_SELECTION_ENV,
    MEMORY_FRACTION_ENV,
    NO_GPU_ENV,
    AssignmentKind,
    CudaMemory,
    Device,
    DeviceAssignment,
    DeviceNotAllowed,
    apply_memory_cap,
    assign,
    check_exclusive,
    devices,
    memory_fraction_from_env,
    worker_env,
)
from bulkhead.runtime.gpu._migparted import DEFAULT_CONFIG_NAME, mig_parted_config
from bulkhead.runtime.gpu._nvml import (
    ComputeInstance,
    Gpu,
    GpuInstance,
    GpuInventory,
    Nvml,
    discover,
    load_nvml,
    system_inventory,
)
from bulkhead.runtime.gpu._place import SHARED_POOL, Want, place
from bulkhead.runtime.gpu._planner import (
    MAX_GPUS,
    GpuLayout,
    MigPlan,
    NoMigLayout,
    PlacedInstance,
    parse_profiles,
    plan,
)
from bulkhead.runtime.gpu._profiles import (
    GPU_MODELS,
    GpuModel,
    MigProfile,
    gpu_model,
    model_key_for,
)

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "GPU_MODELS",
    "GPU_SELECTION_ENV",
    "MAX_GPUS",
    "MEMORY_FRACTION_ENV",
    "NO_GPU_ENV",
    "SHARED_POOL",
    "AssignmentKind",
    "ComputeInstance",
    "CudaMemory",
    "Device",
    "DeviceAssignment",
    "DeviceNotAllowed",
    "Gpu",
    "GpuInstance",
    "GpuInventory",
    "GpuLayout",
    "GpuModel",
    "MigPlan",
    "MigProfile",
    "NoMigLayout",
    "Nvml",
    "PlacedInstance",
    "Want",
    "apply_memory_cap",
    "assign",
    "check_exclusive",
    "devices",
    "discover",
    "gpu_model",
    "load_nvml",
    "memory_fraction_from_env",
    "mig_parted_config",
    "model_key_for",
    "parse_profiles",
    "place",
    "plan",
    "system_inventory",
    "worker_env",
]
