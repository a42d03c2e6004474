"""``TwinCameraSource``: a twin camera that free-runs on its own clock, behind the ``Camera`` interface.

A real camera captures on its crystal, not when asked: 29.97 or 30.03 fps instead of 30, a
device clock with its own zero and a drift of tens of ppm, frames lost on USB, a replug
that restarts the device clock. This source is that camera, rendered from a ``MirrorTwin``:

* frame ``k`` is captured at host time ``h_k = h_0 + (k / fps) / (1 + drift)`` (plus Gaussian
  ``jitter_ms``), where ``h_0`` sits at ``phase_s`` within the frame period of the ROS clock
  (or at connect time when ``phase_s < 0``);
* its device stamp is ``clock_offset_s + (h_k - h_0) * (1 + drift)``: the device clock, not
  the host's, so the camera node's ``DeviceClockMapper`` has real work to do;
* the picture is the twin's state *at* ``h_k`` (the state block keeps ~4 s of history), and
  the frame arrives ``latency_ms`` later: its ``receive_stamp`` is that arrival, as a driver
  thread (librealsense, V4L2) stamps it, however late this process gets to render it;
* frames are lost on the device with ``drop_probability`` or a ``drop_pattern``
  (``every:N``, ``burst:N:K``), and on the host when the reader falls more than ``queue``
  frames behind (a driver's frame queue);
* the twin's host can unplug/replug it, drop frames or shift its clock at run time
  (``camera_*`` faults, through the state block).

``read`` raises ``CameraDisconnected`` while unplugged (``ReconnectingCamera`` then retries
``connect``, which fails until the replug) and ``TimeoutError`` when no frame arrives in time.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from vla_robot.cameras.errors import CameraDisconnected
from vla_robot.cameras.interface import CameraIntrinsics, Frame

from sim.realtime.faults import parse_drop_pattern
from sim.realtime.mirror import MirrorTwin
from sim.realtime.state_block import TwinNotRunning


@dataclass(frozen=True)
class CameraTiming:
    """How a free-running camera's clock and link behave (the camera node's twin-only parameters)."""

    fps: float = 30.0
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    jitter_ms: float = 0.0
    latency_ms: float = 5.0
    phase_s: float = -1.0  # capture phase within the frame period of the ROS clock; < 0: wherever connect lands
    drop_probability: float = 0.0
    drop_pattern: str = ""
    queue: int = 4  # frames the host side keeps before it loses the oldest (V4L2 drivers keep about 4)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.fps <= 1000:
            raise ValueError(f"twin camera fps {self.fps} must be in (0, 1000]")
        if not 0.0 <= self.drop_probability <= 1.0:
            raise ValueError(f"twin camera drop_probability {self.drop_probability} must be in [0, 1]")
        if self.jitter_ms < 0 or self.latency_ms < 0:
            raise ValueError("twin camera jitter_ms and latency_ms must be >= 0")
        if abs(self.drift_ppm) >= 1e5:
            raise ValueError(f"twin camera drift_ppm {self.drift_ppm} must be within +-100000")
        if self.queue < 1:
            raise ValueError(f"twin camera queue {self.queue} must be >= 1")
        parse_drop_pattern(self.drop_pattern)


class _DeviceClock:
    """Frame ``k``'s host capture time and device stamp; rebased when the clock settings change."""

    def __init__(self, h0: float, fps: float, offset_s: float, drift_ppm: float):
        self.fps = fps
        self.k0, self.h0, self.d0 = 0, h0, offset_s
        self.offset_s, self.drift = offset_s, drift_ppm * 1e-6

    def host_time(self, k: int) -> float:
        return self.h0 + (k - self.k0) / self.fps / (1.0 + self.drift)

    def device_time(self, k: int) -> float:
        return self.d0 + (k - self.k0) / self.fps

    def rebase(self, k: int, offset_s: float, drift_ppm: float) -> None:
        """From frame ``k`` on: the stamps jump by the change of offset, the period follows the new drift."""
        self.h0, self.d0 = self.host_time(k), self.device_time(k) + (offset_s - self.offset_s)
        self.k0, self.offset_s, self.drift = k, offset_s, drift_ppm * 1e-6


