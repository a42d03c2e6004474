"""A Robot on a serial servo bus: tick conversion, limit clamping, torque and e-stop.

The WidowX 250 (Dynamixel) and the SO-100 (Feetech) differ only in their bus and in how
ticks map to joint units, so both are this class with different ``JointTicks``.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from vla_robot.robots.interface import RobotState
from vla_robot.robots.limits import JointLimitClamp
from vla_robot.robots.servo_bus import ServoBus
from vla_robot.robots.specs import RobotSpec


class EStopActive(RuntimeError):
    """Commands are refused until the e-stop is released."""


@dataclass(frozen=True)
class JointTicks:
    """Linear map between a joint value (rad, or metres for a gripper) and servo ticks."""

    servo_id: int
    zero_ticks: float  # ticks at joint value 0
    units_per_tick: float  # signed: a reversed drive mode is negative
    min_ticks: int = 0
    max_ticks: int = 4095

    def to_ticks(self, value: float) -> int:
        ticks = int(round(self.zero_ticks + value / self.units_per_tick))
        return int(min(max(ticks, self.min_ticks), self.max_ticks))

    def from_ticks(self, ticks: float) -> float:
        return float((ticks - self.zero_ticks) * self.units_per_tick)

    def velocity_from_rad_s(self, motor_rad_s: float, ticks_per_rev: int) -> float:
        return float(motor_rad_s / (2 * math.pi / ticks_per_rev) * self.units_per_tick)


class ServoArm:
    """Robot protocol over a ``ServoBus``.

    Every target goes through ``JointLimitClamp`` (position, and velocity against the last
    command over the elapsed time, at most ``max_step_dt``) and then through the servo's
    tick range, so a hostile command cannot leave the limits on the wire.
    """

    def __init__(self, spec: RobotSpec, bus: ServoBus, joints: list[JointTicks], max_step_dt: float = 0.1,
                 enable_torque_on_connect: bool = True):
        if len(joints) != spec.dof:
            raise ValueError(f"{spec.name}: {len(joints)} servo mappings for {spec.dof} joints {spec.joint_names}")
        self.spec = spec
        self.bus = bus
        self.joints = joints
        self.ids = [j.servo_id for j in joints]
        self.clamp = JointLimitClamp(spec)
        self.max_step_dt = max_step_dt
        self.enable_torque_on_connect = enable_torque_on_connect
        self.estopped = False
        self.torque_enabled = False
        self.commands_sent = 0
        self.commands_refused = 0
        self._last_command: np.ndarray | None = None
        self._last_command_time = 0.0
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        self.bus.open()
        for sid in self.ids:
            self.bus.ping(sid)
        self._prepare()
        if self.enable_torque_on_connect:
            self.set_torque(True)

    def _prepare(self) -> None:
        """Hook for EEPROM setup (homing offsets) while torque is still off."""

    def close(self) -> None:
        self.bus.close()

    # -- state --------------------------------------------------------------------------
    def read_state(self) -> RobotState:
        with self._lock:
            ticks = self.bus.read_positions(self.ids)
            motor_vel = self.bus.read_velocities(self.ids)
        positions = np.array([j.from_ticks(ticks[j.servo_id]) for j in self.joints])
        velocities = np.array(
            [j.velocity_from_rad_s(motor_vel[j.servo_id], self.bus.table.ticks_per_rev) for j in self.joints]
        )
        return RobotState(positions=positions, velocities=velocities, stamp=time.monotonic())

    # -- commands -----------------------------------------------------------------------
    def send_joint_targets(self, targets: np.ndarray) -> None:
        if self.estopped:
            self.commands_refused += 1
            raise EStopActive(f"{self.spec.name}: e-stop is active; release it before sending commands")
        now = time.monotonic()
        current = self._last_command if self._last_command is not None else self.read_state().positions
        dt = min(max(now - self._last_command_time, 0.0), self.max_step_dt) if self._last_command is not None else self.max_step_dt
        try:
            safe = self.clamp(targets, current=current, dt=dt)
        except ValueError:
            self.commands_refused += 1
            raise
        with self._lock:
            self.bus.write_goal_positions({j.servo_id: j.to_ticks(v) for j, v in zip(self.joints, safe)})
        self._last_command, self._last_command_time = safe, now
        self.commands_sent += 1

    @property
    def last_targets(self) -> np.ndarray | None:
        """The last goal written to the bus, after the safety clamp (None before the first)."""
        return None if self._last_command is None else np.array(self._last_command, dtype=np.float64)

    def set_torque(self, enabled: bool) -> None:
        """Torque on starts from the present pose, so the arm never jumps to a stale goal."""
        with self._lock:
            if enabled:
                present = self.bus.read_positions(self.ids)
                self.bus.write_goal_positions(present)
            self.bus.set_torque(self.ids, enabled)
        self.torque_enabled = enabled
        self._last_command = None

    def estop(self) -> None:
        """Torque off at once and latch: every later command is refused until ``release_estop``."""
        self.estopped = True
        self.bus.set_torque(self.ids, False)
        self.torque_enabled = False
        self._last_command = None

    def release_estop(self) -> None:
        self.estopped = False
