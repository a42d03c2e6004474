"""SO-100 arm on a Feetech STS3215 bus at 1 Mbaud, with a lerobot-style calibration file."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_robot.robots.calibration import MotorCalibration, default_calibration, load_calibration
from vla_robot.robots.feetech_bus import POSITION_MODE, STS3215_LOCK, encode_homing_offset, feetech_bus
from vla_robot.robots.servo_arm import JointTicks, ServoArm
from vla_robot.robots.servo_bus import SerialFactory, ServoBus
from vla_robot.robots.servo_setup import RegisterSetting, merge, profile_settings
from vla_robot.robots.specs import SO100

RAD_PER_TICK = 2 * math.pi / 4096


@dataclass(frozen=True)
class SO100Config:
    port: str = "/dev/ttyACM0"
    baudrate: int = 1_000_000
    calibration_path: str | None = None  # None: ids 1..6, no offsets (uncalibrated)
    write_homing_offsets: bool = True  # a leader arm may already hold its offsets


def so100_joint_ticks(calibration: dict[str, MotorCalibration]) -> list[JointTicks]:
    joints = []
    for name in SO100.joint_names:
        m = calibration[name]
        sign = -1.0 if m.drive_mode else 1.0
        joints.append(JointTicks(m.id, 2048.0, sign * RAD_PER_TICK, m.range_min, m.range_max))
    return joints


class SO100Arm(ServoArm):
    def __init__(self, config: SO100Config | None = None, serial_factory: SerialFactory | None = None,
                 enable_torque_on_connect: bool = True):
        config = config or SO100Config()
        self.config = config
        self.calibration = (
            load_calibration(config.calibration_path, SO100) if config.calibration_path else default_calibration(SO100)
        )
        super().__init__(SO100, feetech_bus(config.port, config.baudrate, serial_factory),
                         so100_joint_ticks(self.calibration), enable_torque_on_connect=enable_torque_on_connect)

    def servo_settings(self) -> dict[int, list[RegisterSetting]]:
        """Position mode, the spec's profile and (unless told not to) the calibration's homing offsets.

        An offset is written only when the servo holds another one: each write wears the EEPROM."""
        table = self.bus.table
        settings = {}
        for name in SO100.joint_names:
            m = self.calibration[name]
            regs = [RegisterSetting("operating mode", table.operating_mode, 1, POSITION_MODE, eeprom=True)]
            if self.config.write_homing_offsets:
                regs.append(RegisterSetting("homing offset", table.homing_offset, 2,
                                            encode_homing_offset(m.homing_offset), eeprom=True))
            settings[m.id] = regs
        return merge(settings, profile_settings(table, self.spec, self.ids, [j.units_per_tick for j in self.joints]))

    @staticmethod
    def eeprom_unlock(bus: ServoBus, servo_id: int, unlocked: bool) -> None:
        """STS3215 EEPROM is locked (Lock register 55 = 1) except around a write."""
        bus.write(servo_id, STS3215_LOCK, 0 if unlocked else 1, 1)
