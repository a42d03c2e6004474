"""What the console shows live: the newest frame per camera, recent joint and action samples,
and how fast each stream arrives. Plain Python, fed by the console node's subscriptions.

Why the JPEG is made here, lazily and once per frame: cameras publish 30 fps of raw RGB, but
a browser only needs a preview at ``stream_fps``, and several open pages must not each pay
for an encode. A frame is encoded the first time a page asks for it, then shared.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from vla_robot.data.codecs import encode_image


def downscale(rgb: np.ndarray, max_width: int) -> np.ndarray:
    """Shrink to at most ``max_width`` pixels wide (aspect kept); smaller images pass through."""
    h, w = rgb.shape[:2]
    if w <= max_width:
        return rgb
    from PIL import Image

    size = (max_width, max(1, round(h * max_width / w)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))


def jpeg(rgb: np.ndarray, quality: int = 80, max_width: int | None = None) -> bytes:
    if max_width is not None:
        rgb = downscale(rgb, max_width)
    return bytes(encode_image(np.ascontiguousarray(rgb, dtype=np.uint8), "jpeg", quality))


class RateMeter:
    """Arrival rate (Hz) over the last ``window`` messages, and the age of the newest one."""

    def __init__(self, window: int = 30):
        self._arrivals: deque[float] = deque(maxlen=window)

    def tick(self, now: float) -> None:
        self._arrivals.append(now)

    def rate(self, now: float) -> float:
        a = self._arrivals
        if len(a) < 2 or now - a[-1] > 2.0:  # silent for 2 s: report 0, not the old rate
            return 0.0
        return (len(a) - 1) / max(a[-1] - a[0], 1e-6)

    def age(self, now: float) -> float | None:
        return now - self._arrivals[-1] if self._arrivals else None


@dataclass
class _Frame:
    seq: int = 0
    stamp: float = 0.0
    rgb: np.ndarray | None = None
    jpeg: bytes | None = None  # encoded on first request (or given by a compressed topic)
    jpeg_seq: int = -1


class LiveState:
    """Thread-safe: ROS callbacks write from executor threads, the web server reads from its own."""

    def __init__(self, cameras: tuple[str, ...], joint_names: tuple[str, ...], max_width: int = 640,
                 jpeg_quality: int = 80, history: int = 2000):
        self.cameras = tuple(cameras)
        self.joint_names = tuple(joint_names)
        self.max_width = max_width
        self.jpeg_quality = jpeg_quality
        self._lock = threading.Lock()
        self._frames = {c: _Frame() for c in self.cameras}
        self._series = {"state": deque(maxlen=history), "action": deque(maxlen=history)}
        self._seq = {"state": 0, "action": 0}
        self.rates = {name: RateMeter() for name in ("state", "action", *self.cameras)}

    # -- intake (any thread) -----------------------------------------------------------
    def put_image(self, camera: str, rgb: np.ndarray, stamp: float) -> None:
        self._put_frame(camera, stamp, rgb=rgb)

    def put_jpeg(self, camera: str, data: bytes, stamp: float) -> None:
        """A frame that arrives already JPEG-encoded (a ``.../compressed`` topic) is passed through."""
        self._put_frame(camera, stamp, jpeg_bytes=bytes(data))

    def _put_frame(self, camera: str, stamp: float, rgb=None, jpeg_bytes=None) -> None:
        with self._lock:
            f = self._frames[camera]
            f.seq += 1
            f.stamp, f.rgb = stamp, rgb
            f.jpeg, f.jpeg_seq = (jpeg_bytes, f.seq) if jpeg_bytes is not None else (None, -1)
        self.rates[camera].tick(time.monotonic())

    def put_joints(self, stamp: float, positions) -> None:
        self._put_series("state", stamp, positions)

    def put_action(self, stamp: float, targets) -> None:
        self._put_series("action", stamp, targets)

    def _put_series(self, kind: str, stamp: float, values) -> None:
        with self._lock:
            self._seq[kind] += 1
            self._series[kind].append((self._seq[kind], float(stamp), [float(v) for v in values]))
        self.rates[kind].tick(time.monotonic())

    # -- reads (server thread) -------------------------------------------------------------
    def frame_seq(self, camera: str) -> int:
        with self._lock:
            return self._frames[camera].seq

    def frame_jpeg(self, camera: str) -> tuple[int, bytes | None]:
        """(sequence number, JPEG bytes) of the newest frame; ``(0, None)`` before the first."""
        with self._lock:
            f = self._frames[camera]
            seq, rgb, cached, cached_seq = f.seq, f.rgb, f.jpeg, f.jpeg_seq
        if cached is not None and cached_seq == seq:
            return seq, cached
        if rgb is None:
            return seq, None
        data = jpeg(rgb, self.jpeg_quality, self.max_width)  # outside the lock: callbacks never wait on it
        with self._lock:
            f = self._frames[camera]
            if f.seq == seq:
                f.jpeg, f.jpeg_seq = data, seq
        return seq, data

    def samples_since(self, kind: str, seq: int, limit: int = 200) -> tuple[int, list]:
        """Samples newer than ``seq`` (at most ``limit``, evenly thinned) and the newest sequence number."""
        with self._lock:
            newest = self._seq[kind]
            fresh = [(t, v) for s, t, v in self._series[kind] if s > seq]
        if len(fresh) > limit:
            idx = np.linspace(0, len(fresh) - 1, limit).round().astype(int)
            fresh = [fresh[i] for i in idx]
        return newest, fresh

    def stream_report(self) -> dict:
        """Per stream: arrival rate in Hz and seconds since the last message (None: never)."""
        now = time.monotonic()
        return {name: {"hz": round(m.rate(now), 2), "age_s": None if m.age(now) is None else round(m.age(now), 3)}
                for name, m in self.rates.items()}
