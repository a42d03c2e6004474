"""Standard ROS message <-> numpy conversions, with errors that say what was wrong.

Inputs from the wire are untrusted: a wrong encoding, a size that does not match the
declared one, unknown joint names or a NaN raise ``MessageError`` so a node can count it,
log it and carry on.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from vla_robot.cameras.interface import CameraIntrinsics

SUPPORTED_ENCODINGS = ("rgb8", "bgr8")


class MessageError(ValueError):
    """A message that cannot be used; the text names the field and what was expected."""


def to_time(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


def from_time(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def _stamped(msg, stamp: float, frame_id: str):
    msg.header.stamp = to_time(stamp)
    msg.header.frame_id = frame_id
    return msg


def _image_msg(pixels: np.ndarray, stamp: float, frame_id: str, encoding: str, pixel_bytes: int) -> Image:
    """A little-endian Image of contiguous ``pixels`` (rows first), ``pixel_bytes`` per pixel."""
    msg = _stamped(Image(), stamp, frame_id)
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = encoding, 0, msg.width * pixel_bytes
    msg.data = pixels.tobytes()
    return msg


def image_to_msg(rgb: np.ndarray, stamp: float, frame_id: str) -> Image:
    return _image_msg(np.ascontiguousarray(rgb, dtype=np.uint8), stamp, frame_id, "rgb8", 3)


def image_from_msg(msg: Image, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 HxWx3 RGB from an rgb8/bgr8 Image; anything else raises ``MessageError``."""
    if msg.encoding not in SUPPORTED_ENCODINGS:
        raise MessageError(f"image encoding {msg.encoding!r} not supported; send one of {SUPPORTED_ENCODINGS}")
    if expected_hw is not None and (msg.height, msg.width) != tuple(expected_hw):
        raise MessageError(f"image is {msg.width}x{msg.height}, expected {expected_hw[1]}x{expected_hw[0]}")
    if msg.step < msg.width * 3 or len(msg.data) != msg.step * msg.height:
        raise MessageError(f"image data is {len(msg.data)} bytes; {msg.height} rows of step {msg.step} "
                           f"(>= {msg.width * 3}) were declared")
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    rgb = rows[:, : msg.width * 3].reshape(msg.height, msg.width, 3)
    return rgb[..., ::-1].copy() if msg.encoding == "bgr8" else rgb.copy()


def depth_to_msg(depth_mm: np.ndarray, stamp: float, frame_id: str) -> Image:
    return _image_msg(np.ascontiguousarray(depth_mm, dtype=np.uint16), stamp, frame_id, "16UC1", 2)


def depth_from_msg(msg: Image, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """uint16 HxW millimetres from a little-endian 16UC1 Image; anything else raises ``MessageError``."""
    if msg.encoding not in ("16UC1", "mono16") or msg.is_bigendian:
        raise MessageError(f"depth encoding {msg.encoding!r} (big-endian={bool(msg.is_bigendian)}) not supported; "
                           "send little-endian 16UC1 in millimetres")
    if expected_hw is not None and (msg.height, msg.width) != tuple(expected_hw):
        raise MessageError(f"depth image is {msg.width}x{msg.height}, expected {expected_hw[1]}x{expected_hw[0]}")
    if msg.step < msg.width * 2 or len(msg.data) != msg.step * msg.height:
        raise MessageError(f"depth data is {len(msg.data)} bytes; {msg.height} rows of step {msg.step} were declared")
    rows = np.frombuffer(msg.data, dtype="<u2", count=msg.height * msg.step // 2).reshape(msg.height, msg.step // 2)
    return rows[:, : msg.width].copy()


def compressed_image_msg(rgb: np.ndarray, stamp: float, frame_id: str, quality: int = 80) -> CompressedImage:
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise MessageError("JPEG encoding failed")
    msg = _stamped(CompressedImage(), stamp, frame_id)
    msg.format = "jpeg"
    msg.data = buf.tobytes()
    return msg


def camera_info_msg(intr: CameraIntrinsics, stamp: float, frame_id: str) -> CameraInfo:
    msg = _stamped(CameraInfo(), stamp, frame_id)
    msg.width, msg.height = intr.width, intr.height
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [intr.fx, 0.0, intr.cx, 0.0, intr.fy, intr.cy, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx, 0.0, intr.cx, 0.0, 0.0, intr.fy, intr.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def joint_state_msg(names: Sequence[str], positions, velocities, stamp: float) -> JointState:
    msg = JointState()
    msg.header.stamp = to_time(stamp)
    msg.name = list(names)
    msg.position = [float(v) for v in positions]
    msg.velocity = [float(v) for v in velocities] if velocities is not None else []
    return msg


def _reorder(names_in: Sequence[str], values: Sequence[float], names: Sequence[str], what: str,
             allow_extra: bool = False) -> np.ndarray:
    unknown = [n for n in names_in if n not in names]
    if unknown and not allow_extra:
        raise MessageError(f"{what}: unknown joint names {unknown}; this arm has {list(names)}")
    if len(values) != len(names_in):
        raise MessageError(f"{what}: {len(names_in)} names but {len(values)} values")
    lookup = dict(zip(names_in, values))
    missing = [n for n in names if n not in lookup]
    if missing:
        raise MessageError(f"{what}: missing joints {missing}; send all of {list(names)}")
    out = np.array([lookup[n] for n in names], dtype=np.float64)
    if not np.all(np.isfinite(out)):
        bad = [n for n, v in zip(names, out) if not np.isfinite(v)]
        raise MessageError(f"{what}: non-finite values for joints {bad}")
    return out


def joint_positions_from_msg(msg: JointState, names: Sequence[str], allow_extra: bool = False) -> np.ndarray:
    """Positions in ``names`` order from a JointState with any joint order.

    ``allow_extra``: ignore joints that are not the arm's (a measurement may carry more: Interbotix'
    xs_sdk adds ``left_finger`` / ``right_finger``); a command never may (the arm node keeps False)."""
    return _reorder(msg.name, msg.position, names, "JointState", allow_extra)


def trajectory_msg(names: Sequence[str], positions, stamp: float, time_from_start: float = 0.0) -> JointTrajectory:
    msg = JointTrajectory()
    msg.header.stamp = to_time(stamp)
    msg.joint_names = list(names)
    point = JointTrajectoryPoint()
    point.positions = [float(v) for v in positions]
    point.time_from_start.sec = int(time_from_start)
    point.time_from_start.nanosec = int((time_from_start % 1) * 1e9)
    msg.points = [point]
    return msg


def targets_from_trajectory(msg: JointTrajectory, names: Sequence[str]) -> np.ndarray:
    """The trajectory's final point as joint targets (streaming teleop sends one point)."""
    if not msg.points:
        raise MessageError("JointTrajectory has no points")
    return _reorder(msg.joint_names, msg.points[-1].positions, names, "JointTrajectory")
