"""Servo configuration at connect: operating mode, motion profile, homing offsets.

Each arm says which register values its servos need (``RegisterSetting``); ``apply_settings``
reads every one first and writes only those that differ. Why read first:

* EEPROM cells (operating mode, drive mode, homing offset) wear out after ~100 000 writes; an
  arm that reconnects every run would burn through them writing the same values.
* EEPROM can only be written with torque off, and torque off drops a WidowX or an SO-100
  under gravity. A setting that differs while a servo is torqued is therefore refused with a
  message saying what differs and what to do, never "fixed" by switching torque off.

The profile registers (RAM) are written from the arm spec: the servo's own trajectory
generator then limits the speed and acceleration toward any goal, so a stop that holds the
last commanded pose decelerates within ``spec.max_acceleration`` on the servo itself, even
when the host that sent the goals is gone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from vla_robot.robots.servo_bus import ControlTable, ServoBus
from vla_robot.robots.specs import RobotSpec


class ServoConfigError(RuntimeError):
    """A servo's EEPROM setting differs while its torque is on; the message says what to do."""


@dataclass(frozen=True)
class RegisterSetting:
    name: str
    address: int
    width: int
    value: int
    eeprom: bool = False
    mask: int | None = None  # only these bits are compared and written (read-modify-write)

    def wanted(self, present: int) -> int:
        if self.mask is None:
            return self.value
        return (present & ~self.mask) | (self.value & self.mask)


@dataclass(frozen=True)
class SettingWrite:
    servo_id: int
    name: str
    before: int
    after: int


EepromUnlock = Callable[[ServoBus, int, bool], None]  # (bus, servo id, unlocked?) around EEPROM writes


def apply_settings(bus: ServoBus, settings: dict[int, list[RegisterSetting]],
                   eeprom_unlock: EepromUnlock | None = None) -> list[SettingWrite]:
    """Write the settings that differ from the servos' present values; return what was written."""
    table = bus.table
    plan: list[tuple[RegisterSetting, SettingWrite]] = []
    for sid, regs in settings.items():
        torqued = None
        for reg in regs:
            present = bus.read(sid, reg.address, reg.width)
            wanted = reg.wanted(present)
            if present == wanted:
                continue
            if reg.eeprom:
                torqued = bus.read(sid, table.torque_enable, 1) if torqued is None else torqued
                if torqued:
                    raise ServoConfigError(
                        f"{table.family} id {sid}: {reg.name} is {present}, the arm needs {wanted}. It is an EEPROM "
                        "setting, written only with torque off, and torque off lets the arm fall: support the arm "
                        "(or put it in its sleep pose), switch torque off (arm node ~/torque false), then reconnect")
            plan.append((reg, SettingWrite(sid, reg.name, present, wanted)))
    for reg, write in plan:
        if reg.eeprom and eeprom_unlock is not None:
            eeprom_unlock(bus, write.servo_id, True)
        bus.write(write.servo_id, reg.address, write.after, reg.width)
        if reg.eeprom and eeprom_unlock is not None:
            eeprom_unlock(bus, write.servo_id, False)
    return [write for _, write in plan]


def profile_settings(table: ControlTable, spec: RobotSpec, servo_ids: list[int],
                     units_per_tick: list[float]) -> dict[int, list[RegisterSetting]]:
    """Profile velocity and acceleration of each servo from the spec's joint limits.

    ``units_per_tick`` is each joint's unit (rad, or metres for a gripper) per servo tick, so a
    prismatic gripper's m/s limit becomes the motor speed that moves the fingers that fast.
    """
    out: dict[int, list[RegisterSetting]] = {}
    if table.profile_velocity is None or table.profile_acceleration is None or not spec.max_acceleration:
        return out
    motor_rad_per_tick = 2 * math.pi / table.ticks_per_rev
    for sid, per_tick, vmax, amax in zip(servo_ids, units_per_tick, spec.max_velocity, spec.max_acceleration):
        scale = motor_rad_per_tick / abs(per_tick)  # joint unit -> motor rad
        (v_addr, v_width), (a_addr, a_width) = table.profile_velocity, table.profile_acceleration
        velocity = _raw(vmax * scale / table.profile_velocity_unit_rad_s, v_width)
        accel = _raw(amax * scale / table.profile_acceleration_unit_rad_s2, a_width)
        out[sid] = [RegisterSetting("profile velocity", v_addr, v_width, velocity),
                    RegisterSetting("profile acceleration", a_addr, a_width, accel)]
    return out


def _raw(value: float, width: int) -> int:
    """At least 1 (0 means "unlimited" on both families), at most what the register holds."""
    top = 254 if width == 1 else (1 << (8 * width - 1)) - 1
    return int(min(max(round(value), 1), top))


def merge(*parts: dict[int, list[RegisterSetting]]) -> dict[int, list[RegisterSetting]]:
    out: dict[int, list[RegisterSetting]] = {}
    for part in parts:
        for sid, regs in part.items():
            out.setdefault(sid, []).extend(regs)
    return out
