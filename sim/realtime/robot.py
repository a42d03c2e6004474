"""The real drivers on the real-time twin: ``make_twin_robot("widowx", "twin://widowx250?name=x")``.

Returns the unmodified ``WidowX250`` / ``SO100Arm`` whose serial port is the twin's virtual
bus, with the running ``RealtimeTwin`` attached as ``robot.twin_host`` (its owner closes it).

How each servo sits on its joint (``ServoMount``) follows the drivers' own tick maps, i.e.
the arm as its maker sets it up: the WidowX with Interbotix's EEPROM (wx250s motor config:
ids 1, 2, 4, 6, 7, 8, 9; XM430-W350 up to the wrist angle, XL430-W250 for wrist rotate and
gripper; Velocity Limit 131; position limits = the spec's; the wrist-angle servo mounted
reversed with Drive Mode 1, so a driver that clears that bit sees the joint turn the wrong
way, as on the real arm), the SO-100 as its calibration file describes it (homing offsets are
the driver's to write).
"""

from __future__ import annotations

import math

from sim.arms import arm_model
from sim.config import TwinConfig
from sim.realtime.address import parse_twin_url
from sim.realtime.bus import twin_chain
from sim.realtime.physics import RealtimeTwin
from sim.realtime.servos import DYNAMIXEL_X, FEETECH_STS, RAD_PER_TICK, DynamixelX, ServoMount, TwinServo

XM430_W350_NO_LOAD = 46 / 60 * 2 * math.pi  # rad/s at 12 V
XL430_W250_NO_LOAD = 57 / 60 * 2 * math.pi
STS3215_NO_LOAD = math.radians(60) / 0.222  # 0.222 s/60 deg at 7.4 V
INTERBOTIX_REVERSED = {4}  # wrist_angle: Drive_Mode 1 in Interbotix's wx250s.yaml
INTERBOTIX_VELOCITY_LIMIT = 131


def widowx_mounts(config, forces: tuple[float, ...]) -> list[ServoMount]:
    from vla_robot.robots.widowx import widowx_joint_ticks

    mounts = []
    for i, jt in enumerate(widowx_joint_ticks(config)):
        xl430 = i >= 5
        speed = (XL430_W250_NO_LOAD if xl430 else XM430_W350_NO_LOAD) * abs(jt.units_per_tick) / RAD_PER_TICK
        eeprom = {DynamixelX.DRIVE_MODE: (int(i in INTERBOTIX_REVERSED), 1), DynamixelX.VELOCITY_LIMIT: (INTERBOTIX_VELOCITY_LIMIT, 4),
                  DynamixelX.MIN_POSITION: (jt.min_ticks, 4), DynamixelX.MAX_POSITION: (jt.max_ticks, 4)}
        mounts.append(ServoMount(
            servo_id=jt.servo_id, joint=i, zero_ticks=jt.zero_ticks, units_per_tick=jt.units_per_tick,
            max_effort=forces[i], no_load_speed=speed,
            model_number=DynamixelX.MODEL_XL430_W250 if xl430 else DynamixelX.MODEL_XM430_W350, eeprom=eeprom))
    return mounts


def so100_mounts(calibration: dict, forces: tuple[float, ...]) -> list[ServoMount]:
    from vla_robot.robots.specs import SO100

    mounts = []
    for i, name in enumerate(SO100.joint_names):
        m = calibration[name]
        sign = -1.0 if m.drive_mode else 1.0
        mounts.append(ServoMount(servo_id=m.id, joint=i, zero_ticks=2048 + m.homing_offset,
                                 units_per_tick=sign * RAD_PER_TICK, max_effort=forces[i],
                                 no_load_speed=STS3215_NO_LOAD, model_number=777))
    return mounts


def make_twin_robot(kind: str, port: str = "twin", baudrate: int = 1_000_000, calibration_path: str | None = None,
                    start: bool = True):
    """``kind``: widowx | so100 (the driver); ``port``: a twin address whose arm must match it."""
    address = parse_twin_url(port, default_arm={"widowx": "widowx250", "so100": "so100"}.get(kind))
    if address.driver_kind != kind:
        raise ValueError(f"port {port!r} is a {address.arm} twin, but robot is {kind!r}; use robot:="
                         f"{address.driver_kind} or port:=twin://{'so100' if kind == 'so100' else 'widowx250'}")
    config = TwinConfig(robot=address.arm, task=address.task, seed=address.seed, split=address.split,
                        n_cards=address.n_cards, layout_seed=address.layout_seed, cameras=())
    forces = arm_model(address.arm).actuator_forces
    if kind == "widowx":
        from vla_robot.robots.widowx import WidowX250, WidowXConfig

        driver_config = WidowXConfig(port=port, baudrate=baudrate)
        servos = [TwinServo(m, DYNAMIXEL_X) for m in widowx_mounts(driver_config, forces)]
        host = RealtimeTwin(config, servos, name=address.name, rate_factor=address.rate)
        chain = twin_chain(host)
        robot = WidowX250(driver_config, serial_factory=lambda _port, _baud: chain)
    else:
        from vla_robot.robots.so100 import SO100Arm, SO100Config

        driver_config = SO100Config(port=port, baudrate=baudrate, calibration_path=calibration_path or None)
        robot = SO100Arm(driver_config)  # reads the calibration: the twin's servos sit as it says
        servos = [TwinServo(m, FEETECH_STS) for m in so100_mounts(robot.calibration, forces)]
        host = RealtimeTwin(config, servos, name=address.name, rate_factor=address.rate)
        chain = twin_chain(host)
        robot = SO100Arm(driver_config, serial_factory=lambda _port, _baud: chain)
    robot.twin_host = host
    if start:
        host.start()
    return robot