class TwinCameraSource:
    """``Camera`` of one twin camera (``third_person`` or ``wrist``) of the twin at ``address``."""

    def __init__(self, name: str, address: str, width: int = 128, height: int = 128,
                 timing: CameraTiming | None = None, depth: bool = False, attach_timeout_s: float = 30.0):
        self.name = name
        self.address = address
        self.size = (int(width), int(height))
        self.timing = timing or CameraTiming()
        self.depth = depth
        self.attach_timeout_s = attach_timeout_s
        self.mirror: MirrorTwin | None = None
        self.intrinsics: CameraIntrinsics | None = None
        self.connected = False
        self.host_drops = 0  # frames lost because the reader fell behind
        self.device_drops = 0
        self._clock: _DeviceClock | None = None
        self._next = 0
        self._rng = np.random.default_rng(self.timing.seed * 1_000_003 + zlib.crc32(name.encode()))
        self._applied: tuple[float, float] = (0.0, 0.0)  # runtime (extra offset, drift override) now in the clock
        self._depth_renderer = None

    # -- settings and faults -------------------------------------------------------------------
    def _faults(self) -> dict:
        return self.mirror.faults().get("cameras", {}).get(self.name, {}) if self.mirror else {}

    def _clock_settings(self, faults: dict) -> tuple[float, float]:
        return (self.timing.clock_offset_s + faults.get("clock_offset_s", 0.0),
                faults.get("drift_ppm", self.timing.drift_ppm))

    def _dropped(self, k: int, faults: dict) -> bool:
        probability = faults.get("drop_probability", self.timing.drop_probability)
        period, count = parse_drop_pattern(faults.get("drop_pattern", self.timing.drop_pattern))
        draw = self._rng.random()  # one draw per frame, so a pattern change never reshuffles the rest
        return (period > 0 and k % period >= period - count) or draw < probability

    # -- Camera interface ---------------------------------------------------------------------
    def connect(self) -> None:
        if self.mirror is None:
            try:
                self.mirror = MirrorTwin(self.address, cameras=(self.name,), camera_sizes={self.name: self.size},
                                         timeout_s=self.attach_timeout_s)
            except TwinNotRunning as exc:
                raise CameraDisconnected(f"twin camera {self.name!r}: {exc}") from None
            self.intrinsics = self.mirror.twin.intrinsics(self.name)
        faults = self._faults()
        if faults.get("unplugged"):
            raise CameraDisconnected(f"twin camera {self.name!r} is unplugged (twin fault)")
        if not self.mirror.alive:
            raise CameraDisconnected(f"twin camera {self.name!r}: the twin's process is gone")
        now = time.monotonic()
        period = 1.0 / self.timing.fps
        h0 = now
        if self.timing.phase_s >= 0:  # first capture at the requested phase of the ROS (wall) clock
            wall = time.time()
            h0 = now + ((self.timing.phase_s - wall) % period)
        offset, drift = self._clock_settings(faults)
        self._clock = _DeviceClock(h0, self.timing.fps, offset, drift)  # a (re)plugged camera's clock restarts
        self._applied = (offset, drift)
        self._next = 0
        self.connected = True

    def read(self, timeout: float = 1.0) -> Frame:
        if not self.connected:
            raise RuntimeError(f"camera {self.name!r}: call connect() before read()")
        deadline = time.monotonic() + timeout
        while True:
            faults = self._faults()
            if faults.get("unplugged") or not self.mirror.alive:
                self.connected = False
                raise CameraDisconnected(f"twin camera {self.name!r} "
                                         f"{'unplugged (twin fault)' if self.mirror.alive else 'lost its twin'}")
            settings = self._clock_settings(faults)
            if settings != self._applied:
                self._clock.rebase(self._next, *settings)
                self._applied = settings
            k = self._next
            capture = self._clock.host_time(k) + self._jitter()
            now = time.monotonic()
            behind = now - (capture + self.timing.latency_ms / 1000.0)
            lost = int(behind * self.timing.fps) - self.timing.queue
            if lost > 0:  # the host side's queue overflowed: those frames are gone
                self.host_drops += lost
                self._next += lost
                continue
            arrival = capture + self.timing.latency_ms / 1000.0
            if arrival > deadline:
                time.sleep(max(0.0, deadline - now))
                raise TimeoutError(f"twin camera {self.name!r}: no frame within {timeout}s")
            if arrival > now:
                time.sleep(arrival - now)
            self._next += 1
            if self._dropped(k, faults):
                self.device_drops += 1
                continue
            return self._frame(k, capture)

    def _jitter(self) -> float:
        if self.timing.jitter_ms <= 0:
            return 0.0
        return float(np.clip(self._rng.normal(0.0, self.timing.jitter_ms), -3 * self.timing.jitter_ms,
                             3 * self.timing.jitter_ms)) / 1000.0

    def _frame(self, k: int, capture: float) -> Frame:
        self.mirror.sync(at=capture)
        color = self.mirror.twin.render(self.name)
        depth = self._render_depth() if self.depth else None
        stamp = self._clock.device_time(k) + (capture - self._clock.host_time(k)) * (1.0 + self._clock.drift)
        arrival = capture + self.timing.latency_ms / 1000.0
        return Frame(color=color, stamp=stamp, receive_stamp=arrival, depth=depth, index=k)

    def _render_depth(self) -> np.ndarray:
        """Depth in millimetres (uint16, 0 = nothing within 65.5 m), aligned to the colour image."""
        import mujoco

        if self._depth_renderer is None:
            w, h = self.size
            self._depth_renderer = mujoco.Renderer(self.mirror.twin.model, height=h, width=w)
            self._depth_renderer.enable_depth_rendering()
        self._depth_renderer.update_scene(self.mirror.twin.data, camera=self.name)
        metres = self._depth_renderer.render()
        return np.clip(np.nan_to_num(metres * 1000.0, posinf=0.0), 0, 65535).astype(np.uint16)

    def close(self) -> None:
        """Disconnect and free the renderers (call it from the thread that read: an EGL context
        belongs to the thread that made it current). The mirror stays attached for a reconnect;
        the next frame makes new renderers."""
        self.connected = False
        if self._depth_renderer is not None:
            self._depth_renderer.close()
            self._depth_renderer = None
        if self.mirror is not None:
            self.mirror.twin.close()
