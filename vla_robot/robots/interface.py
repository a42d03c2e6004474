"""The robot interface every arm implements: the twin, the WidowX 250 and the SO-100.

It is deliberately small (connect / read_state / send_joint_targets / close) so that a
new arm is a short file, and so that everything above it (recorder, policy runtime,
safety layer, evaluation) never learns which arm it drives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from vla_robot.robots.specs import RobotSpec


@dataclass(frozen=True)
class RobotState:
    """One reading of the arm.

    ``positions`` and ``velocities`` follow ``spec.joint_names`` order, the gripper last.
    The gripper entry is in the arm's native gripper unit (metres of finger travel for
    the WidowX, jaw radians for the SO-100). ``stamp`` is the source clock in seconds
    (hardware or simulation time), not the time the reading was received.
    """

    positions: np.ndarray
    velocities: np.ndarray
    stamp: float

    @property
    def gripper(self) -> float:
        return float(self.positions[-1])


@runtime_checkable
class Robot(Protocol):
    """An arm that takes joint-position targets.

    Implementations clamp every target to ``spec`` limits before it reaches the
    actuators (see ``JointLimitClamp``); callers may still clamp earlier.
    """

    spec: RobotSpec

    def connect(self) -> None: ...

    def read_state(self) -> RobotState: ...

    def send_joint_targets(self, targets: np.ndarray) -> None: ...

    def close(self) -> None: ...
