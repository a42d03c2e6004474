"""SO-100 arm on a Feetech STS3215 bus at 1 Mbaud, with a lerobot-style calibration file."""

from __future__ import annotations

import math
from dataclasses import dataclass

from vla_robot.robots.calibration import MotorCalibration, default_calibration, load_calibration
from vla_robot.robots.feetech_bus import STS3215_LOCK, STS3215_TABLE, encode_homing_offset, feetech_bus
from vla_robot.robots.servo_arm import JointTicks, ServoArm
from vla_robot.robots.servo_bus import SerialFactory
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

    def _prepare(self) -> None:
        if not self.config.write_homing_offsets:
            return
        self.bus.set_torque(self.ids, False)
        for name in SO100.joint_names:
            m = self.calibration[name]
            self.bus.write(m.id, STS3215_LOCK, 0, 1)
            self.bus.write(m.id, STS3215_TABLE.homing_offset, encode_homing_offset(m.homing_offset), 2)
            self.bus.write(m.id, STS3215_LOCK, 1, 1)
