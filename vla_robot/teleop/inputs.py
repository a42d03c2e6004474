"""Operator inputs -> a normalised twist: gamepad/spacemouse (sensor_msgs/Joy layout), keyboard."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Twist6:
    linear: np.ndarray  # x, y, z in [-1, 1]
    angular: np.ndarray  # roll, pitch, yaw in [-1, 1]
    gripper: float  # -1 close .. +1 open (rate)


@dataclass(frozen=True)
class JoyMapping:
    """Axis and button indices of a ``sensor_msgs/Joy`` message (defaults: an Xbox-style pad).

    ``deadman_button`` must be held for any motion (-1 disables it); negative axis indices are unused.
    """

    linear_axes: tuple[int, int, int] = (1, 0, 4)
    angular_axes: tuple[int, int, int] = (-1, -1, 3)
    linear_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)
    angular_signs: tuple[float, float, float] = (1.0, 1.0, 1.0)
    gripper_open_button: int = 1
    gripper_close_button: int = 0
    deadman_button: int = 5
    deadzone: float = 0.1

    def twist(self, axes, buttons) -> Twist6:
        def axis(i: int, sign: float) -> float:
            if i < 0 or i >= len(axes):
                return 0.0
            v = float(axes[i])
            return 0.0 if abs(v) < self.deadzone or not np.isfinite(v) else sign * v

        def pressed(i: int) -> bool:
            return 0 <= i < len(buttons) and bool(buttons[i])

        if self.deadman_button >= 0 and not pressed(self.deadman_button):
            return Twist6(np.zeros(3), np.zeros(3), 0.0)
        lin = np.array([axis(i, s) for i, s in zip(self.linear_axes, self.linear_signs)])
        ang = np.array([axis(i, s) for i, s in zip(self.angular_axes, self.angular_signs)])
        grip = 1.0 if pressed(self.gripper_open_button) else -1.0 if pressed(self.gripper_close_button) else 0.0
        return Twist6(lin, ang, grip)


KEYBOARD_BINDINGS: dict[str, tuple[str, int, float]] = {
    # key: (part, index, sign)
    "w": ("linear", 0, 1.0), "s": ("linear", 0, -1.0),
    "a": ("linear", 1, 1.0), "d": ("linear", 1, -1.0),
    "r": ("linear", 2, 1.0), "f": ("linear", 2, -1.0),
    "q": ("angular", 2, 1.0), "e": ("angular", 2, -1.0),
    "o": ("gripper", 0, 1.0), "c": ("gripper", 0, -1.0),
}


def keyboard_twist(key: str) -> Twist6 | None:
    """One key press -> a twist for one control period; None for an unbound key."""
    binding = KEYBOARD_BINDINGS.get(key.lower())
    if binding is None:
        return None
    part, index, sign = binding
    lin, ang, grip = np.zeros(3), np.zeros(3), 0.0
    if part == "linear":
        lin[index] = sign
    elif part == "angular":
        ang[index] = sign
    else:
        grip = sign
    return Twist6(lin, ang, grip)
