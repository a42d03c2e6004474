"""Build a Robot from a name and flat parameters (what a ROS node or CLI flag provides).

``port="virtual://"`` puts a byte-level virtual servo chain on the wire instead of a
USB adapter: a dry run of the real driver and SDK without hardware.
``port="twin"`` / ``"twin://so100?name=x"`` puts the real-time twin there: the same driver,
whose servos are the joints of a MuJoCo arm running on the wall clock (``sim.realtime``);
the running twin is ``robot.twin_host``.
"""

from __future__ import annotations

from typing import Any

ROBOT_KINDS = ("widowx", "so100", "sim")


def _virtual_factory(kind: str, ids):
    from vla_robot.robots.virtual_servos import virtual_chain

    chain = virtual_chain(kind, ids)
    return chain, (lambda port, baudrate: chain)


def is_twin_port(port: str) -> bool:
    """``twin``, ``twin?name=x`` or ``twin://ARM?...``: the real-time twin instead of a serial port."""
    return port == "twin" or port.startswith("twin://") or port.startswith("twin?")


def make_robot(kind: str, **params: Any):
    """``kind``: widowx | so100 | sim. Unknown parameters raise, naming the allowed ones."""
    if kind in ("widowx", "so100") and is_twin_port(str(params.get("port", ""))):
        from sim.realtime.robot import make_twin_robot

        _check(kind, params, {"port", "baudrate"} | ({"calibration_path"} if kind == "so100" else set()))
        return make_twin_robot(kind, **params)
    if kind == "widowx":
        from dataclasses import fields

        from vla_robot.robots.widowx import WidowX250, WidowXConfig

        allowed = {f.name for f in fields(WidowXConfig)}
        _check(kind, params, allowed)
        config = WidowXConfig(**params)
        factory = _virtual_factory("dynamixel", config.motor_ids)[1] if config.port.startswith("virtual://") else None
        return WidowX250(config, serial_factory=factory)
    if kind == "so100":
        from dataclasses import fields

        from vla_robot.robots.so100 import SO100Arm, SO100Config

        allowed = {f.name for f in fields(SO100Config)}
        _check(kind, params, allowed)
        config = SO100Config(**params)
        robot = SO100Arm(config)
        if config.port.startswith("virtual://"):
            robot = SO100Arm(config, serial_factory=_virtual_factory("feetech", robot.ids)[1])
        return robot
    if kind == "sim":
        from dataclasses import fields

        from sim import Twin, TwinConfig, TwinRobot

        _check(kind, params, {f.name for f in fields(TwinConfig)})
        return TwinRobot(Twin(TwinConfig(**params)))
    raise ValueError(f"unknown robot kind {kind!r}; choose one of {ROBOT_KINDS}")


def _check(kind: str, params: dict, allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(f"{kind}: unknown parameters {unknown}; allowed {sorted(allowed)}")
