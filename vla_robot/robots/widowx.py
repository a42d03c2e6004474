"""WidowX 250 (6-DoF, Interbotix) directly on its Dynamixel bus at 1 Mbaud.

The shoulder and elbow each have a shadow motor that Interbotix firmware config slaves
to the primary (Secondary ID), so only the primary ids are commanded and read.

Servo settings at connect (written only where they differ, see ``servo_setup``):

* every joint, the gripper included, in Position Control Mode (3). Interbotix's ``modes.yaml``
  puts the arm group in position mode and the gripper in PWM mode, where the gripper takes an
  effort, not a position. This driver commands finger travel (the project's one robot
  interface is joint positions, and recorded actions are positions), so the gripper is a
  position servo too. Its XL430-W250 has no current sensing, hence no current-based position
  mode (the XM430 grippers of ALOHA use that one). A hard squeeze in position mode can trip
  the XL430's overload; the arm node then holds and reports it (``ArmGuard``);
* a velocity-based profile (Drive Mode bit 2 cleared; Interbotix defaults to time-based) with
  Profile Velocity / Profile Acceleration from ``WIDOWX_250.max_velocity`` / ``max_acceleration``
  (3.14 rad/s is 131 units: Interbotix's own ``Velocity_Limit: 131``).

The shadow motors are configured by Interbotix's firmware setup and are not touched here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_robot.robots.dynamixel_bus import DRIVE_MODE, DRIVE_MODE_TIME_BASED, POSITION_MODE, XM430_TABLE, dynamixel_bus
from vla_robot.robots.servo_arm import JointTicks, ServoArm
from vla_robot.robots.servo_bus import SerialFactory
from vla_robot.robots.servo_setup import RegisterSetting, merge, profile_settings
from vla_robot.robots.specs import WIDOWX_250

RAD_PER_TICK = 2 * math.pi / 4096


@dataclass(frozen=True)
class WidowXConfig:
    port: str = "/dev/ttyDXL"
    baudrate: int = 1_000_000
    motor_ids: tuple[int, ...] = (1, 2, 4, 6, 7, 8, 9)  # waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate, gripper
    gripper_closed_ticks: int = 1600  # finger travel spec.gripper_closed (metres)
    gripper_open_ticks: int = 2800  # finger travel spec.gripper_open (metres)

    def __post_init__(self) -> None:
        if len(self.motor_ids) != WIDOWX_250.dof:
            raise ValueError(f"widowx: motor_ids needs {WIDOWX_250.dof} ids for {WIDOWX_250.joint_names}, got {self.motor_ids}")
        if self.gripper_closed_ticks == self.gripper_open_ticks:
            raise ValueError("widowx: gripper_closed_ticks and gripper_open_ticks must differ")


def widowx_joint_ticks(config: WidowXConfig) -> list[JointTicks]:
    spec = WIDOWX_250
    joints = []
    for sid, lo, hi in zip(config.motor_ids[:-1], spec.lower[:-1], spec.upper[:-1]):
        j = JointTicks(sid, 2048.0, RAD_PER_TICK)
        joints.append(JointTicks(sid, 2048.0, RAD_PER_TICK, j.to_ticks(lo), j.to_ticks(hi)))
    per_tick = (spec.gripper_open - spec.gripper_closed) / (config.gripper_open_ticks - config.gripper_closed_ticks)
    zero = config.gripper_closed_ticks - spec.gripper_closed / per_tick
    lo, hi = sorted((config.gripper_closed_ticks, config.gripper_open_ticks))
    joints.append(JointTicks(config.motor_ids[-1], zero, per_tick, lo, hi))
    return joints


class WidowX250(ServoArm):
    def __init__(self, config: WidowXConfig | None = None, serial_factory: SerialFactory | None = None):
        config = config or WidowXConfig()
        self.config = config
        super().__init__(WIDOWX_250, dynamixel_bus(config.port, config.baudrate, serial_factory), widowx_joint_ticks(config))

    def servo_settings(self) -> dict[int, list[RegisterSetting]]:
        table = self.bus.table
        modes = {}
        for sid in self.ids:
            modes[sid] = [RegisterSetting("operating mode", table.operating_mode, 1, POSITION_MODE, eeprom=True),
                          RegisterSetting("drive mode (velocity-based profile)", DRIVE_MODE, 1, 0, eeprom=True,
                                          mask=DRIVE_MODE_TIME_BASED)]
        return merge(modes, profile_settings(table, self.spec, self.ids, [j.units_per_tick for j in self.joints]))


__all__ = ["WidowX250", "WidowXConfig", "XM430_TABLE"]
