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
)


def dynamixel_bus(port: str, baudrate: int = 1_000_000, serial_factory: SerialFactory | None = None) -> ServoBus:
    import dynamixel_sdk

    return ServoBus(dynamixel_sdk, dynamixel_sdk.PacketHandler(2.0), XM430_TABLE, port, baudrate, serial_factory)
