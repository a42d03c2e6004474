"""Decode incoming ROS messages into numpy, with errors that say what was wrong. No ROS import.

The functions only read message fields (``header.stamp``, ``encoding``, ``data``, ``name``,
``position``, ...), so they decode rclpy messages in the nodes and the messages that
``rosbags`` deserialises from a bag alike: a bag import and a live recording go through the
same checks. Inputs are untrusted: a wrong encoding, a size that does not match the declared
one, unknown joint names or a NaN raise ``MessageError``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

SUPPORTED_ENCODINGS = ("rgb8", "bgr8")


class MessageError(ValueError):
    """A message that cannot be used; the text names the field and what was expected."""


def from_time(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def image_from_msg(msg, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
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


def depth_from_msg(msg, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
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


def joint_positions_from_msg(msg, names: Sequence[str], allow_extra: bool = False) -> np.ndarray:
    """Positions in ``names`` order from a JointState with any joint order.

    ``allow_extra``: ignore joints that are not the arm's (a measurement may carry more: Interbotix'
    xs_sdk adds ``left_finger`` / ``right_finger``); a command never may (the arm node keeps False)."""
    return _reorder(msg.name, msg.position, names, "JointState", allow_extra)


def targets_from_trajectory(msg, names: Sequence[str]) -> np.ndarray:
    """The trajectory's final point as joint targets (streaming teleop sends one point)."""
    if not msg.points:
        raise MessageError("JointTrajectory has no points")
    return _reorder(msg.joint_names, msg.points[-1].positions, names, "JointTrajectory")


def compressed_image_from_msg(msg, expected_hw: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 HxWx3 RGB from a sensor_msgs/CompressedImage holding JPEG or PNG (image_transport's ``compressed``).

    image_transport writes the format as e.g. ``"bgr8; jpeg compressed bgr8"``: a JPEG decodes
    to RGB whatever the source order, a PNG keeps the channel order it was given, so a PNG of
    a bgr8 image is swapped back here.
    """
    import imagecodecs

    fmt = msg.format.lower()
    data = bytes(msg.data)
    try:
        if "png" in fmt:
            image = imagecodecs.png_decode(data)
            if fmt.split(";")[0].strip() in ("bgr8", "bgra8") and image.ndim == 3:
                image = image[..., 2::-1] if image.shape[2] == 4 else image[..., ::-1]
        elif "jpeg" in fmt or "jpg" in fmt or not fmt:
            image = imagecodecs.jpeg8_decode(data)
        else:
            raise MessageError(f"compressed image format {msg.format!r} not supported; send JPEG or PNG")
    except MessageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any codec failure is a bad message
        raise MessageError(f"compressed image ({msg.format or 'no format'}, {len(data)} bytes) does not decode: {exc}") from None
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    image = np.ascontiguousarray(image[..., :3])
    if expected_hw is not None and image.shape[:2] != tuple(expected_hw):
        raise MessageError(f"image is {image.shape[1]}x{image.shape[0]}, expected {expected_hw[1]}x{expected_hw[0]}")
    return image
