"""FK/IK on the arm's MuJoCo model (the twin's MJCF), so EE teleop uses the same kinematics as the twin.

The model is the arm alone (``sim.kinematics``, the links the twin simulates), not the task
scene: the same chain and TCP, compiled without the card textures (the scene took seconds to
build under load and once kept a teleop process from starting within a launch test's wait).
"""

from __future__ import annotations

import numpy as np


class ArmKinematics:
    def __init__(self, robot: str = "widowx250"):
        from sim.ik import DampedLeastSquaresIK
        from sim.kinematics import ArmKinematics as ArmModel

        arm = ArmModel(robot)
        self.spec = arm.spec
        self.ik = DampedLeastSquaresIK(arm.model, "tcp", self.spec.joint_names[:-1])

    def forward(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and quaternion (w, x, y, z) in the base frame."""
        return self.ik.forward(np.asarray(q_arm, float))

    def inverse(self, pos: np.ndarray, quat: np.ndarray | None, q_init: np.ndarray) -> tuple[np.ndarray, float]:
        return self.ik.solve(np.asarray(pos, float), quat, np.asarray(q_init, float))
