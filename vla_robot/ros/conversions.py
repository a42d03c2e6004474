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
from vla_robot.ros.decode import (SUPPORTED_ENCODINGS, MessageError, depth_from_msg, from_time,  # noqa: F401
                                  image_from_msg, joint_positions_from_msg, targets_from_trajectory)


def to_time(seconds: float) -> Time:
    sec = math.floor(seconds)
    return Time(sec=int(sec), nanosec=int(round((seconds - sec) * 1e9)) % 1_000_000_000)


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


def depth_to_msg(depth_mm: np.ndarray, stamp: float, frame_id: str) -> Image:
    return _image_msg(np.ascontiguousarray(depth_mm, dtype=np.uint16), stamp, frame_id, "16UC1", 2)


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
