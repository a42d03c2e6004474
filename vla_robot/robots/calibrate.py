"""Write an SO-100 calibration file by hand-guiding the arm (torque off).

    python -m vla_robot.robots.calibrate --port /dev/ttyACM0 --out ~/.config/vla_robot/so100_follower.json

1. Put the arm in its zero pose (the URDF zero: straight up, gripper closed) and press Enter:
   each joint's homing offset is set so that it reads 2048 there.
2. Move every joint through its whole range, then press Enter: the extremes seen become
   range_min / range_max (with a small margin).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from vla_robot.robots.calibration import MotorCalibration, save_calibration
from vla_robot.robots.feetech_bus import STS3215_LOCK, STS3215_TABLE, encode_homing_offset, feetech_bus
from vla_robot.robots.servo_bus import ServoBus
from vla_robot.robots.specs import SO100


def zero_offsets(bus: ServoBus, ids: list[int]) -> dict[int, int]:
    """Homing offsets that make the present pose read 2048 (written to the servos)."""
    bus.set_torque(ids, False)
    for sid in ids:  # read raw positions with no offset applied
        bus.write(sid, STS3215_LOCK, 0, 1)
        bus.write(sid, STS3215_TABLE.homing_offset, 0, 2)
    raw = bus.read_positions(ids)
    offsets = {sid: raw[sid] - 2048 for sid in ids}
    for sid, off in offsets.items():
        bus.write(sid, STS3215_TABLE.homing_offset, encode_homing_offset(off), 2)
        bus.write(sid, STS3215_LOCK, 1, 1)
    return offsets


def sample_ranges(bus: ServoBus, ids: list[int], stop: threading.Event, period_s: float = 0.02,
                  margin: int = 10) -> dict[int, tuple[int, int]]:
    """Min/max present position of each servo until ``stop`` is set (the operator moves the joints)."""
    lo = {sid: 4095 for sid in ids}
    hi = {sid: 0 for sid in ids}
    while True:
        for sid, pos in bus.read_positions(ids).items():
            lo[sid], hi[sid] = min(lo[sid], pos), max(hi[sid], pos)
        if stop.is_set():
            break
        time.sleep(period_s)
    return {sid: (max(0, lo[sid] + margin), min(4095, hi[sid] - margin)) for sid in ids}


def calibration_from(offsets: dict[int, int], ranges: dict[int, tuple[int, int]],
                     drive_modes: dict[int, int] | None = None) -> dict[str, MotorCalibration]:
    out = {}
    for i, name in enumerate(SO100.joint_names):
        sid = i + 1
        lo, hi = ranges[sid]
        if hi <= lo:
            raise ValueError(f"joint {name!r} (id {sid}) did not move during range sampling; move it end to end")
        out[name] = MotorCalibration(sid, (drive_modes or {}).get(sid, 0), offsets[sid], lo, hi)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", required=True, help="serial port of the arm, e.g. /dev/ttyACM0")
    parser.add_argument("--out", required=True, help="calibration JSON to write")
    parser.add_argument("--baudrate", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    ids = list(range(1, SO100.dof + 1))
    bus = feetech_bus(args.port, args.baudrate)
    bus.open()
    for sid in ids:
        bus.ping(sid)
    input("Put the arm in its zero pose and press Enter...")
    offsets = zero_offsets(bus, ids)
    stop = threading.Event()
    print("Move every joint through its whole range; press Enter when done.")
    threading.Thread(target=lambda: (input(), stop.set()), daemon=True).start()
    calibration = calibration_from(offsets, sample_ranges(bus, ids, stop))
    save_calibration(Path(args.out).expanduser(), calibration)
    bus.close()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
