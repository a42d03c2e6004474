"""The arm alone, from the twin's own MJCF fragments: forward kinematics and gravity torques.

Why a second model: the safety checks on a real arm (the workspace guard of joint-space
policies, the torque-off warning) need the arm's kinematics and masses, not a task scene
with cards, cameras and textures. Built from ``sim.arms`` like the twin, so both describe
the same links; compiled in a few milliseconds, solved on its own ``MjData``.

Gravity torques are computed without ``gravcomp``: the twin's links carry it to stand in
for the servos' holding torque, but the question here is what gravity does to an arm
whose servos are limp.
"""

from __future__ import annotations

import mujoco
import numpy as np

from sim.arms import ARM_DEFAULTS_XML, arm_model


class ArmKinematics:
    def __init__(self, robot: str) -> None:
        arm = arm_model(robot)
        self.spec = arm.spec
        xml = f"""
<mujoco model="{robot}_kinematics">
  <compiler angle="radian" autolimits="true"/>
  <default>
    {ARM_DEFAULTS_XML}
  </default>
  <worldbody>{arm.body_xml.replace(' gravcomp="1"', '')}
  </worldbody>
  <equality>{arm.equality_xml}</equality>
</mujoco>"""
        self.model = mujoco.MjModel.from_xml_string(xml)
        self.data = mujoco.MjData(self.model)
        joints = [self.model.joint(name).id for name in self.spec.joint_names[:-1]]
        self._qpos = np.array([self.model.jnt_qposadr[j] for j in joints])
        self._dof = np.array([self.model.jnt_dofadr[j] for j in joints])
        self._tcp = self.model.site("tcp").id

    def _pose(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=np.float64)
        self.data.qpos[:] = 0
        self.data.qvel[:] = 0
        self.data.qpos[self._qpos] = q[: len(self._qpos)]

    def tcp(self, q: np.ndarray) -> np.ndarray:
        """TCP position (m, arm base frame: z up, the table top at z = 0) for joint positions ``q``."""
        self._pose(q)
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._tcp].copy()

    def gravity_torques(self, q: np.ndarray) -> np.ndarray:
        """Torque (N·m) gravity puts on each arm joint at ``q`` when nothing holds it."""
        self._pose(q)
        mujoco.mj_forward(self.model, self.data)
        return self.data.qfrc_bias[self._dof].copy()
