"""What flows through the runtime: observations in, action chunks out.

``ChunkPolicy`` is the one interface the control loop, the ROS node and evaluation use;
a trained VLA bundle (``VLAPolicy``) and the expert-replay plumbing policy both
implement it, so anything proven with one holds for the other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

ACTION_SPACES = ("joint", "ee_delta")


@dataclass
class Observation:
    """One observation as the policy sees it.

    ``images``: camera name -> uint8 HxWx3 RGB. ``state``: joint positions (spec order,
    gripper last). ``stamp``: source clock of the images (sim or device time).
    ``receive_time``: host ``time.time()`` when the newest part arrived (end-to-end latency
    starts here). ``step``: the control step the observation belongs to.
    """

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str
    stamp: float = 0.0
    receive_time: float = 0.0
    step: int = 0
    extra: dict = field(default_factory=dict)


@runtime_checkable
class ChunkPolicy(Protocol):
    """Observation -> action chunk (H, D) plus per-stage timings in seconds.

    ``action_space`` is ``joint`` (absolute joint targets, spec order) or ``ee_delta``
    (dx, dy, dz, droll, dpitch, dyaw, gripper). ``reset`` starts an episode; ``episode``
    carries optional evaluation context (the twin's episode info), which a learned policy
    ignores.
    """

    chunk_size: int
    action_dim: int
    action_space: str
    camera_names: tuple[str, ...]
    robot: str

    def reset(self, instruction: str, episode: dict | None = None) -> None: ...

    def infer(self, obs: Observation) -> tuple[np.ndarray, dict[str, float]]: ...

    def describe(self) -> dict: ...
