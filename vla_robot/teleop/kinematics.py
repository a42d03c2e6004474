"""FK/IK on the arm's MuJoCo model (the twin's MJCF), so EE teleop uses the same kinematics as the twin."""

from __future__ import annotations

import numpy as np


class ArmKinematics:
    def __init__(self, robot: str = "widowx250"):
        from sim.config import TwinConfig
        from sim.ik import DampedLeastSquaresIK
        from sim.scene import build_scene, compile_scene

        scene = build_scene(TwinConfig(robot=robot, cameras=("third_person",), image_size=(64, 64)))
        self.spec = scene.arm.spec
        self.ik = DampedLeastSquaresIK(compile_scene(scene), "tcp", self.spec.joint_names[:-1])

    def forward(self, q_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and quaternion (w, x, y, z) in the base frame."""
        return self.ik.forward(np.asarray(q_arm, float))

    def inverse(self, pos: np.ndarray, quat: np.ndarray | None, q_init: np.ndarray) -> tuple[np.ndarray, float]:
        return self.ik.solve(np.asarray(pos, float), quat, np.asarray(q_init, float))
