"""Live camera preview: an OpenCV window when a display exists, otherwise a JPEG written
periodically (atomically, so a browser or image viewer never reads half a file)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def tile(images: dict[str, np.ndarray], height: int = 240) -> np.ndarray:
    """Side-by-side RGB mosaic at a common height."""
    import cv2

    tiles = []
    for name, rgb in images.items():
        h, w = rgb.shape[:2]
        t = cv2.resize(rgb, (max(1, int(w * height / h)), height), interpolation=cv2.INTER_AREA)
        cv2.putText(t, name, (5, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1)
        tiles.append(t)
    return np.concatenate(tiles, axis=1) if tiles else np.zeros((height, height, 3), np.uint8)


class Preview:
    def __init__(self, jpeg_path: str = "", period_s: float = 1.0, window: bool | None = None):
        self.jpeg_path = Path(jpeg_path) if jpeg_path else None
        self.period_s = period_s
        self.window = bool(os.environ.get("DISPLAY")) if window is None else window
        self._last = 0.0
        self.written = 0

    def update(self, images: dict[str, np.ndarray], status_text: str = "") -> bool:
        now = time.monotonic()
        if now - self._last < self.period_s or not images:
            return False
        self._last = now
        import cv2

        mosaic = tile(images)
        if status_text:
            cv2.putText(mosaic, status_text[:90], (5, mosaic.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1)
        bgr = np.ascontiguousarray(mosaic[..., ::-1])
        if self.window:
            try:
                cv2.imshow("vla-robot recorder", bgr)
                cv2.waitKey(1)
            except cv2.error:
                self.window = False  # headless OpenCV build: fall back to the JPEG
        if self.jpeg_path is not None:
            self.jpeg_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.jpeg_path.with_suffix(".tmp.jpg")
            cv2.imwrite(str(tmp), bgr)
            os.replace(tmp, self.jpeg_path)
        self.written += 1
        return True
