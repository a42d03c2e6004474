"""Gamepad buttons -> episode commands, so an operator with both hands on the teleop's gamepad can
start, save (success / failure) and discard without reaching for a keyboard.

Only the rising edge of a button acts (a held button fires once, however many ``sensor_msgs/Joy``
messages repeat it), and the first message only sets the baseline (a button already held when the
gamepad connects does nothing).

Default buttons, in the Xbox layout of the Linux ``joy_node`` that the teleop's defaults use
(``vla_robot.teleop.inputs.JoyMapping``: axes 0/1/3/4 = sticks, buttons 0 A / 1 B = gripper close /
open, 5 RB = deadman): **7 Start = start**, **3 Y = save as success**, **2 X = save as failure**,
**6 Back = discard**. None of them is the deadman or a gripper button; LB (4) stays free. The SDL
``game_controller_node`` numbers buttons differently (A 0, B 1, X 2, Y 3, Back 4, Guide 5, Start 6,
LB 9, RB 10): set the ``joy_*_button`` parameters of the recorder and the teleop's to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

ACTIONS = ("start", "save_success", "save_failure", "discard")


@dataclass(frozen=True)
class GamepadButtons:
    """Button index per episode command; -1 switches a command off."""

    start: int = 7
    save_success: int = 3
    save_failure: int = 2
    discard: int = 6

    def __post_init__(self) -> None:
        used = [v for v in self.as_dict().values() if v >= 0]
        for name, value in self.as_dict().items():
            if not isinstance(value, int) or value < -1:
                raise ValueError(f"gamepad button for {name} must be an index >= 0 or -1 (off), got {value!r}")
        if len(set(used)) != len(used):
            raise ValueError(f"gamepad buttons must differ, got {self.as_dict()}")

    def as_dict(self) -> dict[str, int]:
        return {a: getattr(self, a) for a in ACTIONS}

    def collisions(self, reserved: dict[str, int]) -> list[str]:
        """Commands whose button is also one of ``reserved`` (e.g. the teleop's deadman and gripper)."""
        return [f"{a} = button {b} = {r}" for a, b in self.as_dict().items() for r, rb in reserved.items()
                if b >= 0 and b == rb]


class GamepadEpisodeControl:
    """Feed it each Joy message's ``buttons``; it returns the commands whose button was just pressed."""

    def __init__(self, buttons: GamepadButtons | None = None):
        self.buttons = buttons or GamepadButtons()
        self._previous: list[bool] | None = None

    def update(self, pressed: Sequence[int]) -> list[str]:
        now = [bool(b) for b in pressed]
        previous, self._previous = self._previous, now
        if previous is None:
            return []
        out = []
        for action, index in self.buttons.as_dict().items():
            if 0 <= index < len(now) and now[index] and not (index < len(previous) and previous[index]):
                out.append(action)
        return out
