"""Any V4L2/USB camera (or a video file) through OpenCV's VideoCapture."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from vla_robot.cameras.errors import CameraDisconnected
from vla_robot.cameras.interface import CameraIntrinsics, Frame


@dataclass(frozen=True)
class OpenCVCameraConfig:
    source: str | int = 0  # /dev/videoN, an index, or a video file
    width: int = 640
    height: int = 480
    fps: float = 30.0
    fov_deg: float = 69.0  # horizontal field of view for nominal intrinsics when none are calibrated
    backend: str = "any"  # any | v4l2

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"opencv camera: width/height/fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.backend not in ("any", "v4l2"):
            raise ValueError(f"opencv camera: backend {self.backend!r}; allowed 'any' or 'v4l2'")


def nominal_intrinsics(width: int, height: int, fov_deg: float) -> CameraIntrinsics:
    f = (width / 2) / np.tan(np.deg2rad(fov_deg) / 2)
    return CameraIntrinsics(width, height, float(f), float(f), width / 2, height / 2)


class OpenCVCamera:
    """Frames are resized to the configured size if the device ignores the request.

    The device stamp is the capture's own position (``CAP_PROP_POS_MSEC``, the V4L2 buffer
    timestamp or the file's time) when it is meaningful, else the host time at grab.
    """

    def __init__(self, name: str, config: OpenCVCameraConfig | None = None,
                 capture_factory: Callable[..., object] | None = None):
        import cv2

        self._cv2 = cv2
        self.name = name
        self.config = config or OpenCVCameraConfig()
        self.intrinsics = nominal_intrinsics(self.config.width, self.config.height, self.config.fov_deg)
        self._factory = capture_factory or cv2.VideoCapture
        self._cap = None
        self._index = 0

    def connect(self) -> None:
        cv2, c = self._cv2, self.config
        source = int(c.source) if isinstance(c.source, str) and c.source.isdigit() else c.source
        args = (source, cv2.CAP_V4L2) if c.backend == "v4l2" else (source,)
        cap = self._factory(*args)
        if not cap.isOpened():
            raise CameraDisconnected(f"camera {self.name!r}: cannot open {c.source!r}")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width)
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        cap.set(cv2.CAP_PROP_FPS, c.fps)
        self._cap = cap

    def read(self, timeout: float = 1.0) -> Frame:
        if self._cap is None:
            raise CameraDisconnected(f"camera {self.name!r}: not connected")
        deadline = time.monotonic() + timeout
        ok, bgr = self._cap.read()
        receive = time.monotonic()
        if not ok or bgr is None:
            if receive > deadline:
                raise TimeoutError(f"camera {self.name!r}: no frame within {timeout:.2f}s")
            raise CameraDisconnected(f"camera {self.name!r}: read failed on {self.config.source!r} (unplugged?)")
        if bgr.shape[:2] != (self.config.height, self.config.width):
            bgr = self._cv2.resize(bgr, (self.config.width, self.config.height), interpolation=self._cv2.INTER_AREA)
        pos_ms = float(self._cap.get(self._cv2.CAP_PROP_POS_MSEC) or 0.0)
        self._index += 1
        stamp = pos_ms / 1000.0 if pos_ms > 0 else receive
        return Frame(color=self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB), stamp=stamp, receive_stamp=receive,
                     index=self._index)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
