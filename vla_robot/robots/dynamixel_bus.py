"""Dynamixel X-series (XM430/XL430) on Protocol 2.0 through dynamixel_sdk."""

from __future__ import annotations

import math

from vla_robot.robots.servo_bus import ControlTable, SerialFactory, ServoBus

XM430_TABLE = ControlTable(
    family="dynamixel-x",
    model_number=0,
    torque_enable=64,
    goal_position=116,
    present_position=132,
    present_velocity=128,
    position_bytes=4,
    velocity_bytes=4,
    ticks_per_rev=4096,
    velocity_unit_rad_s=0.229 * 2 * math.pi / 60.0,  # 0.229 rpm per unit
    velocity_sign_bit=None,
    operating_mode=11,
    profile_velocity=(112, 4),  # velocity-based profile (Drive Mode bit 2 clear): 0.229 rpm
    profile_acceleration=(108, 4),  # 214.577 rev/min^2
    profile_velocity_unit_rad_s=0.229 * 2 * math.pi / 60.0,
    profile_acceleration_unit_rad_s2=214.577 * 2 * math.pi / 3600.0,
    hardware_error=70,  # Hardware Error Status (X-series e-manual)
    hardware_error_bits=((0, "input voltage"), (1, "motor hall sensor"), (2, "overheating"), (3, "motor encoder"),
                         (4, "electrical shock"), (5, "overload")),
    alert_mask=0x80,  # Protocol 2.0 status packets set the Alert bit while Hardware Error Status is non-zero
)
DRIVE_MODE = 10  # EEPROM; bit 2 = time-based profile (Interbotix's default), cleared here for velocity-based
DRIVE_MODE_TIME_BASED = 0x04
POSITION_MODE = 3  # Operating Mode (5 = current-based position needs an XM430; the WidowX gripper is an XL430)


def dynamixel_bus(port: str, baudrate: int = 1_000_000, serial_factory: SerialFactory | None = None) -> ServoBus:
    import dynamixel_sdk

    return ServoBus(dynamixel_sdk, dynamixel_sdk.PacketHandler(2.0), XM430_TABLE, port, baudrate, serial_factory)
