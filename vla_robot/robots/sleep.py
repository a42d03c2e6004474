"""Torque off, the explicit way: go to the sleep pose first, then switch off, and say what falls.

Neither arm has brakes. Torque off anywhere but a supported pose drops the arm, so the arm
node's ``~/torque false`` moves the arm to ``spec.sleep`` at a gentle speed (a quarter of
the velocity limits) and only then switches torque off. Where the arm would still fall
(a joint that carries gravity torque at that pose), it says which joints and how much,
from the arm model's masses (``sim.kinematics``): on the real WidowX the sleep pose rests
on its cradle, which the model does not have, so the operator reads what to support.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

import numpy as np

from vla_robot.robots.specs import RobotSpec

FALL_TORQUE_NM = 0.05  # gravity torque above which an unheld joint moves (servo friction holds less)


class SleepMove:
    """Steps a command from ``start`` to the sleep pose; ``done`` once the arm is there."""

    def __init__(self, spec: RobotSpec, start: np.ndarray, speed_scale: float = 0.25, tolerance: float = 0.05,
                 timeout_s: float = 20.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not spec.sleep:
            raise ValueError(f"{spec.name} has no sleep pose in its spec")
        self.spec = spec
        self.goal = np.asarray(spec.sleep, dtype=np.float64)
        self.command = np.array(start, dtype=np.float64)
        self.speed = spec.max_velocity_array * speed_scale
        self.tolerance = tolerance
        self.clock = clock
        self._last = clock()
        self.deadline = self._last + timeout_s

    def step(self, measured: np.ndarray) -> np.ndarray:
        """The next command toward the sleep pose (rate-limited on the wall clock)."""
        now = self.clock()
        dt, self._last = min(now - self._last, 0.1), now
        self.command = self.command + np.clip(self.goal - self.command, -self.speed * dt, self.speed * dt)
        return self.command.copy()

    def arrived(self, measured: np.ndarray) -> bool:
        measured = np.asarray(measured, dtype=np.float64)
        return bool(np.allclose(self.command, self.goal) and np.all(np.abs(measured[:-1] - self.goal[:-1]) <= self.tolerance))

    @property
    def timed_out(self) -> bool:
        return self.clock() > self.deadline


@functools.lru_cache(maxsize=None)
def _kinematics(robot: str):
    from sim.kinematics import ArmKinematics

    return ArmKinematics(robot)


def falling_joints(spec: RobotSpec, q: np.ndarray) -> dict[str, float]:
    """Arm joint -> gravity torque (N·m) at ``q`` for every joint that would fall with torque off."""
    torques = _kinematics(spec.name).gravity_torques(q)
    return {name: float(t) for name, t in zip(spec.joint_names[:-1], torques) if abs(t) > FALL_TORQUE_NM}


def fall_warning(spec: RobotSpec, q: np.ndarray) -> str:
    joints = falling_joints(spec, q)
    if not joints:
        return ""
    text = ", ".join(f"{name} {abs(t):.2f} N·m" for name, t in joints.items())
    return f"with torque off, gravity pulls on {text}: these joints fall unless the arm rests on a support"
