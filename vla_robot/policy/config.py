"""Typed runtime configuration, validated when built, with errors that name the allowed values."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from vla_robot.config_utils import unknown_fields

MERGE_MODES = ("latest", "weighted", "ensemble")
DTYPES = ("float32", "bfloat16", "float16")
GRAPH_MODES = ("auto", "on", "off")
COMPILE_MODES = ("off", "default", "reduce-overhead")


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")


def _check_range(name: str, value: float, lo: float, hi: float, lo_open: bool = False) -> None:
    ok = (value > lo if lo_open else value >= lo) and value <= hi
    if not ok or not math.isfinite(value):
        bracket = "(" if lo_open else "["
        raise ValueError(f"{name}={value!r} is out of range; allowed {bracket}{lo}, {hi}]")


@dataclass
class ChunkConfig:
    """How overlapping action chunks become one action per control step.

    ``merge``: ``latest`` (newest chunk wins), ``weighted`` (average, newer chunks weigh
    more by ``exp(-decay * newer_count)``) or ``ensemble`` (ACT temporal ensembling: the
    oldest prediction weighs most, ``w_i = exp(-decay * i)``, i = 0 oldest).
    ``request_threshold``: ask for a new chunk once the actions left in the queue fall
    below this fraction of the chunk size (0 means only when empty; 1 means every step).
    ``execute_steps``: optional cap on how many steps of each chunk are used.
    """

    merge: str = "latest"
    decay: float = 0.1
    request_threshold: float = 0.5
    execute_steps: int | None = None

    def __post_init__(self) -> None:
        _check_choice("chunk.merge", self.merge, MERGE_MODES)
        _check_range("chunk.decay", self.decay, 0.0, 100.0)
        _check_range("chunk.request_threshold", self.request_threshold, 0.0, 1.0)
        if self.execute_steps is not None and self.execute_steps < 1:
            raise ValueError(f"chunk.execute_steps={self.execute_steps} must be >= 1 or None")


@dataclass
class SafetyConfig:
    """Always-on limits between the policy and the arm (see ``vla_robot.policy.safety``).

    ``workspace_low/high``: end-effector box in metres (robot base frame) for EE actions.
    ``max_obs_age_s``: hold when the newest observation is older than this.
    ``max_inference_stall_s``: hold when no action has been available for this long.
    ``velocity_scale``: fraction of the spec's joint velocity limits allowed (<= 1).
    ``joint_workspace``: also keep joint-space targets' TCP in the box and ``table_clearance``
    metres above the table plane ``table_z`` (forward kinematics of the arm model).
    """

    workspace_low: tuple[float, float, float] = (-0.6, -0.6, -0.02)
    workspace_high: tuple[float, float, float] = (0.6, 0.6, 0.7)
    max_obs_age_s: float = 0.5
    max_inference_stall_s: float = 1.0
    velocity_scale: float = 1.0
    joint_workspace: bool = True
    table_z: float = 0.0
    table_clearance: float = 0.005

    def __post_init__(self) -> None:
        self.workspace_low = tuple(float(v) for v in self.workspace_low)  # type: ignore[assignment]
        self.workspace_high = tuple(float(v) for v in self.workspace_high)  # type: ignore[assignment]
        if len(self.workspace_low) != 3 or len(self.workspace_high) != 3:
            raise ValueError("safety.workspace_low/high must have 3 values (x, y, z in metres)")
        if any(lo >= hi for lo, hi in zip(self.workspace_low, self.workspace_high)):
            raise ValueError(f"safety.workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}")
        _check_range("safety.max_obs_age_s", self.max_obs_age_s, 0.0, 60.0, lo_open=True)
        _check_range("safety.max_inference_stall_s", self.max_inference_stall_s, 0.0, 60.0, lo_open=True)
        _check_range("safety.velocity_scale", self.velocity_scale, 0.0, 1.0, lo_open=True)
        _check_range("safety.table_clearance", self.table_clearance, 0.0, 0.5)
        _check_range("safety.table_z", self.table_z, -2.0, 2.0)


@dataclass
class RuntimeConfig:
    """Where and how the model runs, and how the control loop uses its chunks.

    ``cuda_graph``: ``auto`` captures the action head on CUDA and runs eager on CPU;
    ``on`` requires CUDA; ``off`` always runs eager.
    ``asynchronous``: compute the next chunk while the current one executes.
    ``vlm_compile``: ``torch.compile`` the VLM forward (``reduce-overhead`` adds CUDA graphs);
    ``prompt_bucket``: left-pad prompts to a multiple of this many tokens so every
    instruction of a bucket reuses one compiled graph (0 = no padding). Both are opt-in:
    padding moves token positions, so outputs match the unpadded training forward only
    to bf16 tolerance, not bit for bit.
    """

    device: str = "cpu"
    dtype: str = "float32"
    cuda_graph: str = "auto"
    control_hz: float = 10.0
    asynchronous: bool = True
    vlm_compile: str = "off"
    prompt_bucket: int = 0
    chunk: ChunkConfig = field(default_factory=ChunkConfig)
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if isinstance(self.chunk, dict):
            self.chunk = from_dict(ChunkConfig, self.chunk, "chunk")
        if isinstance(self.safety, dict):
            self.safety = from_dict(SafetyConfig, self.safety, "safety")
        _check_choice("dtype", self.dtype, DTYPES)
        _check_choice("cuda_graph", self.cuda_graph, GRAPH_MODES)
        _check_choice("vlm_compile", self.vlm_compile, COMPILE_MODES)
        if not 0 <= self.prompt_bucket <= 4096:
            raise ValueError(f"prompt_bucket={self.prompt_bucket} must be in [0, 4096] tokens (0 = no padding)")
        _check_range("control_hz", self.control_hz, 0.0, 1000.0, lo_open=True)
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device={self.device!r} is not allowed; use 'cpu', 'cuda' or 'cuda:N'")

    @property
    def period_s(self) -> float:
        return 1.0 / self.control_hz

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_dict(cls, data: dict[str, Any], where: str = ""):
    """Build a config dataclass, rejecting unknown keys by name."""
    unknown, allowed = unknown_fields(cls, data)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ValueError(f"unknown key(s) {[prefix + k for k in unknown]}; allowed: {allowed}")
    return cls(**data)
