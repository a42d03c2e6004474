"""Intel RealSense colour (and optional depth aligned to colour) through pyrealsense2.

``playback_file`` replays a RealSense recording through the same pipeline code path as a
live device; CI uses it with a recording made by ``rs.software_device``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from vla_robot.cameras.errors import CameraDisconnected
from vla_robot.cameras.interface import CameraIntrinsics, Frame


@dataclass(frozen=True)
class RealSenseConfig:
    serial: str = ""  # empty: the first device found
    width: int = 640
    height: int = 480
    fps: int = 30
    depth: bool = False
    exposure_us: float = 0.0  # 0: auto exposure
    playback_file: str = ""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.fps <= 0:
            raise ValueError(f"realsense: width/height/fps must be positive, got {self.width}x{self.height}@{self.fps}")
        if self.exposure_us < 0:
            raise ValueError(f"realsense: exposure_us {self.exposure_us} must be >= 0 (0 = auto)")


class RealSenseCamera:
    def __init__(self, name: str, config: RealSenseConfig | None = None):
        import pyrealsense2 as rs

        self._rs = rs
        self.name = name
        self.config = config or RealSenseConfig()
        c = self.config
        self.intrinsics = CameraIntrinsics(c.width, c.height, float(c.width), float(c.width), c.width / 2, c.height / 2)
        self.serial = c.serial
        self._pipeline = None
        self._align = None
        self._last_number = None
        self.depth_scale_m = 0.001

    def connect(self) -> None:
        rs, c = self._rs, self.config
        rs_config = rs.config()
        if c.playback_file:
            rs_config.enable_device_from_file(c.playback_file, repeat_playback=False)
            rs_config.enable_stream(rs.stream.color)
            if c.depth:
                rs_config.enable_stream(rs.stream.depth)
        else:
            if c.serial:
                rs_config.enable_device(c.serial)
            rs_config.enable_stream(rs.stream.color, c.width, c.height, rs.format.rgb8, c.fps)
            if c.depth:
                rs_config.enable_stream(rs.stream.depth, c.width, c.height, rs.format.z16, c.fps)
        pipeline = rs.pipeline()
        try:
            profile = pipeline.start(rs_config)
        except RuntimeError as exc:
            raise CameraDisconnected(f"camera {self.name!r}: cannot start RealSense {c.serial or c.playback_file or '(any)'}: {exc}") from None
        device = profile.get_device()
        self.serial = device.get_info(rs.camera_info.serial_number)
        if not c.playback_file:
            self._apply_exposure(device)
        if c.depth:
            self.depth_scale_m = device.first_depth_sensor().get_depth_scale()
            self._align = rs.align(rs.stream.color)
        v = profile.get_stream(rs.stream.color).as_video_stream_profile().get_intrinsics()
        self.intrinsics = CameraIntrinsics(v.width, v.height, v.fx, v.fy, v.ppx, v.ppy)
        self._pipeline = pipeline

    def _apply_exposure(self, device) -> None:
        rs = self._rs
        sensor = device.first_color_sensor()
        if self.config.exposure_us > 0:
            sensor.set_option(rs.option.enable_auto_exposure, 0)
            sensor.set_option(rs.option.exposure, self.config.exposure_us)
        else:
            sensor.set_option(rs.option.enable_auto_exposure, 1)

    def read(self, timeout: float = 1.0) -> Frame:
        if self._pipeline is None:
            raise CameraDisconnected(f"camera {self.name!r}: not connected")
        deadline = time.monotonic() + timeout
        while True:  # the syncer can hand out the same colour frame twice (once per depth arrival)
            remaining = max(deadline - time.monotonic(), 0.001)
            try:
                frames = self._pipeline.wait_for_frames(int(remaining * 1000))
            except RuntimeError as exc:
                raise TimeoutError(f"camera {self.name!r}: no frame within {timeout:.2f}s ({exc})") from None
            number = frames.get_color_frame().get_frame_number() if frames.get_color_frame() else None
            if number is None or number != self._last_number:
                self._last_number = number
                break
        receive = time.monotonic()
        if self._align is not None:
            frames = self._align.process(frames)
        color = frames.get_color_frame()
        if not color:
            raise TimeoutError(f"camera {self.name!r}: frameset without colour")
        depth = None
        if self._align is not None:
            d = frames.get_depth_frame()
            if d:
                depth = (np.asanyarray(d.get_data()).astype(np.float32) * (self.depth_scale_m * 1000.0)).astype(np.uint16)
        return Frame(
            color=np.asanyarray(color.get_data()).copy(),
            stamp=color.get_timestamp() / 1000.0,
            receive_stamp=receive,
            depth=depth,
            index=int(color.get_frame_number()),
        )

    def close(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            finally:
                self._pipeline = None
