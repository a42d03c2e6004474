"""Clamp joint targets to position and velocity limits, and count every clamp.

Every path to an actuator (twin, Dynamixel bus, Feetech bus, policy safety layer) goes
through this one class, so a limit cannot be forgotten by one driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vla_robot.robots.specs import RobotSpec


# Targets past a limit by less than this are clipped but not counted as clamps. Stores keep actions
# as float32: the WidowX gripper's open/closed commands (0.037 / 0.015 m, exactly its limits) come
# back as 0.037000000477 / 0.014999999665, so every recorded gripper command, and every one a
# policy learned from them, lay "outside" the limits. The demo's eval counted a position clamp on
# about half of all steps (8,028 in 200 episodes), every one of them this rounding. 1e-6 rad (or m)
# is far above float32 resolution at these magnitudes and far below anything an actuator resolves.
LIMIT_TOLERANCE = 1e-6


class NonFiniteCommandError(ValueError):
    """A NaN or Inf reached a command path; it is never sent to an actuator."""


@dataclass
class JointLimitClamp:
    spec: RobotSpec
    position_clamps: int = 0
    velocity_clamps: int = 0
    _lower: np.ndarray = field(init=False, repr=False)
    _upper: np.ndarray = field(init=False, repr=False)
    _max_velocity: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._lower = self.spec.lower_array
        self._upper = self.spec.upper_array
        self._max_velocity = self.spec.max_velocity_array

    def __call__(self, targets: np.ndarray, current: np.ndarray | None = None, dt: float | None = None) -> np.ndarray:
        """Return safe targets. With ``current`` and ``dt`` the step is also velocity-limited."""
        targets = np.asarray(targets, dtype=np.float64)
        if targets.shape != (self.spec.dof,):
            raise ValueError(
                f"{self.spec.name}: expected {self.spec.dof} joint targets {self.spec.joint_names}, got shape {targets.shape}"
            )
        if not np.all(np.isfinite(targets)):
            bad = [self.spec.joint_names[i] for i in np.flatnonzero(~np.isfinite(targets))]
            raise NonFiniteCommandError(f"{self.spec.name}: non-finite target for joints {bad}; command refused")
        clipped = np.clip(targets, self._lower, self._upper)
        if np.any(np.abs(clipped - targets) > LIMIT_TOLERANCE):
            self.position_clamps += 1
        if current is not None and dt is not None and dt > 0:
            max_step = self._max_velocity * dt
            step = np.clip(clipped - current, -max_step, max_step)
            limited = np.asarray(current, dtype=np.float64) + step
            if not np.allclose(limited, clipped):
                self.velocity_clamps += 1
            clipped = np.clip(limited, self._lower, self._upper)
        return clipped
