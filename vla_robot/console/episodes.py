"""The store as the console shows it: the episode list with labels, thumbnails, playback frames.

Read-only and by index only: every request names an episode number, a camera from the
store's schema and a frame number, never a path. That is why the console cannot serve
a file outside the store, whatever a request asks for.

The recorder writes the store from another process; committed episodes are immutable
(only their labels change), so a thumbnail is cached per episode once made.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from vla_robot.console.live import jpeg


class EpisodeNotFound(LookupError):
    """An episode, camera or frame that the store does not have (the server answers 404)."""


class EpisodeCatalog:
    """Lazily opens the store read-only; an absent store is an empty list until the first save."""

    def __init__(self, url: str, thumb_width: int = 160, frame_width: int = 640, quality: int = 80):
        self.url = url
        self.thumb_width = thumb_width
        self.frame_width = frame_width
        self.quality = quality
        self._store = None
        self._refreshed = 0.0
        self._lock = threading.Lock()
        self._thumbs: dict[int, bytes] = {}

    REFRESH_S = 0.5  # every open page polls the summary ten times a second; the store is re-read at most this often

    def _open(self, force: bool = False):
        """The store, refreshed to see newly committed episodes; None while it does not exist yet."""
        from vla_robot.data.errors import StoreError
        from vla_robot.data.store import EpisodeStore

        if self._store is None:
            try:
                self._store = EpisodeStore.open(self.url, mode="r")
            except StoreError:
                return None
            self._refreshed = time.monotonic()
        elif force or time.monotonic() - self._refreshed > self.REFRESH_S:
            self._store.refresh()
            self._refreshed = time.monotonic()
        return self._store

    def _require(self, index: int, camera: str | None = None):
        store = self._open()
        if store is not None and index >= store.num_episodes:
            store = self._open(force=True)  # saved a moment ago
        if store is None or not 0 <= index < store.num_episodes:
            raise EpisodeNotFound(f"no episode {index} in {self.url}")
        if camera is not None and camera not in store.schema.camera_names:
            raise EpisodeNotFound(f"no camera {camera!r} in {self.url}")
        return store

    def summary(self) -> dict:
        """Store-level facts the page shows above the list."""
        with self._lock:
            store = self._open()
            if store is None:
                return {"url": self.url, "exists": False, "episodes": 0, "cameras": [], "control_rate_hz": None}
            return {"url": self.url, "exists": True, "episodes": store.num_episodes,
                    "cameras": list(store.schema.camera_names), "control_rate_hz": store.schema.control_rate_hz}

    def episodes(self) -> list[dict]:
        """Newest first: index, instruction, label (success / failure / dropped), duration, steps."""
        with self._lock:
            store = self._open()
            if store is None:
                return []
            out = []
            for i in range(store.num_episodes - 1, -1, -1):
                meta = store.episode_meta(i)
                extra = meta.get("extra") or {}
                label = "dropped" if meta.get("dropped") else "success" if meta.get("success") else "failure"
                out.append({
                    "index": i, "instruction": meta.get("instruction", ""), "label": label,
                    "success": bool(meta.get("success")), "dropped": bool(meta.get("dropped")),
                    "duration_s": meta.get("duration_s"), "steps": store.episode_length(i),
                    "dropped_steps": extra.get("dropped_steps", 0),
                    "hole_steps": meta.get("hole_steps", extra.get("dropped_steps", 0)),  # format 2: marked holes
                    "operator": meta.get("operator", ""),
                    "start_time": meta.get("start_time"),
                })
            return out

    def thumbnail(self, index: int) -> bytes:
        """JPEG of the first camera's middle frame."""
        with self._lock:
            if index not in self._thumbs:
                store = self._require(index)
                cam = store.schema.camera_names[0]
                middle = store.episode_length(index) // 2
                rgb = store.read(f"images/{cam}", index, middle)
                self._thumbs[index] = jpeg(rgb, self.quality, self.thumb_width)
            return self._thumbs[index]

    def frame(self, index: int, camera: str, t: int) -> bytes:
        with self._lock:
            store = self._require(index, camera)
            if not 0 <= t < store.episode_length(index):
                raise EpisodeNotFound(f"episode {index} has no frame {t}")
            return jpeg(store.read(f"images/{camera}", index, t), self.quality, self.frame_width)

    def series(self, index: int) -> dict:
        """What the player needs: metadata, state and action per step, and stamps for its clock."""
        with self._lock:
            store = self._require(index)
            data = store.read_episode(index, ["state", "action"])
            meta = store.episode_meta(index)
            return {
                "index": index, "meta": meta, "steps": store.episode_length(index),
                "control_rate_hz": store.schema.control_rate_hz, "cameras": list(store.schema.camera_names),
                "joint_names": list(store.schema.joint_names),
                "state": np.round(data["state"].astype(float), 5).tolist(),
                "action": np.round(data["action"].astype(float), 5).tolist(),
            }
