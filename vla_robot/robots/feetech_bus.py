"""Feetech STS3215 servos (SO-100 / SO-101) through scservo_sdk."""

from __future__ import annotations

import math

from vla_robot.robots.servo_bus import ControlTable, SerialFactory, ServoBus

STS3215_TABLE = ControlTable(
    family="feetech-sts",
    model_number=3,
    torque_enable=40,
    goal_position=42,
    present_position=56,
    present_velocity=58,
    position_bytes=2,
    velocity_bytes=2,
    ticks_per_rev=4096,
    velocity_unit_rad_s=2 * math.pi / 4096,  # steps per second
    velocity_sign_bit=15,
    position_sign_bit=15,
    homing_offset=31,
    operating_mode=33,  # 0 = position servo
    profile_velocity=(46, 2),  # Goal Velocity: the running-speed cap in position mode, steps/s
    profile_acceleration=(41, 1),  # Acceleration, 100 steps/s^2 per unit (0 would mean "as fast as it can")
    profile_velocity_unit_rad_s=2 * math.pi / 4096,
    profile_acceleration_unit_rad_s2=100 * 2 * math.pi / 4096,
    hardware_error=65,  # Status register (STS memory table)
    hardware_error_bits=((0, "voltage"), (1, "magnetic encoder"), (2, "overheating"), (3, "overcurrent"),
                         (5, "overload")),
    alert_mask=0x2F,  # the status packet's error byte carries those same fault bits
)
STS3215_LOCK = 55  # EEPROM lock: 0 lets the homing offset be written
POSITION_MODE = 0


def encode_homing_offset(offset: int) -> int:
    """STS3215 stores the homing offset sign-magnitude with the sign in bit 11."""
    if abs(offset) > 2047:
        raise ValueError(f"homing_offset {offset} out of range; allowed -2047..2047 ticks")
    return (abs(offset) & 0x7FF) | (0x800 if offset < 0 else 0)


def feetech_bus(port: str, baudrate: int = 1_000_000, serial_factory: SerialFactory | None = None) -> ServoBus:
    import scservo_sdk

    return ServoBus(scservo_sdk, scservo_sdk.PacketHandler(0), STS3215_TABLE, port, baudrate, serial_factory)
