"""``TwinRobot``: the twin seen through the same ``Robot`` interface as the real arms."""

from __future__ import annotations

import numpy as np

from vla_robot.robots.interface import RobotState
from vla_robot.robots.limits import JointLimitClamp
from vla_robot.robots.specs import RobotSpec

from sim.twin import Twin


class TwinRobot:
    """A ``vla_robot.robots.Robot`` backed by a ``Twin``.

    ``send_joint_targets`` clamps through ``JointLimitClamp`` like the servo drivers do
    (NaN/Inf raise ``NonFiniteCommandError``; out-of-range targets are clipped and counted in
    ``clamp.position_clamps``; a step from the last target faster than the spec's joint
    velocity over one control period is cut to it and counted in ``clamp.velocity_clamps``)
    and then advances physics by exactly one control period: lock-step, so a run is
    deterministic and as fast as the CPU allows.

    Why the velocity limit: the servo driver (``ServoArm``) has always applied it, and the
    recorder stores what the arm applied, so data recorded on hardware lies within it. The
    twin did not, so its recordings held the scripted expert's raw steps (the WidowX gripper
    closing 0.022 m in one 0.1 s period, 2.2x its 0.1 m/s limit), which the policy runtime's
    safety layer then cut for every policy trained on them.
    """

    def __init__(self, twin: Twin):
        self.twin = twin
        self.spec: RobotSpec = twin.spec
        self.clamp = JointLimitClamp(self.spec)
        self.connected = False
        self._last_targets = np.asarray(self.spec.home, dtype=np.float64)

    @property
    def clamp_count(self) -> int:
        return self.clamp.position_clamps

    def connect(self) -> None:
        self.connected = True
        self._last_targets = self.twin.data.ctrl.copy()

    def read_state(self) -> RobotState:
        return RobotState(positions=self.twin.joint_positions(), velocities=self.twin.joint_velocities(), stamp=self.twin.sim_time)

    def send_joint_targets(self, targets: np.ndarray) -> None:
        if not self.connected:
            raise RuntimeError(f"{self.spec.name} twin: call connect() before send_joint_targets()")
        held = self.twin.data.ctrl.copy()  # what the actuators hold now (after a reset or a teleport too)
        safe = self.clamp(np.asarray(targets, dtype=np.float64), current=held, dt=self.twin.control_period)
        self._last_targets = safe
        self.twin.step_control(safe)

    def hold(self, periods: int = 1) -> None:
        """Advance time by ``periods`` control periods keeping the last targets."""
        for _ in range(periods):
            self.twin.step_control(self._last_targets)

    step_idle = hold

    @property
    def last_targets(self) -> np.ndarray:
        return self._last_targets.copy()

    def close(self) -> None:
        self.connected = False
