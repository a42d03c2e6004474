"""Damped-least-squares inverse kinematics on MuJoCo Jacobians.

Solved on a scratch ``MjData`` so the live simulation is never touched. Orientation error
uses the quaternion difference, so the 5-DOF SO-100 gets the least-squares best pose
when a full pose is out of reach (a top-down grasp with any yaw is reachable on both arms).
"""

from __future__ import annotations

import mujoco
import numpy as np


def top_down_quat(yaw: float) -> np.ndarray:
    """Gripper pointing straight down, fingers closing along (cos yaw, sin yaw, 0)."""
    x_axis = np.array([0.0, 0.0, -1.0])
    y_axis = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    z_axis = np.cross(x_axis, y_axis)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, np.column_stack([x_axis, y_axis, z_axis]).ravel())
    return quat


class DampedLeastSquaresIK:
    def __init__(self, model: mujoco.MjModel, site: str, joints: tuple[str, ...], damping: float = 0.03,
                 rot_weight: float = 0.25, max_iters: int = 60, tol: float = 2e-4):
        self.model = model
        self.data = mujoco.MjData(model)
        self.site = model.site(site).id
        ids = [model.joint(j).id for j in joints]
        self.qpos_adr = np.array([model.jnt_qposadr[j] for j in ids])
        self.dof_adr = np.array([model.jnt_dofadr[j] for j in ids])
        self.lower = np.array([model.jnt_range[j][0] for j in ids])
        self.upper = np.array([model.jnt_range[j][1] for j in ids])
        self.damping = damping
        self.rot_weight = rot_weight
        self.max_iters = max_iters
        self.tol = tol
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = self.data
        d.qpos[self.qpos_adr] = q
        mujoco.mj_kinematics(self.model, d)
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, d.site_xmat[self.site])
        return d.site_xpos[self.site].copy(), quat

    def solve(self, pos: np.ndarray, quat: np.ndarray | None, q_init: np.ndarray) -> tuple[np.ndarray, float]:
        """Joint positions that put the site at ``pos`` (and ``quat``); returns (q, position error)."""
        q = np.clip(np.asarray(q_init, float).copy(), self.lower, self.upper)
        d, m = self.data, self.model
        err_pos = np.inf
        for _ in range(self.max_iters):
            cur_pos, cur_quat = self.forward(q)
            e_pos = pos - cur_pos
            err_pos = float(np.linalg.norm(e_pos))
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, self._jacp, self._jacr, self.site)
            jac = self._jacp[:, self.dof_adr]
            err = e_pos
            if quat is not None:
                dq_local = np.zeros(3)
                mujoco.mju_subQuat(dq_local, quat, cur_quat)
                e_rot = d.site_xmat[self.site].reshape(3, 3) @ dq_local
                jac = np.vstack([jac, self.rot_weight * self._jacr[:, self.dof_adr]])
                err = np.concatenate([e_pos, self.rot_weight * e_rot])
                if err_pos < self.tol and np.linalg.norm(e_rot) < 5 * self.tol * 10:
                    break
            elif err_pos < self.tol:
                break
            lam = self.damping ** 2
            step = jac.T @ np.linalg.solve(jac @ jac.T + lam * np.eye(jac.shape[0]), err)
            q = np.clip(q + step, self.lower, self.upper)
        return q, err_pos
