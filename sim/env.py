"""``GrinningFaceEnv``: the twin as a Gymnasium environment (any twin task, either arm).

Observation: ``{"images": {camera: uint8 HxWx3}, "joint_positions": (dof,), "ee_pose": (7,)}``
with the end-effector pose as position (m) and quaternion (w, x, y, z) in the arm base frame.
The instruction is in ``info["instruction"]`` (and ``env.instruction``) at reset and every step.

Action modes:
- ``"joint"``: absolute joint targets in ``spec.joint_names`` order, gripper last (native unit).
- ``"ee_delta"``: Bridge-style ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``: a translation
  (m) and a rotation (rad, world-frame roll/pitch/yaw) applied to the commanded TCP pose,
  and a gripper opening in [0, 1] (1 = open, as in Bridge-v2), mapped through IK.

Either way, targets pass through ``JointLimitClamp``: NaN raises, out-of-range is clipped and
counted in ``info["clamps"]``.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sim.config import TwinConfig
from sim.ik import DampedLeastSquaresIK
from sim.robot import TwinRobot
from sim.twin import Twin

ACTION_MODES = ("joint", "ee_delta")
EE_DELTA_LIMITS = np.array([0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0])


class GrinningFaceEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: TwinConfig | None = None, action_mode: str = "joint", render_mode: str | None = "rgb_array"):
        if action_mode not in ACTION_MODES:
            raise ValueError(f"action_mode={action_mode!r} is unknown; choose one of {ACTION_MODES}")
        self.config = config or TwinConfig()
        self.action_mode = action_mode
        self.render_mode = render_mode
        self.twin = Twin(self.config)
        self.robot = TwinRobot(self.twin)
        self.robot.connect()
        self.robot_spec = self.twin.spec  # gym.Env.spec is the registry EnvSpec
        self.metadata = {**self.metadata, "render_fps": self.config.control_rate_hz}
        self._ik = DampedLeastSquaresIK(self.twin.model, "tcp", self.robot_spec.joint_names[:-1])
        images = {}
        for cam in self.twin.camera_names:
            w, h = self.config.size_of(cam)
            images[cam] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = spaces.Dict({
            "images": spaces.Dict(images),
            # measured positions may overshoot a limit slightly (soft joint limits), hence the margin
            "joint_positions": spaces.Box(self.robot_spec.lower_array - 0.1, self.robot_spec.upper_array + 0.1, dtype=np.float64),
            "ee_pose": spaces.Box(np.array([-2.0] * 3 + [-1.0] * 4), np.array([2.0] * 3 + [1.0] * 4), dtype=np.float64),
        })
        if action_mode == "joint":
            self.action_space = spaces.Box(self.robot_spec.lower_array, self.robot_spec.upper_array, dtype=np.float64)
        else:
            low = -EE_DELTA_LIMITS.copy()
            low[-1] = 0.0
            self.action_space = spaces.Box(low, EE_DELTA_LIMITS, dtype=np.float64)
        self._target_pos = np.zeros(3)
        self._target_quat = np.array([1.0, 0, 0, 0])

    @property
    def instruction(self) -> str:
        return self.twin.episode.instruction

    def _obs(self) -> dict:
        pos, quat = self.twin.ee_pose()
        return {
            "images": {cam: self.twin.render(cam) for cam in self.twin.camera_names},
            "joint_positions": self.twin.joint_positions(),
            "ee_pose": np.concatenate([pos, quat]),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        info = self.twin.reset(seed)
        self.robot.connect()
        self._target_pos, self._target_quat = self.twin.ee_pose()
        return self._obs(), {**info, "clamps": self.robot.clamp_count}

    def _ee_delta_to_joints(self, action: np.ndarray) -> np.ndarray:
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (7,):
            raise ValueError(f"ee_delta action must have 7 entries [dx, dy, dz, droll, dpitch, dyaw, gripper], got shape {action.shape}")
        if not np.all(np.isfinite(action)):
            from vla_robot.robots.limits import NonFiniteCommandError

            raise NonFiniteCommandError(f"non-finite ee_delta action {action.tolist()}; command refused")
        clipped = np.clip(action, self.action_space.low, self.action_space.high)
        if not np.array_equal(clipped, action):
            self.robot.clamp.position_clamps += 1
        self._target_pos = self._target_pos + clipped[:3]
        delta = np.zeros(4)
        angle = np.linalg.norm(clipped[3:6])
        if angle > 0:
            mujoco.mju_axisAngle2Quat(delta, clipped[3:6] / angle, angle)
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, delta, self._target_quat)
            self._target_quat = out / np.linalg.norm(out)
        q_arm, _ = self._ik.solve(self._target_pos, self._target_quat, self.robot.last_targets[:-1])
        grip = self.robot_spec.gripper_closed + clipped[6] * (self.robot_spec.gripper_open - self.robot_spec.gripper_closed)
        return np.append(q_arm, grip)

    def step(self, action):
        targets = self._ee_delta_to_joints(action) if self.action_mode == "ee_delta" else np.asarray(action, dtype=np.float64)
        self.robot.send_joint_targets(targets)
        metrics = self.twin.evaluate()
        terminated = bool(metrics["success"])
        truncated = self.twin.steps >= self.config.max_steps
        info = {"instruction": self.instruction, "metrics": metrics, "clamps": self.robot.clamp_count, "sim_time": self.twin.sim_time}
        return self._obs(), float(metrics["success"]), terminated, truncated, info

    def render(self):
        return self.twin.render(self.twin.camera_names[0])

    def close(self):
        self.twin.close()


ENV_ID = "vla_robot/GrinningFace-v0"
if ENV_ID not in gym.registry:
    gym.register(id=ENV_ID, entry_point="sim.env:GrinningFaceEnv", max_episode_steps=None)
