"""``RealtimeTwin``: the twin's physics on the wall clock, moved only by servo firmware.

The lock-stepped ``Twin`` advances one control period per command: time is whatever the
caller makes it. Here a thread advances MuJoCo to track ``time.monotonic()`` (scaled by
``rate_factor``), one servo period (4 ms, two physics steps) at a time, whether or not anyone
sends commands, exactly like the real arm keeps moving (or falling) between bus transactions.

Every servo period each ``TwinServo`` says what its output stage does (``Drive``) and the
physics applies it to the joint:

* the MJCF position actuator is the servo's position loop; its setpoint is the servo's
  profile (Profile Velocity/Acceleration, Goal Speed ...), not the raw goal;
* gravity compensation (the real servo's integral term) is applied *through the actuator*,
  per joint, only while that servo's torque is on: the model's joints get
  ``actuatorgravcomp`` and a joint-level actuator force range of +-(servo limit), or 0 with the
  torque off. So torque off means limp under gravity, the arm's total output (P-term plus
  gravity) saturates at the servo's stall torque, and a saturated servo overloads. The
  lock-stepped ``Twin`` keeps its passive ``gravcomp`` untouched: its trajectories, and CI's
  bit-for-bit comparisons, do not change;
* current and PWM modes apply a torque directly (PWM minus the motor's back-EMF).

If the thread is starved (a loaded CPU) the twin's time slips rather than bursting to
catch up, and ``slips`` counts it. ``advance(seconds)`` runs the same physics without the
thread, for deterministic tests.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import mujoco
import numpy as np

from sim.config import TwinConfig
from sim.realtime.faults import parse_fault
from sim.realtime.servos import INF, Drive, TwinServo
from sim.realtime.state_block import TwinStateBlock
from sim.twin import Twin


@dataclass(frozen=True)
class _JointHandle:
    """MuJoCo addresses of what one servo moves."""

    actuator: int
    qpos: int  # the joint the servo reads (the left finger of the WidowX gripper)
    dof: int
    joints: tuple[int, ...]  # every MJCF joint it drives (both fingers)
    dofs: tuple[int, ...]


def _profile_step(pos: float, vel: float, target: float, vmax: float, amax: float, dt: float) -> tuple[float, float]:
    """One step of a trapezoidal profile toward ``target`` (inf limits: jump there)."""
    distance = target - pos
    if vmax == INF and amax == INF:
        return target, 0.0
    if amax == INF:
        step = max(-vmax * dt, min(vmax * dt, distance))
        return pos + step, (step / dt if abs(step) < abs(distance) else 0.0)
    braking = math.sqrt(2.0 * amax * abs(distance))
    desired = math.copysign(min(vmax, braking), distance)
    vel = vel + max(-amax * dt, min(amax * dt, desired - vel))
    step = vel * dt
    if abs(distance) <= abs(step) and step * distance >= 0:
        return target, 0.0
    return pos + step, vel


def _ramp(vel: float, target: float, amax: float, dt: float) -> float:
    return target if amax == INF else vel + max(-amax * dt, min(amax * dt, target - vel))


class RealtimeTwin:
    def __init__(self, config: TwinConfig, servos: list[TwinServo], name: str | None = None,
                 rate_factor: float = 1.0, servo_period_s: float = 0.004, max_lag_s: float = 0.25):
        if rate_factor <= 0:
            raise ValueError(f"rate_factor {rate_factor} must be > 0 (sim seconds per wall second)")
        self.config = config
        self.twin = Twin(config)
        self.spec = self.twin.spec
        self.name = name
        self.rate_factor = rate_factor
        self.max_lag_s = max_lag_s
        self.substeps = max(1, round(servo_period_s / self.twin.model.opt.timestep))
        self.servo_period_s = self.substeps * self.twin.model.opt.timestep
        self.servos = sorted(servos, key=lambda s: s.mount.joint)
        self.by_id = {s.servo_id: s for s in self.servos}
        if sorted(s.mount.joint for s in self.servos) != list(range(self.spec.dof)):
            raise ValueError(f"{self.spec.name}: one servo per joint {self.spec.joint_names}")
        self.lock = threading.RLock()
        self._handles = [self._handle(i) for i in range(self.spec.dof)]
        self._base_damping = [float(self.twin.model.dof_damping[h.dof]) for h in self._handles]
        self._prepare_model()
        self.seed = int(config.seed)
        self.episode = 0
        self.slips = 0
        self.periods = 0
        self.blocked: dict[int, np.ndarray] = {}  # joint index -> original MJCF ranges of its joints
        self.external: dict[int, float] = {}  # joint index -> external torque
        self.camera_faults: dict[str, dict] = {}
        self.fault_log: list[dict] = []
        self._effort_out = np.zeros(self.spec.dof)
        self._anchor = (time.monotonic(), self.twin.sim_time)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.block = None
        if name:
            self.block = TwinStateBlock.create(name, {"twin": config.to_dict(), "robot": self.spec.name,
                                                      "servo_period_s": self.servo_period_s,
                                                      "rate_factor": rate_factor}, self.twin.model.nq)
        self._settle_servos()
        self._publish()

    # -- model set-up ---------------------------------------------------------------------------
    def _handle(self, i: int) -> _JointHandle:
        m = self.twin.model
        name = self.spec.joint_names[i]
        if i == self.spec.dof - 1 and self.spec.name == "widowx250":
            names = ("left_finger", "right_finger")
        else:
            names = (name,)
        joints = tuple(m.joint(n).id for n in names)
        return _JointHandle(actuator=m.actuator(name).id, qpos=int(m.jnt_qposadr[joints[0]]),
                            dof=int(m.jnt_dofadr[joints[0]]), joints=joints,
                            dofs=tuple(int(m.jnt_dofadr[j]) for j in joints))

    def _prepare_model(self) -> None:
        """Gravity compensation through the actuators, clamped per joint (0 while the torque is off)."""
        m = self.twin.model
        for h in self._handles:
            # the servo's limit applies to its whole output (position loop plus gravity
            # compensation, as a PID's integral would), so only the joint-level range clamps
            m.actuator_forcelimited[h.actuator] = 0
            for j in h.joints:
                m.jnt_actgravcomp[j] = 1
                m.jnt_actfrclimited[j] = 1
                m.jnt_actfrcrange[j] = (0.0, 0.0)

    def _settle_servos(self) -> None:
        d = self.twin.data
        for s, h in zip(self.servos, self._handles):
            s.settle(float(d.qpos[h.qpos]))
            s.family.hold_here(s)

    # -- the clock ------------------------------------------------------------------------------
    def start(self) -> "RealtimeTwin":
        if self._thread is None:
            self._anchor = (time.monotonic(), self.twin.sim_time)
            self._thread = threading.Thread(target=self._run, name=f"twin-{self.name or 'physics'}", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.lock:
                wall0, sim0 = self._anchor
                due = sim0 + (time.monotonic() - wall0) * self.rate_factor
                if due - self.twin.sim_time > self.max_lag_s * self.rate_factor:
                    self.slips += 1  # starved: let the twin's time slip instead of bursting to catch up
                    self._anchor = (time.monotonic(), self.twin.sim_time)
                    wall0, sim0 = self._anchor
                    due = self.twin.sim_time + self.servo_period_s
                while self.twin.sim_time + 0.5 * self.servo_period_s <= due and not self._stop.is_set():
                    self._period()
                next_due = wall0 + (self.twin.sim_time + self.servo_period_s - sim0) / self.rate_factor
            self._stop.wait(max(0.0, next_due - time.monotonic()))

    def advance(self, seconds: float) -> None:
        """Run ``seconds`` of physics now, without the thread (tests; never while ``start``ed)."""
        if self._thread is not None:
            raise RuntimeError("advance() is for a twin whose clock thread is not running")
        with self.lock:
            for _ in range(max(1, round(seconds / self.servo_period_s))):
                self._period()

    def now(self) -> float:
        """The host (monotonic) time of the twin's current state."""
        wall0, sim0 = self._anchor
        return wall0 + (self.twin.sim_time - sim0) / self.rate_factor

    # -- one servo period -----------------------------------------------------------------------
    def _period(self) -> None:
        m, d = self.twin.model, self.twin.data
        dt = self.servo_period_s
        d.qfrc_applied[:] = 0.0
        drives: list[Drive] = []
        for i, (s, h) in enumerate(zip(self.servos, self._handles)):
            drive = s.drive()
            drives.append(drive)
            self._effort_out[i] = 0.0
            limit = drive.limit if drive.kind in ("position", "velocity") else 0.0
            for j in h.joints:
                m.jnt_actfrcrange[j] = (-limit, limit)
            if drive.kind == "position":
                s.traj_pos, s.traj_vel = _profile_step(s.traj_pos, s.traj_vel, drive.target, drive.max_velocity,
                                                       drive.max_acceleration, dt)
            elif drive.kind == "velocity":
                s.traj_vel = _ramp(s.traj_vel, drive.target, drive.max_acceleration, dt)
                low, high = m.actuator_ctrlrange[h.actuator]
                s.traj_pos = min(high, max(low, s.traj_pos + s.traj_vel * dt))
            else:
                s.traj_pos, s.traj_vel = s.q, 0.0
                if drive.kind == "effort":  # the motor's back-EMF acts as damping: implicit, so it stays stable
                    self._effort_out[i] = max(-drive.limit, min(drive.limit, drive.effort))
                    d.qfrc_applied[h.dof] += self._effort_out[i]
            m.dof_damping[h.dof] = self._base_damping[i] + (drive.damping if drive.kind == "effort" else 0.0)
            d.ctrl[h.actuator] = s.traj_pos
        for i, torque in self.external.items():
            d.qfrc_applied[self._handles[i].dof] += torque
        mujoco.mj_step(m, d, nstep=self.substeps)
        self.periods += 1
        for i, (s, h, drive) in enumerate(zip(self.servos, self._handles, drives)):
            s.q, s.qd = float(d.qpos[h.qpos]), float(d.qvel[h.dof])
            back_emf = drive.damping * s.qd if drive.kind == "effort" else 0.0
            s.output = float(d.qfrc_actuator[h.dof] + self._effort_out[i] - back_emf)
            s.clock_ms += int(round(dt * 1000))
            self._watch_overload(s, drive, dt)
        self._publish()

    def _watch_overload(self, s: TwinServo, drive: Drive, dt: float) -> None:
        fraction, hold_s = s.family.overload_threshold(s)
        if drive.kind != "off" and drive.limit > 0 and abs(s.output) >= fraction * drive.limit * (1 - 1e-6):
            s.overload_s += dt
            if s.overload_s >= hold_s and not s.hw_error & s.family.OVERLOAD_BIT:
                s.family.on_overload(s)
        else:
            s.overload_s = 0.0

    def _publish(self) -> None:
        if self.block is not None:
            self.block.write_state(self.now(), self.twin.sim_time, self.seed, self.episode, self.twin.data.qpos)

    # -- the world ------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict:
        """A new episode (the next seed by default). The arm is put back at home, world faults
        (blocked joints, external loads) end; servo and camera faults stay."""
        with self.lock:
            self._release_all()
            self.seed = self.seed + 1 if seed is None else int(seed)
            self.episode += 1
            info = self.twin.reset(self.seed)
            self._settle_servos()
            self._anchor = (time.monotonic(), self.twin.sim_time)
            self._publish()
        return info

    def evaluate(self) -> dict:
        with self.lock:
            mujoco.mj_forward(self.twin.model, self.twin.data)
            return self.twin.evaluate()

    def tcp(self) -> np.ndarray:
        with self.lock:
            mujoco.mj_kinematics(self.twin.model, self.twin.data)
            return self.twin.ee_pose()[0]

    def joint_positions(self) -> np.ndarray:
        with self.lock:
            return self.twin.joint_positions()

    # -- faults -----------------------------------------------------------------------------------
    def _joint_index(self, name: str) -> int:
        if name not in self.spec.joint_names:
            raise ValueError(f"unknown joint {name!r}; {self.spec.name} joints: {list(self.spec.joint_names)}")
        return self.spec.joint_names.index(name)

    def _servo_of(self, fault: dict) -> TwinServo:
        if "id" in fault:
            if fault["id"] not in self.by_id:
                raise ValueError(f"no servo id {fault['id']}; ids: {sorted(self.by_id)}")
            return self.by_id[fault["id"]]
        return self.servos[self._joint_index(fault["joint"])]

    def _release(self, i: int) -> None:
        ranges = self.blocked.pop(i, None)
        if ranges is not None:
            for j, r in zip(self._handles[i].joints, ranges):
                self.twin.model.jnt_range[j] = r

    def _release_all(self) -> None:
        for i in list(self.blocked):
            self._release(i)
        self.external.clear()

    def inject(self, payload) -> str:
        """Apply one fault (JSON text or dict, see ``sim.realtime.faults``); returns what was done."""
        fault = parse_fault(payload)
        kind = fault["kind"]
        with self.lock:
            m, d = self.twin.model, self.twin.data
            if kind == "block_joint":
                i = self._joint_index(fault["joint"])
                h = self._handles[i]
                self.blocked.setdefault(i, np.array([m.jnt_range[j].copy() for j in h.joints]))
                for j in h.joints:
                    q = float(d.qpos[m.jnt_qposadr[j]])
                    m.jnt_range[j] = (q - 1e-4, q + 1e-4)
                    m.jnt_limited[j] = 1
                done = f"{fault['joint']} blocked at {float(d.qpos[h.qpos]):.3f}"
            elif kind == "release_joint":
                self._release(self._joint_index(fault["joint"]))
                done = f"{fault['joint']} released"
            elif kind == "external_torque":
                i = self._joint_index(fault["joint"])
                if fault["torque"]:
                    self.external[i] = float(fault["torque"])
                else:
                    self.external.pop(i, None)
                done = f"external load {fault['torque']} on {fault['joint']}"
            elif kind in ("unplug_servo", "replug_servo"):
                s = self._servo_of(fault)
                if kind == "unplug_servo":
                    s.powered = False
                elif not s.powered:
                    s.powered = True
                    s.family.power_on(s)  # a servo that lost power boots with its RAM at defaults
                    s.settle(s.q)
                    s.family.hold_here(s)
                done = f"servo {s.servo_id} {'unplugged' if kind == 'unplug_servo' else 'powered'}"
            elif kind.startswith("camera_"):
                done = self._camera_fault(fault)
            else:  # clear
                self._release_all()
                for s in self.servos:
                    if not s.powered:
                        self.inject({"kind": "replug_servo", "id": s.servo_id})
                self.camera_faults.clear()
                self._write_camera_faults()
                done = "every fault cleared"
            self.fault_log.append({**fault, "sim_time": self.twin.sim_time})
        return done

    def _camera_fault(self, fault: dict) -> str:
        camera, kind = fault["camera"], fault["kind"]
        entry = self.camera_faults.setdefault(camera, {})
        if kind == "camera_unplug":
            entry["unplugged"] = True
        elif kind == "camera_replug":
            entry["unplugged"] = False
        elif kind == "camera_drops":
            for key in ("probability", "pattern"):
                if key in fault:
                    entry[f"drop_{key}"] = fault[key]
        else:  # camera_clock: offsets add up, drift is set
            if "offset_s" in fault:
                entry["clock_offset_s"] = entry.get("clock_offset_s", 0.0) + float(fault["offset_s"])
            if "drift_ppm" in fault:
                entry["drift_ppm"] = float(fault["drift_ppm"])
        self._write_camera_faults()
        return f"camera {camera}: {entry}"

    def _write_camera_faults(self) -> None:
        if self.block is not None:
            self.block.write_faults({"cameras": self.camera_faults})

    def status(self) -> dict:
        """Ground truth for tests and the twin's status topic (what no driver could read)."""
        with self.lock:
            servos = {}
            for name, s in zip(self.spec.joint_names, self.servos):
                servos[name] = {"id": s.servo_id, "powered": s.powered, "torque": s.torque_on,
                                "hw_error": s.hw_error, "shutdown": s.shutdown, "protective": s.protective,
                                "output_pct": round(100 * s.output / s.mount.max_effort, 1), "q": round(s.q, 5)}
            return {"name": self.name, "robot": self.spec.name, "sim_time": round(self.twin.sim_time, 4),
                    "seed": self.seed, "episode": self.episode, "slips": self.slips,
                    "tcp": [round(v, 5) for v in self.tcp()], "servos": servos,
                    "blocked": [self.spec.joint_names[i] for i in self.blocked],
                    "external": {self.spec.joint_names[i]: t for i, t in self.external.items()},
                    "cameras": self.camera_faults}

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self.block is not None:
            self.block.close()
            self.block = None
        self.twin.close()
