"""SO-100 leader-follower: the leader arm's joint positions (torque off, moved by hand) become
the follower's targets, joint by joint, with optional per-joint sign and offset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_robot.robots.specs import RobotSpec


@dataclass(frozen=True)
class LeaderFollowerMap:
    follower: RobotSpec
    signs: tuple[float, ...] | None = None
    offsets: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        for name, v in (("signs", self.signs), ("offsets", self.offsets)):
            if v is not None and len(v) != self.follower.dof:
                raise ValueError(f"leader-follower {name}: need {self.follower.dof} values for "
                                 f"{self.follower.joint_names}, got {len(v)}")

    def targets(self, leader_positions: np.ndarray) -> np.ndarray:
        q = np.asarray(leader_positions, float)
        if q.shape != (self.follower.dof,):
            raise ValueError(f"leader has {q.shape} joints; follower {self.follower.name} needs {self.follower.dof}")
        if self.signs is not None:
            q = q * np.asarray(self.signs)
        if self.offsets is not None:
            q = q + np.asarray(self.offsets)
        return q
