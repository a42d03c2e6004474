"""``Twin``: one MuJoCo model of an arm on the GrinningFace table, stepped in lock-step.

The twin owns ``MjModel``/``MjData`` and knows the task state (cards, cube, instruction).
Control is lock-step: one call to ``step_control`` advances physics by exactly one control
period, so an episode is a pure function of its seed and its actions (CI compares bits).
Robot- and camera-shaped views of it are ``TwinRobot`` and ``TwinCamera``.
"""

from __future__ import annotations

import numpy as np
import mujoco

from vla_robot.cameras.interface import CameraIntrinsics
from vla_robot.robots.specs import RobotSpec

from sim.config import TwinConfig
from sim.layout import Layout, sample_layout
from sim.scene import REACH_COLOURS, build_scene, compile_scene
from sim.tasks import PUSH_DIRECTIONS, Episode, card_under, draw_episode

REST_SPEED = 0.05  # m/s: slower than this the cube counts as resting
ON_TABLE_TOL = 0.006  # m: cube bottom this close to the table top counts as on it


class Twin:
    def __init__(self, config: TwinConfig | None = None):
        self.config = config or TwinConfig()
        self.scene = build_scene(self.config)
        self.arm = self.scene.arm
        self.spec: RobotSpec = self.arm.spec
        self.model = compile_scene(self.scene)
        self.data = mujoco.MjData(self.model)
        m = self.model
        arm_joints = self.spec.joint_names[:-1]
        gripper_joint = "left_finger" if self.spec.name == "widowx250" else "gripper"
        self._joint_ids = [m.joint(n).id for n in (*arm_joints, gripper_joint)]
        self._qpos_adr = np.array([m.jnt_qposadr[j] for j in self._joint_ids])
        self._qvel_adr = np.array([m.jnt_dofadr[j] for j in self._joint_ids])
        self._gripper_qpos_adr = [m.jnt_qposadr[j] for j in range(m.njnt) if m.joint(j).name in ("left_finger", "right_finger", "gripper")]
        self._cube_qpos = m.jnt_qposadr[m.joint("cube").id]
        self._cube_qvel = m.jnt_dofadr[m.joint("cube").id]
        self.cube_body = m.body("cube").id
        self.cube_geom = m.geom("cube").id
        self.tcp_site = m.site("tcp").id
        self.card_geoms = [m.geom(f"card{i}").id for i in range(self.config.n_cards)]
        self._material_ids = {name: m.material(f"card_{name}").id for name in self.scene.card_materials}
        self._robot_bodies = set(range(m.body("base_link").id, self.cube_body))
        self._home_key = m.key("home").id
        self._nominal = {
            "cam_pos": m.cam_pos.copy(), "cam_quat": m.cam_quat.copy(),
            "light_dir": m.light_dir.copy(), "light_diffuse": m.light_diffuse.copy(),
            "headlight": m.vis.headlight.ambient.copy(),
        }
        self.camera_names: tuple[str, ...] = self.config.cameras
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._episode_rng = np.random.default_rng(self.config.seed)
        self.episode: Episode | None = None
        self.layout: Layout | None = None
        self.steps = 0
        self.reset(self.config.seed)

    # ----------------------------------------------------------------- episode
    def reset(self, seed: int | None = None) -> dict:
        """Start a new episode; the same ``seed`` gives the same episode bit for bit.

        Without a seed the next one is drawn from the config's seed sequence.
        """
        if seed is None:
            seed = int(self._episode_rng.integers(2**31))
        rng = np.random.default_rng(seed)
        m, d = self.model, self.data
        mujoco.mj_resetDataKeyframe(m, d, self._home_key)
        cfg = self.config
        pool = tuple(REACH_COLOURS) if cfg.task == "reach" else cfg.emoji_pool
        self.episode = draw_episode(cfg.task, pool, cfg.n_cards, rng)
        cube_xy = None
        if cfg.task == "push":
            cube_xy = np.array(self.arm.grid_center) + rng.uniform(-0.02, 0.02, 2)
        layout_rng = rng if cfg.layout_seed is None else np.random.default_rng(cfg.layout_seed)
        self.layout = sample_layout(cfg.robot, cfg.n_cards, layout_rng, cube_xy=cube_xy)
        for i, g in enumerate(self.card_geoms):
            m.geom_pos[g] = [*self.layout.card_xy[i], 0.0005]
            yaw = self.layout.card_yaw[i]
            m.geom_quat[g] = [np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
            m.geom_matid[g] = self._material_ids[self.episode.card_labels[i]]
        c = self.arm.cube_size / 2
        yaw = self.layout.cube_yaw
        d.qpos[self._cube_qpos:self._cube_qpos + 7] = [*self.layout.cube_xy, c, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self._randomise_appearance(rng)
        mujoco.mj_forward(m, d)
        self.episode.cube_start = self.cube_position().copy()
        self.steps = 0
        return self.info()

    def _randomise_appearance(self, rng: np.random.Generator) -> None:
        m, nom = self.model, self._nominal
        m.cam_pos[:] = nom["cam_pos"]
        m.cam_quat[:] = nom["cam_quat"]
        m.light_dir[:] = nom["light_dir"]
        m.light_diffuse[:] = nom["light_diffuse"]
        m.vis.headlight.ambient[:] = nom["headlight"]
        if self.config.camera_jitter:
            cam = m.camera("third_person").id
            m.cam_pos[cam] += rng.normal(0, 0.005, 3).clip(-0.01, 0.01)
            tilt = rng.normal(0, 0.01, 3).clip(-0.02, 0.02)
            q = np.zeros(4)
            mujoco.mju_axisAngle2Quat(q, tilt / (np.linalg.norm(tilt) + 1e-12), np.linalg.norm(tilt))
            out = np.zeros(4)
            mujoco.mju_mulQuat(out, m.cam_quat[cam], q)
            m.cam_quat[cam] = out
        if self.config.randomize_lighting:
            m.light_dir[0] = nom["light_dir"][0] + rng.uniform(-0.3, 0.3, 3) * [1, 1, 0]
            m.light_diffuse[0] = nom["light_diffuse"][0] * rng.uniform(0.6, 1.4)
            m.light_diffuse[1] = nom["light_diffuse"][1] * rng.uniform(0.5, 1.5)
            m.vis.headlight.ambient[:] = nom["headlight"] * rng.uniform(0.7, 1.3)

    def info(self) -> dict:
        ep = self.episode
        return {
            "task": ep.task,
            "instruction": ep.instruction,
            "target": ep.target,
            "target_name": ep.target_name,
            "target_index": ep.target_index,
            "cards": list(ep.card_labels),
            "card_xy": self.layout.card_xy.tolist(),
            "card_yaw": self.layout.card_yaw.tolist(),
            "cube_xy": self.layout.cube_xy.tolist(),
            "cube_yaw": self.layout.cube_yaw,
            "robot": self.spec.name,
        }

    # ----------------------------------------------------------------- control
    @property
    def control_period(self) -> float:
        return self.config.substeps * self.model.opt.timestep

    @property
    def sim_time(self) -> float:
        return float(self.data.time)

    def step_control(self, targets: np.ndarray) -> None:
        """Hold ``targets`` (already within limits, spec order) for exactly one control period.

        Ends with ``mj_forward`` so poses, contacts and renders describe the final ``qpos``
        (after ``mj_step`` they lag one physics step), i.e. a state restored from ``qpos``
        renders bit-identically. It does not change the trajectory.
        """
        self.data.ctrl[:] = targets
        for _ in range(self.config.substeps):
            mujoco.mj_step(self.model, self.data)
        mujoco.mj_forward(self.model, self.data)
        self.steps += 1

    def joint_positions(self) -> np.ndarray:
        return self.data.qpos[self._qpos_adr].copy()

    def joint_velocities(self) -> np.ndarray:
        return self.data.qvel[self._qvel_adr].copy()

    def set_joint_positions(self, q: np.ndarray) -> None:
        """Teleport the arm (tests and hand-built states); targets follow so it stays put."""
        q = np.asarray(q, float)
        self.data.qpos[self._qpos_adr[:-1]] = q[:-1]
        for adr in self._gripper_qpos_adr:
            self.data.qpos[adr] = q[-1]
        self.data.qvel[:] = 0
        self.data.ctrl[:] = q
        mujoco.mj_forward(self.model, self.data)

    def ee_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (m) and orientation quaternion (w, x, y, z) in the arm base frame."""
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.tcp_site])
        return self.data.site_xpos[self.tcp_site].copy(), quat

    def cube_position(self) -> np.ndarray:
        return self.data.xpos[self.cube_body].copy()

    def set_cube_pose(self, pos: np.ndarray, yaw: float = 0.0) -> None:
        a = self._cube_qpos
        self.data.qpos[a:a + 7] = [*pos, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
        self.data.qvel[self._cube_qvel:self._cube_qvel + 6] = 0
        mujoco.mj_forward(self.model, self.data)

    # ----------------------------------------------------------------- cameras
    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (width, height)
        if key not in self._renderers:
            self._renderers[key] = mujoco.Renderer(self.model, height=height, width=width)
        return self._renderers[key]

    def render(self, camera_name: str) -> np.ndarray:
        """uint8 HxWx3 RGB of the current state."""
        if camera_name not in self.camera_names:
            raise ValueError(f"unknown camera {camera_name!r}; this twin has {self.camera_names}")
        w, h = self.config.size_of(camera_name)
        r = self._renderer(w, h)
        r.update_scene(self.data, camera=camera_name)
        return r.render()

    def intrinsics(self, camera_name: str) -> CameraIntrinsics:
        """Pinhole intrinsics of the rendered image.

        The third-person camera is defined by the Bridge sensor (640x480, f=623.6 px); other
        sizes show the same field of view, scaled like Bridge's resized frames (fx != fy
        when the aspect changes). The wrist camera has square pixels and a fixed vertical FOV.
        """
        if camera_name not in self.camera_names:
            raise ValueError(f"unknown camera {camera_name!r}; this twin has {self.camera_names}")
        w, h = self.config.size_of(camera_name)
        cam = self.model.camera(camera_name).id
        sensor = self.model.cam_sensorsize[cam]
        if sensor[0] > 0:
            fx = self.model.cam_intrinsic[cam][0] / sensor[0] * w
            fy = self.model.cam_intrinsic[cam][1] / sensor[1] * h
        else:
            fx = fy = (h / 2) / np.tan(np.radians(self.model.cam_fovy[cam]) / 2)
        return CameraIntrinsics(width=w, height=h, fx=float(fx), fy=float(fy), cx=(w - 1) / 2, cy=(h - 1) / 2)

    def image_x(self, camera_name: str, xyz) -> float:
        """Horizontal image-plane coordinate of a world point seen from ``camera_name``
        (tangent of its bearing; negative = left of the image centre)."""
        cam = self.model.camera(camera_name).id
        rot = self.data.cam_xmat[cam].reshape(3, 3)
        p = rot.T @ (np.asarray(xyz, dtype=np.float64) - self.data.cam_xpos[cam])
        return float(p[0] / max(-p[2], 1e-6))

    # ----------------------------------------------------------------- metrics
    def cube_contacts_robot(self) -> bool:
        d, m = self.data, self.model
        for i in range(d.ncon):
            g1, g2 = d.contact[i].geom1, d.contact[i].geom2
            if self.cube_geom in (g1, g2):
                other = g2 if g1 == self.cube_geom else g1
                if m.geom_bodyid[other] in self._robot_bodies:
                    return True
        return False

    def evaluate(self) -> dict:
        """The episode's metrics now: executed, recognised, success, plus what they were judged on."""
        ep, lay = self.episode, self.layout
        half = self.arm.card_size / 2
        cube = self.cube_position()
        speed = float(np.linalg.norm(self.data.qvel[self._cube_qvel:self._cube_qvel + 3]))
        released = not self.cube_contacts_robot()
        on_table = abs(cube[2] - self.arm.cube_size / 2) < ON_TABLE_TOL
        resting = released and on_table and speed < REST_SPEED
        result = {"task": ep.task, "target": ep.target, "instruction": ep.instruction, "released": released,
                  "resting": resting, "cube_pos": cube.tolist(),
                  "cards": list(ep.card_labels), "card_xy": lay.card_xy.tolist()}  # the table it was judged on
        if ep.task == "grinning_face":
            card = card_under(cube[:2], lay.card_xy, lay.card_yaw, half)
            executed = bool(resting and card is not None)
            recognised = bool(executed and card == ep.target_index)
            result["card"] = None if card is None else ep.card_labels[card]
        elif ep.task == "reach":
            tcp, _ = self.ee_pose()
            card = card_under(tcp[:2], lay.card_xy, lay.card_yaw, half + 0.01)
            executed = bool(card is not None and 0.01 < tcp[2] < 0.15)
            recognised = bool(executed and card == ep.target_index)
            result["card"] = None if card is None else ep.card_labels[card]
        else:
            moved = cube[:2] - ep.cube_start[:2]
            threshold = 1.2 * self.arm.cube_size + 0.02
            direction = max(PUSH_DIRECTIONS, key=lambda k: float(PUSH_DIRECTIONS[k] @ moved))
            executed = bool(resting and np.linalg.norm(moved) >= threshold)
            recognised = bool(executed and direction == ep.target and PUSH_DIRECTIONS[ep.target] @ moved >= threshold)
            result["direction"] = direction if executed else None
            result["displacement"] = moved.tolist()
        result.update(executed=executed, recognised=recognised, success=bool(executed and recognised))
        return result

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __enter__(self) -> "Twin":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
