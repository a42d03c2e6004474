"""SO-100 calibration files, in the spirit of lerobot's: one JSON object per motor.

Format (``so100_follower.json``)::

    {"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -12,
                      "range_min": 700, "range_max": 3400}, ...}

``homing_offset`` is written to the servo so that Present_Position reads 2048 at the
joint's zero pose; ``drive_mode`` 1 reverses the direction; ``range_min/max`` bound
every goal in ticks (after the offset).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from vla_robot.robots.specs import RobotSpec

_FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


@dataclass(frozen=True)
class MotorCalibration:
    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int

    def validate(self, joint: str) -> None:
        if not 0 <= self.id <= 252:
            raise ValueError(f"calibration {joint!r}: id {self.id} out of range; allowed 0..252")
        if self.drive_mode not in (0, 1):
            raise ValueError(f"calibration {joint!r}: drive_mode {self.drive_mode}; allowed 0 or 1")
        if not -2047 <= self.homing_offset <= 2047:
            raise ValueError(f"calibration {joint!r}: homing_offset {self.homing_offset}; allowed -2047..2047")
        if not 0 <= self.range_min < self.range_max <= 4095:
            raise ValueError(
                f"calibration {joint!r}: range_min {self.range_min} / range_max {self.range_max}; "
                "need 0 <= range_min < range_max <= 4095"
            )


def default_calibration(spec: RobotSpec) -> dict[str, MotorCalibration]:
    """Ids 1..n in joint order, no offset, full range: a starting point before calibrating."""
    return {name: MotorCalibration(i + 1, 0, 0, 0, 4095) for i, name in enumerate(spec.joint_names)}


def load_calibration(path: str | Path, spec: RobotSpec) -> dict[str, MotorCalibration]:
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"calibration file {path} not found; write one with save_calibration()") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"calibration file {path} is not valid JSON: {exc}") from None
    missing = [j for j in spec.joint_names if j not in raw]
    unknown = [j for j in raw if j not in spec.joint_names]
    if missing or unknown:
        raise ValueError(f"calibration file {path}: missing joints {missing}, unknown joints {unknown}; "
                         f"expected {list(spec.joint_names)}")
    out = {}
    for joint in spec.joint_names:
        entry = raw[joint]
        absent = [f for f in _FIELDS if f not in entry]
        if absent:
            raise ValueError(f"calibration file {path}: joint {joint!r} lacks {absent}; fields are {list(_FIELDS)}")
        motor = MotorCalibration(**{f: int(entry[f]) for f in _FIELDS})
        motor.validate(joint)
        out[joint] = motor
    ids = [m.id for m in out.values()]
    if len(set(ids)) != len(ids):
        raise ValueError(f"calibration file {path}: duplicate motor ids {ids}")
    return out


def save_calibration(path: str | Path, calibration: dict[str, MotorCalibration]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps({k: asdict(v) for k, v in calibration.items()}, indent=2) + "\n")
