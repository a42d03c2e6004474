"""Servo firmware for the real-time twin: what a Dynamixel X or a Feetech STS servo does with
its control table, expressed in the twin's joint units.

A ``TwinServo`` is one servo on the virtual bus: its control table (the bytes dynamixel_sdk or
scservo_sdk read and write) plus the firmware state the physics loop reads every servo period
(torque, operating mode, goal, profile, output limit) and writes back (present position,
velocity, output). The two families differ only in addresses, units and protection behaviour,
so each is one class of constants and conversions (``DynamixelX``, ``FeetechSTS``).

Where the behaviour comes from (ROBOTIS e-manual, XM430-W350 / XL430-W250 control tables;
Feetech STS memory table as lerobot's ``STS_SMS_SERIES_CONTROL_TABLE`` names it):

* Dynamixel: EEPROM (addresses < 64) is writable only with torque off (otherwise Access Error).
  Operating Mode (11): 0 current, 1 velocity, 3 position, 4 extended position, 5 current-based
  position, 16 PWM. Drive Mode (10) bit 0 reverses the direction, bit 2 makes the profile
  time-based (Profile Velocity/Acceleration are then the move and ramp times in ms). In
  position mode a Goal Position outside Min/Max Position Limit (52/48) is refused (Data Limit
  Error). **Overload**: the e-manual's Hardware Error Status (70) bit 5, "persistent load that
  exceeds the maximum output". Shutdown (63, default 0x34 = overload | electrical shock |
  overheating) selects the errors that switch the torque off; then Torque Enable reads 0, the
  motor output is 0 % and only a REBOOT instruction clears it. Every status packet carries the
  Alert bit (0x80) while an error is present. The twin counts "persistent" as the output at
  >= 95 % of its limit for ``overload_time_s`` (1 s; the e-manual gives no time).
* Feetech STS3215: Torque Enable 40, Acceleration 41 (x100 steps/s^2), Goal Position 42,
  Goal Time 44 (ms; in PWM mode the PWM, sign bit 10), Goal Speed 46 (steps/s, sign bit 15),
  Torque Limit 48 (per mille), Lock 55, Present Position/Speed/Load/Voltage/Temperature
  56/58/60/62/63, Status 65, Moving 66, Present Current 69. Mode 33: 0 position, 1 wheel
  (speed), 2 PWM. **Overload**: load above Overload Torque (36, % of max, default 80) for
  Protection Time (35, x10 ms, default 200 = 2 s) sets Status bit 5 (the ERRBIT_OVERLOAD of
  every status packet); if Unloading Condition (19, default 44) has bit 5, the output is then
  cut to Protective Torque (34, %, default 20) -- the arm droops but does not fall. The twin
  keeps that state until the torque is switched off and on again.

Not modelled: temperature (always 35 C), supply voltage (nominal), the PID gains (the MuJoCo
position actuator's gains stand in for them), indirect addresses, the shadow motors of the
WidowX shoulder and elbow (the driver never addresses them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vla_robot.robots.dynamixel_bus import XM430_TABLE
from vla_robot.robots.feetech_bus import STS3215_TABLE
from vla_robot.robots.virtual_servos import VirtualServo

INF = float("inf")
TICKS_PER_REV = 4096
RAD_PER_TICK = 2 * math.pi / TICKS_PER_REV


@dataclass(frozen=True)
class ServoMount:
    """Where a servo sits in the twin and how its encoder maps onto the joint.

    ``zero_ticks``/``units_per_tick`` map the servo's position *as it counts with its factory
    EEPROM* (``eeprom``: e.g. Drive Mode 1 on a servo mounted reversed; no homing offset) onto
    joint units (rad, or metres of finger travel for the WidowX gripper). Changing the drive
    direction or the homing offset later moves the reported position the way the real servo's does. ``max_effort`` is the stall output in joint units
    (the MJCF actuator's force limit), ``no_load_speed`` the speed at full PWM.
    """

    servo_id: int
    joint: int  # index in the arm spec's joint order
    zero_ticks: float
    units_per_tick: float
    max_effort: float
    no_load_speed: float
    model_number: int
    eeprom: dict[int, tuple[int, int]] = field(default_factory=dict)  # factory EEPROM: address -> (value, width)

    def ticks(self, q: float) -> float:
        return self.zero_ticks + q / self.units_per_tick

    def joint_value(self, ticks: float) -> float:
        return (ticks - self.zero_ticks) * self.units_per_tick

    def ticks_per_unit(self) -> float:
        return 1.0 / abs(self.units_per_tick)


@dataclass
class Drive:
    """What the servo's output stage does until the next servo period.

    ``position``: follow a profile toward ``target`` (joint units) within ``max_velocity`` /
    ``max_acceleration``, output limited to ``limit``. ``velocity``: ramp to ``target`` as a
    speed. ``effort``: output ``effort - damping * qd`` (PWM: the motor's back-EMF is the
    damping; current: none), limited to ``limit``. ``off``: no output at all.
    """

    kind: str
    target: float = 0.0
    max_velocity: float = INF
    max_acceleration: float = INF
    limit: float = 0.0
    effort: float = 0.0
    damping: float = 0.0


def _signed(raw: int, width: int) -> int:
    return raw - (1 << (8 * width)) if raw >= 1 << (8 * width - 1) else raw


def _sign_magnitude(raw: int, bit: int) -> int:
    magnitude = raw & ((1 << bit) - 1)
    return -magnitude if raw & (1 << bit) else magnitude


def _to_sign_magnitude(value: int, bit: int) -> int:
    return (min(abs(value), (1 << bit) - 1)) | ((1 << bit) if value < 0 else 0)


def _put_all(servo, values: dict[int, tuple[int, int]]) -> None:
    for address, (value, width) in values.items():
        servo.put(address, width, value)


class TwinServo(VirtualServo):
    """One servo of the twin: control table + firmware state shared with the physics loop."""

    def __init__(self, mount: ServoMount, family: "ServoFamily"):
        super().__init__(mount.servo_id, mount.model_number)
        self.mount = mount
        self.family = family
        self.powered = True
        self.hw_error = 0  # Dynamixel Hardware Error Status / Feetech Status bits
        self.shutdown = False  # Dynamixel: torque latched off until REBOOT
        self.protective = False  # Feetech: output cut to Protective Torque after an overload
        self.overload_s = 0.0  # how long the output has been at its limit
        # physical state, written by the physics loop after every servo period
        self.q = 0.0
        self.qd = 0.0
        self.output = 0.0  # joint units (N*m or N), what the servo applies, gravity compensation included
        self.traj_pos = 0.0  # the profile's position (joint units)
        self.traj_vel = 0.0
        self.profile: tuple[float, float] = (INF, INF)  # time-based Dynamixel profiles: fixed per goal
        self.clock_ms = 0  # the servo's realtime tick
        family.power_on(self)

    # -- views the physics uses -----------------------------------------------------------
    @property
    def torque_on(self) -> bool:
        return self.powered and bool(self.table[self.family.TORQUE_ENABLE]) and not self.shutdown

    def drive(self) -> Drive:
        return self.family.drive(self) if self.torque_on else Drive("off")

    def get(self, address: int, width: int) -> int:
        return int.from_bytes(self.table[address : address + width], "little")

    def put(self, address: int, width: int, value: int) -> None:
        self.table[address : address + width] = (int(value) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")

    def settle(self, q: float) -> None:
        """The profile starts where the horn is (torque on, reboot, episode reset)."""
        self.q, self.qd, self.traj_pos, self.traj_vel = q, 0.0, q, 0.0


class ServoFamily:
    """Register map and firmware behaviour of one servo family (subclasses hold the facts)."""

    layout = None
    TORQUE_ENABLE = 0
    EEPROM_END = 0
    overload_time_s = 1.0

    def power_on(self, servo: TwinServo) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self, servo: TwinServo, address: int, data: bytes) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def drive(self, servo: TwinServo) -> Drive:  # pragma: no cover - overridden
        raise NotImplementedError

    def refresh(self, servo: TwinServo) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def status_error(self, servo: TwinServo) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def overload_threshold(self, servo: TwinServo) -> tuple[float, float]:
        """(fraction of the output limit that counts as overloaded, seconds it must last); a
        fraction above 1 can never be reached."""
        return 0.95, self.overload_time_s

    def hold_here(self, servo: TwinServo) -> None:
        """Goal Position := Present Position (power-on, reboot, a teleported twin), so torque-on holds still."""
        self.refresh(servo)
        width = self.layout.position_bytes
        servo.put(self.layout.goal_position, width, servo.get(self.layout.present_position, width))

    def on_overload(self, servo: TwinServo) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def touches(self, address: int, width: int, register: int, register_width: int = 1) -> bool:
        return address < register + register_width and address + width > register


class DynamixelX(ServoFamily):
    """XM430-W350 (model 1020) and XL430-W250 (model 1060) on Protocol 2.0."""

    layout = XM430_TABLE
    MODEL_XM430_W350, MODEL_XL430_W250 = 1020, 1060
    DRIVE_MODE, OPERATING_MODE, HOMING_OFFSET, MOVING_THRESHOLD = 10, 11, 20, 24
    PWM_LIMIT, CURRENT_LIMIT, VELOCITY_LIMIT, MAX_POSITION, MIN_POSITION, SHUTDOWN = 36, 38, 44, 48, 52, 63
    TORQUE_ENABLE, HARDWARE_ERROR = 64, 70
    GOAL_PWM, GOAL_CURRENT, GOAL_VELOCITY, PROFILE_ACCELERATION, PROFILE_VELOCITY, GOAL_POSITION = 100, 102, 104, 108, 112, 116
    REALTIME_TICK, MOVING, MOVING_STATUS, PRESENT_PWM, PRESENT_CURRENT = 120, 122, 123, 124, 126
    PRESENT_VELOCITY, PRESENT_POSITION, VELOCITY_TRAJECTORY, POSITION_TRAJECTORY = 128, 132, 136, 140
    PRESENT_INPUT_VOLTAGE, PRESENT_TEMPERATURE = 144, 146
    EEPROM_END = 64
    MODES = {0: "current", 1: "velocity", 3: "position", 4: "extended_position", 5: "current_based_position", 16: "pwm"}
    XL430_MODES = (1, 3, 4, 16)
    OVERLOAD_BIT = 0x20
    ALERT = 0x80
    DATA_LIMIT_ERROR, ACCESS_ERROR = 0x06, 0x07
    VELOCITY_UNIT_TICKS = 0.229 / 60.0 * TICKS_PER_REV  # 0.229 rpm in ticks/s
    ACCELERATION_UNIT_TICKS = 214.577 / 3600.0 * TICKS_PER_REV  # 214.577 rev/min^2 in ticks/s^2
    CURRENT_UNIT_MA = 2.69
    STALL_CURRENT_MA = 2300.0  # XM430-W350 at 12 V
    PWM_FULL = 885

    # factory values (address: (value, width)) of the EEPROM and the RAM at power-on, XM430-W350 e-manual
    FACTORY_EEPROM = {6: (52, 1), 8: (3, 1), 9: (0, 1), 12: (255, 1), 13: (2, 1), 11: (3, 1), 24: (10, 4),
                      31: (80, 1), 32: (160, 2), 34: (95, 2), 36: (885, 2), 44: (200, 4), 48: (4095, 4),
                      52: (0, 4), 63: (0x34, 1)}
    XM430_EEPROM = {38: (1193, 2)}  # Current Limit (the XL430 has none)
    POWER_ON_RAM = {68: (2, 1), 76: (1920, 2), 78: (100, 2), 84: (800, 2), 100: (885, 2), 144: (120, 2), 146: (35, 1)}

    def power_on(self, servo: TwinServo) -> None:
        """Factory EEPROM (plus the arm's own settings in ``mount.eeprom``), RAM at its power-on values."""
        xm430 = servo.model_number == self.MODEL_XM430_W350
        if not any(servo.table[:self.EEPROM_END]):
            eeprom = {0: (servo.model_number, 2), 7: (servo.servo_id, 1), **self.FACTORY_EEPROM,
                      **(self.XM430_EEPROM if xm430 else {}), **servo.mount.eeprom}
            _put_all(servo, eeprom)
        servo.table[self.EEPROM_END:] = bytes(len(servo.table) - self.EEPROM_END)
        _put_all(servo, {**self.POWER_ON_RAM, **({self.GOAL_CURRENT: (servo.get(self.CURRENT_LIMIT, 2), 2)} if xm430 else {})})
        servo.hw_error, servo.shutdown, servo.overload_s = 0, False, 0.0
        self.hold_here(servo)

    # -- conversions between registers and joint units -------------------------------------
    def _direction(self, servo: TwinServo) -> int:
        """+1, or -1 when Drive Mode bit 0 differs from the factory setting the mount counts in."""
        factory = servo.mount.eeprom.get(self.DRIVE_MODE, (0, 1))[0] & 1
        return -1 if (servo.table[self.DRIVE_MODE] & 1) != factory else 1

    def _present_ticks(self, servo: TwinServo, q: float) -> float:
        d = self._direction(servo)
        return 2048 + d * (servo.mount.ticks(q) - 2048) + _signed(servo.get(self.HOMING_OFFSET, 4), 4)

    def _joint_of_goal(self, servo: TwinServo, goal: int) -> float:
        d = self._direction(servo)
        raw = 2048 + d * (goal - _signed(servo.get(self.HOMING_OFFSET, 4), 4) - 2048)
        return servo.mount.joint_value(raw)

    def _mode(self, servo: TwinServo) -> int:
        return servo.table[self.OPERATING_MODE]

    def _rate_limit(self, servo: TwinServo) -> float:
        """The servo's top speed in joint units/s: Velocity Limit, at most the no-load speed."""
        limit = servo.get(self.VELOCITY_LIMIT, 4) * self.VELOCITY_UNIT_TICKS / servo.mount.ticks_per_unit()
        return min(limit, servo.mount.no_load_speed) if limit > 0 else servo.mount.no_load_speed

    def _effort_limit(self, servo: TwinServo) -> float:
        """Current Limit (XM430) caps the output; 1193 units (3.2 A) is above the 2.3 A stall current."""
        limit = servo.mount.max_effort
        if servo.model_number == self.MODEL_XM430_W350:
            limit *= min(1.0, servo.get(self.CURRENT_LIMIT, 2) * self.CURRENT_UNIT_MA / self.STALL_CURRENT_MA)
        return limit

    def _velocity_profile(self, servo: TwinServo) -> tuple[float, float]:
        per_unit = servo.mount.ticks_per_unit()
        vel, acc = servo.get(self.PROFILE_VELOCITY, 4), servo.get(self.PROFILE_ACCELERATION, 4)
        v = vel * self.VELOCITY_UNIT_TICKS / per_unit if vel else INF
        a = acc * self.ACCELERATION_UNIT_TICKS / per_unit if acc else INF
        return min(v, self._rate_limit(servo)), a

    def _time_profile(self, servo: TwinServo, target: float) -> tuple[float, float]:
        """Drive Mode bit 2: Profile Velocity is the move time, Profile Acceleration the ramp time (ms)."""
        total, ramp = servo.get(self.PROFILE_VELOCITY, 4) / 1000.0, servo.get(self.PROFILE_ACCELERATION, 4) / 1000.0
        if total <= 0:
            return self._rate_limit(servo), INF
        ramp = min(ramp, total / 2)
        distance = abs(target - servo.traj_pos)
        v = distance / max(total - ramp, 1e-6)
        return min(max(v, 1e-9), self._rate_limit(servo)), (v / ramp if ramp > 0 else INF)

    # -- writes ---------------------------------------------------------------------------
    def write(self, servo: TwinServo, address: int, data: bytes) -> int:
        width = len(data)
        if address < self.EEPROM_END and servo.table[self.TORQUE_ENABLE]:
            return self.ACCESS_ERROR  # EEPROM is locked while the torque is on
        if self.touches(address, width, self.OPERATING_MODE):
            mode = data[self.OPERATING_MODE - address]
            allowed = self.XL430_MODES if servo.model_number == self.MODEL_XL430_W250 else tuple(self.MODES)
            if mode not in allowed:
                return self.DATA_LIMIT_ERROR
        if self.touches(address, width, self.GOAL_POSITION, 4) and self._mode(servo) == 3 and width >= 4:
            goal = _signed(int.from_bytes(data[self.GOAL_POSITION - address:self.GOAL_POSITION - address + 4], "little"), 4)
            if not servo.get(self.MIN_POSITION, 4) <= goal <= servo.get(self.MAX_POSITION, 4):
                return self.DATA_LIMIT_ERROR  # refused: position mode keeps goals within the limits
        was_on = servo.torque_on
        servo.table[address : address + width] = data
        if self.touches(address, width, self.TORQUE_ENABLE):
            if servo.shutdown:
                servo.table[self.TORQUE_ENABLE] = 0  # only a REBOOT re-arms a shut-down servo
            elif servo.torque_on and not was_on:
                servo.settle(servo.q)
        if self.touches(address, width, self.GOAL_POSITION, 4) and self.drive_mode_time_based(servo):
            servo.profile = self._time_profile(servo, self._joint_of_goal(servo, _signed(servo.get(self.GOAL_POSITION, 4), 4)))
        return 0

    def drive_mode_time_based(self, servo: TwinServo) -> bool:
        return bool(servo.table[self.DRIVE_MODE] & 0x04)

    def reboot(self, servo: TwinServo) -> None:
        """REBOOT instruction: RAM back to power-on values (torque off, errors cleared), EEPROM kept."""
        self.power_on(servo)
        servo.settle(servo.q)

    # -- output ---------------------------------------------------------------------------
    def drive(self, servo: TwinServo) -> Drive:
        mode, m = self._mode(servo), servo.mount
        limit = self._effort_limit(servo)
        if mode in (3, 4, 5):
            target = self._joint_of_goal(servo, _signed(servo.get(self.GOAL_POSITION, 4), 4))
            if mode == 5 and servo.model_number == self.MODEL_XM430_W350:
                limit = min(limit, m.max_effort * abs(_signed(servo.get(self.GOAL_CURRENT, 2), 2))
                            * self.CURRENT_UNIT_MA / self.STALL_CURRENT_MA)
            v, a = servo.profile if self.drive_mode_time_based(servo) else self._velocity_profile(servo)
            return Drive("position", target=target, max_velocity=v, max_acceleration=a, limit=limit)
        if mode == 1:
            speed = _signed(servo.get(self.GOAL_VELOCITY, 4), 4) * self.VELOCITY_UNIT_TICKS / m.ticks_per_unit()
            speed *= self._direction(servo) * math.copysign(1.0, m.units_per_tick)
            rate = self._rate_limit(servo)
            _, a = self._velocity_profile(servo)
            return Drive("velocity", target=max(-rate, min(rate, speed)), max_acceleration=a, limit=limit)
        sign = self._direction(servo) * math.copysign(1.0, m.units_per_tick)
        if mode == 0:
            amps = _signed(servo.get(self.GOAL_CURRENT, 2), 2) * self.CURRENT_UNIT_MA / self.STALL_CURRENT_MA
            return Drive("effort", effort=sign * amps * m.max_effort, limit=limit)
        pwm_limit = servo.get(self.PWM_LIMIT, 2)
        pwm = max(-pwm_limit, min(pwm_limit, _signed(servo.get(self.GOAL_PWM, 2), 2))) / self.PWM_FULL
        return Drive("effort", effort=sign * pwm * m.max_effort, damping=m.max_effort / m.no_load_speed, limit=limit)

    def on_overload(self, servo: TwinServo) -> None:
        servo.hw_error |= self.OVERLOAD_BIT
        if servo.table[self.SHUTDOWN] & self.OVERLOAD_BIT:
            servo.shutdown = True
            servo.table[self.TORQUE_ENABLE] = 0

    def status_error(self, servo: TwinServo) -> int:
        return self.ALERT if servo.hw_error else 0

    # -- reads ----------------------------------------------------------------------------
    def refresh(self, servo: TwinServo) -> None:
        m, put, d = servo.mount, servo.put, self._direction(servo)
        sign = d * math.copysign(1.0, m.units_per_tick)
        put(self.PRESENT_POSITION, 4, round(self._present_ticks(servo, servo.q)))
        put(self.POSITION_TRAJECTORY, 4, round(self._present_ticks(servo, servo.traj_pos)))
        per_unit = m.ticks_per_unit()
        put(self.PRESENT_VELOCITY, 4, round(sign * servo.qd * per_unit / self.VELOCITY_UNIT_TICKS))
        put(self.VELOCITY_TRAJECTORY, 4, round(sign * servo.traj_vel * per_unit / self.VELOCITY_UNIT_TICKS))
        fraction = sign * servo.output / m.max_effort if m.max_effort else 0.0
        if servo.model_number == self.MODEL_XM430_W350:
            put(self.PRESENT_CURRENT, 2, round(fraction * self.STALL_CURRENT_MA / self.CURRENT_UNIT_MA))
        else:  # XL430: Present Load in 0.1 % of the maximum output
            put(self.PRESENT_CURRENT, 2, round(max(-1.0, min(1.0, fraction)) * 1000))
        put(self.PRESENT_PWM, 2, round(max(-1.0, min(1.0, fraction)) * self.PWM_FULL))
        moving = abs(servo.qd) * per_unit > servo.get(self.MOVING_THRESHOLD, 4) * self.VELOCITY_UNIT_TICKS
        put(self.MOVING, 1, int(moving))
        in_position = abs(servo.traj_pos - servo.q) * per_unit < 20
        profile_busy = servo.traj_vel != 0.0
        put(self.MOVING_STATUS, 1, int(in_position) | (int(profile_busy) << 1))
        put(self.REALTIME_TICK, 2, servo.clock_ms % 32768)
        put(self.HARDWARE_ERROR, 1, servo.hw_error)


class FeetechSTS(ServoFamily):
    """STS3215 (model 777): the SO-100's servo, through scservo_sdk."""

    layout = STS3215_TABLE
    MODEL_STS3215 = 777
    MIN_ANGLE, MAX_ANGLE, MAX_TORQUE, UNLOADING_CONDITION = 9, 11, 16, 19
    HOMING_OFFSET, MODE, PROTECTIVE_TORQUE, PROTECTION_TIME, OVERLOAD_TORQUE = 31, 33, 34, 35, 36
    TORQUE_ENABLE, ACCELERATION, GOAL_POSITION, GOAL_TIME, GOAL_SPEED, TORQUE_LIMIT, LOCK = 40, 41, 42, 44, 46, 48, 55
    PRESENT_POSITION, PRESENT_SPEED, PRESENT_LOAD, PRESENT_VOLTAGE, PRESENT_TEMPERATURE = 56, 58, 60, 62, 63
    STATUS, MOVING, PRESENT_CURRENT = 65, 66, 69
    EEPROM_END = 40
    OVERLOAD_BIT = 0x20
    CURRENT_UNIT_MA = 6.5
    STALL_CURRENT_MA = 2700.0  # STS3215 at 7.4 V

    # factory values (address: (value, width)), STS memory table
    FACTORY_EEPROM = {0: (3, 1), 1: (10, 1), 6: (0, 1), 8: (1, 1), 9: (0, 2), 11: (4095, 2), 13: (70, 1),
                      14: (80, 1), 15: (40, 1), 16: (1000, 2), 19: (44, 1), 20: (47, 1), 21: (32, 1), 22: (32, 1),
                      34: (20, 1), 35: (200, 1), 36: (80, 1)}
    POWER_ON_RAM = {55: (1, 1), 62: (74, 1), 63: (35, 1)}

    def power_on(self, servo: TwinServo) -> None:
        if not any(servo.table[:self.EEPROM_END]):
            _put_all(servo, {3: (servo.model_number, 2), 5: (servo.servo_id, 1), **self.FACTORY_EEPROM,
                             **servo.mount.eeprom})
        servo.table[self.EEPROM_END:] = bytes(len(servo.table) - self.EEPROM_END)
        _put_all(servo, {**self.POWER_ON_RAM, self.TORQUE_LIMIT: (servo.get(self.MAX_TORQUE, 2), 2)})
        servo.hw_error, servo.protective, servo.overload_s = 0, False, 0.0
        self.hold_here(servo)

    def _offset(self, servo: TwinServo) -> int:
        return _sign_magnitude(servo.get(self.HOMING_OFFSET, 2), 11)

    def write(self, servo: TwinServo, address: int, data: bytes) -> int:
        was_on = servo.torque_on
        servo.table[address : address + len(data)] = data  # a locked EEPROM still takes RAM effect until power-off
        if self.touches(address, len(data), self.TORQUE_ENABLE):
            if not servo.torque_on:
                servo.protective, servo.hw_error = False, servo.hw_error & ~self.OVERLOAD_BIT
            elif not was_on:
                servo.settle(servo.q)
        return 0

    def drive(self, servo: TwinServo) -> Drive:
        m = servo.mount
        per_mille = min(servo.get(self.TORQUE_LIMIT, 2), servo.get(self.MAX_TORQUE, 2)) / 1000.0
        if servo.protective:
            per_mille = min(per_mille, servo.table[self.PROTECTIVE_TORQUE] / 100.0)
        limit = m.max_effort * per_mille
        speed = servo.get(self.GOAL_SPEED, 2)
        acc = servo.table[self.ACCELERATION]
        per_unit = m.ticks_per_unit()
        mode = servo.table[self.MODE]
        if mode == 0:
            goal = _sign_magnitude(servo.get(self.GOAL_POSITION, 2), 15)
            lo, hi = servo.get(self.MIN_ANGLE, 2), servo.get(self.MAX_ANGLE, 2)
            if hi > lo:
                goal = max(lo, min(hi, goal))  # the STS clamps a goal into its angle limits
            v = (speed & 0x7FFF) / per_unit if speed & 0x7FFF else m.no_load_speed
            a = acc * 100 / per_unit if acc else INF
            target = m.joint_value(goal + self._offset(servo))
            return Drive("position", target=target, max_velocity=min(v, m.no_load_speed), max_acceleration=a, limit=limit)
        sign = math.copysign(1.0, m.units_per_tick)
        if mode == 1:
            v = sign * _sign_magnitude(speed, 15) / per_unit
            return Drive("velocity", target=max(-m.no_load_speed, min(m.no_load_speed, v)),
                         max_acceleration=acc * 100 / per_unit if acc else INF, limit=limit)
        pwm = _sign_magnitude(servo.get(self.GOAL_TIME, 2), 10) / 1000.0
        return Drive("effort", effort=sign * pwm * m.max_effort, damping=m.max_effort / m.no_load_speed, limit=limit)

    def overload_threshold(self, servo: TwinServo) -> tuple[float, float]:
        full = servo.mount.max_effort
        limit = full * min(servo.get(self.TORQUE_LIMIT, 2), servo.get(self.MAX_TORQUE, 2)) / 1000.0
        return servo.table[self.OVERLOAD_TORQUE] / 100.0 * full / max(limit, 1e-9), servo.table[self.PROTECTION_TIME] * 0.01

    def on_overload(self, servo: TwinServo) -> None:
        servo.hw_error |= self.OVERLOAD_BIT
        if servo.table[self.UNLOADING_CONDITION] & self.OVERLOAD_BIT:
            servo.protective = True

    def status_error(self, servo: TwinServo) -> int:
        return servo.hw_error

    def refresh(self, servo: TwinServo) -> None:
        m, put = servo.mount, servo.put
        present = round(m.ticks(servo.q)) - self._offset(servo)
        put(self.PRESENT_POSITION, 2, _to_sign_magnitude(present, 15))
        sign = math.copysign(1.0, m.units_per_tick)
        put(self.PRESENT_SPEED, 2, _to_sign_magnitude(round(sign * servo.qd * m.ticks_per_unit()), 15))
        fraction = sign * servo.output / m.max_effort if m.max_effort else 0.0
        put(self.PRESENT_LOAD, 2, _to_sign_magnitude(round(max(-1.0, min(1.0, fraction)) * 1000), 10))
        put(self.PRESENT_CURRENT, 2, round(abs(fraction) * self.STALL_CURRENT_MA / self.CURRENT_UNIT_MA))
        put(self.MOVING, 1, int(abs(servo.qd) * m.ticks_per_unit() > 10))
        put(self.STATUS, 1, servo.hw_error)


DYNAMIXEL_X = DynamixelX()
FEETECH_STS = FeetechSTS()
