"""Keep a camera alive: detect a disconnect, report it, and retry with back-off.

Node shells read through this wrapper so one flaky USB cable never kills a node; the
counters feed the diagnostics topic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from vla_robot.cameras.clock import DeviceClockMapper
from vla_robot.cameras.errors import CameraDisconnected
from vla_robot.cameras.interface import Camera, Frame


@dataclass
class CameraHealth:
    connected: bool = False
    frames: int = 0
    timeouts: int = 0
    disconnects: int = 0
    reconnect_attempts: int = 0
    last_error: str = ""
    last_frame_time: float = 0.0


class ReconnectingCamera:
    def __init__(self, camera: Camera, retry_interval_s: float = 1.0, max_retry_interval_s: float = 10.0,
                 timeouts_before_reconnect: int = 3):
        self.camera = camera
        self.name = camera.name
        self.health = CameraHealth()
        self.clock = DeviceClockMapper()
        self.retry_interval_s = retry_interval_s
        self.max_retry_interval_s = max_retry_interval_s
        self.timeouts_before_reconnect = timeouts_before_reconnect
        self._next_retry = 0.0
        self._backoff = retry_interval_s
        self._consecutive_timeouts = 0

    @property
    def intrinsics(self):
        return self.camera.intrinsics

    def _try_connect(self) -> bool:
        now = time.monotonic()
        if now < self._next_retry:
            return False
        self.health.reconnect_attempts += 1
        try:
            self.camera.connect()
        except Exception as exc:  # any driver error: report and retry later
            self.health.last_error = f"connect failed: {exc}"
            self._next_retry = now + self._backoff
            self._backoff = min(self._backoff * 2, self.max_retry_interval_s)
            return False
        self.health.connected = True
        self._backoff = self.retry_interval_s
        return True

    def connect(self) -> None:
        self._try_connect()

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The next frame with ``stamp`` mapped to the host clock, or None while disconnected."""
        if not self.health.connected and not self._try_connect():
            return None
        try:
            frame = self.camera.read(timeout)
        except TimeoutError as exc:
            self.health.timeouts += 1
            self._consecutive_timeouts += 1
            self.health.last_error = str(exc)
            if self._consecutive_timeouts >= self.timeouts_before_reconnect:
                self._drop(f"{self._consecutive_timeouts} timeouts in a row")
            return None
        except CameraDisconnected as exc:
            self._drop(str(exc))
            return None
        self._consecutive_timeouts = 0
        self.health.frames += 1
        self.health.last_frame_time = frame.receive_stamp
        mapped = self.clock.to_host(frame.stamp, frame.receive_stamp)
        return Frame(color=frame.color, stamp=mapped, receive_stamp=frame.receive_stamp, depth=frame.depth,
                     index=frame.index)

    def _drop(self, reason: str) -> None:
        self.health.connected = False
        self.health.disconnects += 1
        self.health.last_error = reason
        self._consecutive_timeouts = 0
        self._next_retry = time.monotonic() + self._backoff
        try:
            self.camera.close()
        except Exception:
            pass

    def close(self) -> None:
        self.camera.close()
        self.health.connected = False
