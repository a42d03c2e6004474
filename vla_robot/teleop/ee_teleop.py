"""End-effector velocity teleop: a twist (from a spacemouse, gamepad or keyboard) moves a
target pose; IK turns it into joint targets.

Why integrate a target pose instead of the measured one: integrating the measured pose
makes the arm sag under gravity and creep when the operator lets go; a held target stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from vla_robot.teleop.kinematics import ArmKinematics


@dataclass(frozen=True)
class EETeleopConfig:
    max_linear_m_s: float = 0.15
    max_angular_rad_s: float = 1.0
    gripper_speed: float = 1.0  # fraction of the full gripper range per second
    workspace_min: tuple[float, float, float] = (0.10, -0.40, 0.02)
    workspace_max: tuple[float, float, float] = (0.55, 0.40, 0.45)
    max_ik_error_m: float = 0.01  # a target the arm cannot reach is not followed

    def __post_init__(self) -> None:
        if self.max_linear_m_s <= 0 or self.max_angular_rad_s <= 0:
            raise ValueError("ee teleop: max_linear_m_s and max_angular_rad_s must be > 0")


class EETeleop:
    def __init__(self, kinematics: ArmKinematics, config: EETeleopConfig | None = None):
        self.kin = kinematics
        self.spec = kinematics.spec
        self.config = config or EETeleopConfig()
        self.q: np.ndarray | None = None
        self.gripper = self.spec.gripper_open
        self.pos: np.ndarray | None = None
        self.quat: np.ndarray | None = None
        self.unreachable = 0

    def sync(self, joint_positions: np.ndarray) -> None:
        """Take the arm's measured pose as the target (on start, or after the operator lets go)."""
        q = np.asarray(joint_positions, float)
        self.q, self.gripper = q[:-1].copy(), float(q[-1])
        self.pos, self.quat = self.kin.forward(self.q)

    def step(self, linear: np.ndarray, angular: np.ndarray, gripper_rate: float, dt: float) -> np.ndarray:
        """Advance the target by a twist (each axis in [-1, 1], scaled by the config) for ``dt`` seconds."""
        if self.q is None:
            raise RuntimeError("ee teleop: call sync() with the arm's joint positions first")
        c = self.config
        lin = np.clip(np.asarray(linear, float), -1, 1) * c.max_linear_m_s * dt
        ang = np.clip(np.asarray(angular, float), -1, 1) * c.max_angular_rad_s * dt
        pos = np.clip(self.pos + lin, c.workspace_min, c.workspace_max)
        quat = self.quat.copy()
        if np.linalg.norm(ang) > 0:
            dq = np.zeros(4)
            mujoco.mju_axisAngle2Quat(dq, ang / np.linalg.norm(ang), float(np.linalg.norm(ang)))
            mujoco.mju_mulQuat(quat, dq, self.quat)
        q, err = self.kin.inverse(pos, quat, self.q)
        if err <= c.max_ik_error_m:
            self.q, self.pos, self.quat = q, pos, quat
        else:
            self.unreachable += 1
        span = self.spec.gripper_open - self.spec.gripper_closed
        self.gripper = float(np.clip(self.gripper + gripper_rate * c.gripper_speed * span * dt,
                                     min(self.spec.gripper_open, self.spec.gripper_closed),
                                     max(self.spec.gripper_open, self.spec.gripper_closed)))
        return np.append(self.q, self.gripper)
