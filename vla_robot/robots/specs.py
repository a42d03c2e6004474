"""Kinematic facts about the supported arms: the single source of truth.

The MJCF twin, the hardware drivers, the safety layer and the dataset metadata all read
these numbers, so a limit is written exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RobotSpec:
    name: str
    joint_names: tuple[str, ...]  # arm joints then the gripper, in command order
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    max_velocity: tuple[float, ...]  # rad/s (or m/s for a prismatic gripper)
    home: tuple[float, ...]
    gripper_open: float
    gripper_closed: float
    # rad/s^2 (m/s^2 for a prismatic gripper). Written to the servos' profile acceleration at
    # connect, so every stop (e-stop, stop, watchdog hold) decelerates within it on the servo itself.
    max_acceleration: tuple[float, ...] = ()
    # Where torque may go off: folded onto its rests, so nothing falls (Interbotix's sleep pose).
    sleep: tuple[float, ...] = ()

    @property
    def dof(self) -> int:
        return len(self.joint_names)

    @property
    def arm_dof(self) -> int:
        return len(self.joint_names) - 1

    @property
    def lower_array(self) -> np.ndarray:
        return np.asarray(self.lower, dtype=np.float64)

    @property
    def upper_array(self) -> np.ndarray:
        return np.asarray(self.upper, dtype=np.float64)

    @property
    def max_velocity_array(self) -> np.ndarray:
        return np.asarray(self.max_velocity, dtype=np.float64)

    @property
    def max_acceleration_array(self) -> np.ndarray:
        return np.asarray(self.max_acceleration, dtype=np.float64)

    def __post_init__(self) -> None:
        for name in ("lower", "upper", "max_velocity", "home", "max_acceleration", "sleep"):
            value = getattr(self, name)
            if value and len(value) != len(self.joint_names):
                raise ValueError(f"{self.name}: {name} has {len(value)} values for {len(self.joint_names)} joints")


WIDOWX_250 = RobotSpec(
    name="widowx250",
    joint_names=("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"),
    lower=(-3.14, -1.885, -2.147, -3.14, -1.745, -3.14, 0.015),
    upper=(3.14, 1.990, 1.606, 3.14, 2.147, 3.14, 0.037),
    max_velocity=(3.14, 3.14, 3.14, 3.14, 3.14, 3.14, 0.1),
    home=(0.0, -0.6, 0.6, 0.0, 1.2, 0.0, 0.037),
    gripper_open=0.037,
    gripper_closed=0.015,
    max_acceleration=(10.0, 10.0, 10.0, 10.0, 10.0, 10.0, 0.5),
    sleep=(0.0, -1.80, 1.55, 0.0, 0.8, 0.0, 0.037),  # Interbotix wx250(s) sleep_positions, gripper open
)

SO100 = RobotSpec(
    name="so100",
    joint_names=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"),
    lower=(-1.92, -3.32, -0.17, -1.66, -2.79, -0.17),
    upper=(1.92, 0.17, 3.14, 1.66, 2.79, 1.75),
    max_velocity=(3.0, 3.0, 3.0, 3.0, 3.0, 3.0),
    home=(0.0, -1.57, 1.57, 0.0, 0.0, 0.0),
    gripper_open=1.0,
    gripper_closed=-0.1,
    max_acceleration=(10.0, 10.0, 10.0, 10.0, 10.0, 10.0),
    sleep=(0.0, -1.57, 1.57, 0.0, 0.0, 0.0),  # folded onto its own base (lerobot's rest pose)
)

ROBOT_SPECS: dict[str, RobotSpec] = {spec.name: spec for spec in (WIDOWX_250, SO100)}


def get_robot_spec(name: str) -> RobotSpec:
    try:
        return ROBOT_SPECS[name]
    except KeyError:
        raise ValueError(f"unknown robot {name!r}; choose one of {sorted(ROBOT_SPECS)}") from None
