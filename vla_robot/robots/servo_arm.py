"""A Robot on a serial servo bus: tick conversion, limit clamping, torque, stop and faults.

The WidowX 250 (Dynamixel) and the SO-100 (Feetech) differ only in their bus, in how
ticks map to joint units and in their servo settings, so both are this class with
different ``JointTicks`` and ``servo_settings``.

E-stop is a stop category 2 (IEC 60204-1): the servos keep torque and hold the last
commanded pose. Neither arm has brakes: torque off at an e-stop dropped a WidowX onto the
table. Torque off is its own, explicit call (``set_torque(False)``).
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
from vla_robot.robots.servo_setup import EepromUnlock, RegisterSetting, SettingWrite, apply_settings
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
        self.settings_written: list[SettingWrite] = []  # what the last connect had to change
        self._last_command: np.ndarray | None = None
        self._last_command_time = 0.0
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------
    def connect(self) -> None:
        self.bus.open()
        for sid in self.ids:
            self.bus.ping(sid)
        self.settings_written = apply_settings(self.bus, self.servo_settings(), self.eeprom_unlock)
        if self.enable_torque_on_connect:
            self.set_torque(True)

    def servo_settings(self) -> dict[int, list[RegisterSetting]]:
        """Register values this arm needs (operating mode, profile, offsets); written only where they differ."""
        return {}

    eeprom_unlock: EepromUnlock | None = None

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

    def hold(self, target: np.ndarray | None = None) -> np.ndarray:
        """Write the hold goal now: the last commanded pose (the present pose before any command).

        Holding the *commanded* pose, not the measured one, is what keeps an arm from sagging
        a little further at every hold and a closed gripper from letting go of what it holds.
        The servos' profile acceleration bounds the deceleration toward it. ``target`` holds
        somewhere else, such as where a blocked arm really is: only position limits apply,
        because the point is to stop pushing toward a goal the arm cannot reach.
        """
        with self._lock:
            if target is not None:
                self._last_command = self.clamp(target)
            elif self._last_command is None:
                ticks = self.bus.read_positions(self.ids)
                self._last_command = np.array([j.from_ticks(ticks[j.servo_id]) for j in self.joints])
            target = self._last_command.copy()
            self.bus.write_goal_positions({j.servo_id: j.to_ticks(v) for j, v in zip(self.joints, target)})
        self._last_command_time = time.monotonic()
        return target

    def estop(self) -> np.ndarray:
        """Stop category 2: hold the last commanded pose with torque on, and latch: every later
        command is refused until ``release_estop``. Returns the pose held."""
        self.estopped = True
        return self.hold()

    def release_estop(self) -> None:
        """Clear the latch. Nothing moves: the servos keep holding until the next command."""
        self.estopped = False

    def read_hardware_errors(self) -> dict[int, list[str]]:
        """Servo id -> the faults its hardware-error register reports (healthy servos are left out).

        Read from the register itself, not only from the alert flag of status packets: sync
        reads carry no per-servo error byte, and the register names the fault."""
        table = self.bus.table
        with self._lock:
            status = self.bus.read_hardware_errors(self.ids)
        return {sid: table.describe_hardware_error(v & table.fault_mask) for sid, v in status.items()
                if v & table.fault_mask}
