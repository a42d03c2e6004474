"""Episode recording: start / save / discard / set-instruction around a Zarr episode writer.

Why a writer thread: message callbacks must return fast (a slow JPEG encode or disk
flush inside a subscription callback would drop camera frames in DDS), so aligned steps
go through a bounded queue to one writer thread. The queue depth, the lag from a
sample's arrival to its write, and every drop are counters the diagnostics topic reports.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vla_robot.recorder.aligner import AlignedStep, AlignerConfig, StreamAligner

log = logging.getLogger("vla_robot.recorder")


class RecorderStateError(RuntimeError):
    """An episode command that does not fit the current state (e.g. save while idle)."""


@dataclass
class RecorderStats:
    episodes_saved: int = 0
    episodes_discarded: int = 0
    frames_written: int = 0
    queue_overflows: int = 0
    rejected: dict[str, int] = field(default_factory=dict)  # malformed inputs per stream
    lags: deque = field(default_factory=lambda: deque(maxlen=2000))  # arrival -> written, seconds
    write_errors: int = 0
    last_error: str = ""

    def lag_percentiles(self) -> tuple[float, float]:
        if not self.lags:
            return 0.0, 0.0
        arr = np.asarray(self.lags)
        return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


class EpisodeRecorder:
    """Owns the store, the aligner and the writer thread; knows nothing about ROS."""

    def __init__(self, store, camera_names: tuple[str, ...], control_rate_hz: float, tolerance_s: float | None = None,
                 max_wait_s: float = 0.5, queue_size: int = 64, depth_cameras: tuple[str, ...] = (),
                 operator: str = "", robot: str = ""):
        self.store = store
        self.camera_names = tuple(camera_names)
        self.depth_cameras = tuple(depth_cameras)
        unknown = [c for c in self.depth_cameras if c not in self.camera_names]
        if unknown:
            raise ValueError(f"depth cameras {unknown} are not among the cameras {list(self.camera_names)}")
        streams = ("state", "action", *(f"images/{c}" for c in self.camera_names),
                   *(f"depth/{c}" for c in self.depth_cameras))
        self.aligner = StreamAligner(AlignerConfig(control_rate_hz, streams, tolerance_s=tolerance_s,
                                                   max_wait_s=max_wait_s))
        self.stats = RecorderStats(rejected={s: 0 for s in streams})
        self.instruction = ""
        self.operator = operator
        self.robot = robot
        self.extra_meta: dict = {}
        self._writer = None
        self._episode_start = 0.0
        self._episode_frames = 0
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._drain, name="episode-writer", daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    # -- episode control -----------------------------------------------------------------
    @property
    def recording(self) -> bool:
        return self._writer is not None

    def set_instruction(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise ValueError("instruction must be non-empty text, e.g. 'put the cube on the grinning face'")
        self.instruction = text

    def start(self, **meta) -> int:
        with self._lock:
            if self.recording:
                raise RecorderStateError("an episode is already recording; save or discard it first")
            if not self.instruction:
                raise RecorderStateError("no instruction set; set one before starting an episode")
            self.aligner.reset()
            self.extra_meta = {}
            meta = dict(meta)
            self._writer = self.store.begin_episode(self.instruction, operator=self.operator,
                                                    task_id=meta.pop("task_id", None),
                                                    emoji_id=meta.pop("emoji_id", None), extra=meta)
            self._episode_start = time.monotonic()
            self._episode_frames = 0
            log.info("episode %d started: %r", self.store.num_episodes, self.instruction)
            return self.store.num_episodes

    def save(self, success: bool, **meta) -> int:
        """Flush pending steps, commit, and return the episode index."""
        with self._lock:
            writer = self._require_writer("save")
            for step in self.aligner.flush():
                self._enqueue(step)
            self._queue.join()
            self._writer = None
            if writer.num_frames == 0:
                writer.discard()
                self.stats.episodes_discarded += 1
                raise RecorderStateError("episode has no aligned frames (are state, action and cameras publishing?); discarded")
            index = writer.commit(success=bool(success), **{**self.extra_meta, **meta,
                                                            "gaps": dict(self.aligner.stats.gaps),
                                                            "dropped_steps": self.aligner.stats.dropped_steps})
            self.stats.episodes_saved += 1
            log.info("episode %d saved: %d frames, success=%s, gaps=%s", index, writer.num_frames, success,
                     self.aligner.stats.gaps)
            return index

    def discard(self) -> None:
        with self._lock:
            writer = self._require_writer("discard")
            self._writer = None
            self._queue.join()
            writer.discard()
            self.stats.episodes_discarded += 1
            log.info("episode discarded")

    def _require_writer(self, what: str):
        if self._writer is None:
            raise RecorderStateError(f"cannot {what}: no episode is recording; start one first")
        return self._writer

    # -- data intake (any thread) ----------------------------------------------------------
    def add_state(self, stamp: float, positions: np.ndarray, receive: float | None = None) -> None:
        self._add("state", stamp, np.asarray(positions, np.float32), receive)

    def add_action(self, stamp: float, targets: np.ndarray, receive: float | None = None) -> None:
        self._add("action", stamp, np.asarray(targets, np.float32), receive)

    def add_image(self, camera: str, stamp: float, rgb: np.ndarray, receive: float | None = None) -> None:
        self._add(f"images/{camera}", stamp, rgb, receive)

    def add_depth(self, camera: str, stamp: float, depth_mm: np.ndarray, receive: float | None = None) -> None:
        self._add(f"depth/{camera}", stamp, depth_mm, receive)

    def reject(self, stream: str, reason: str) -> None:
        self.stats.rejected[stream] = self.stats.rejected.get(stream, 0) + 1
        self.stats.last_error = f"{stream}: {reason}"
        log.warning("rejected %s: %s", stream, reason)

    def _add(self, stream: str, stamp: float, value, receive: float | None) -> None:
        if not self.recording:
            return
        with self._lock:
            if not self.recording:
                return
            self.aligner.add(stream, stamp, value, receive)
            for step in self.aligner.poll():
                self._enqueue(step)

    def tick(self) -> None:
        """Resolve steps whose wait expired even if no new message arrived (a dead stream)."""
        with self._lock:
            if self.recording:
                for step in self.aligner.poll():
                    self._enqueue(step)

    def _enqueue(self, step: AlignedStep) -> None:
        try:
            self._queue.put_nowait((self._writer, step))
        except queue.Full:
            self.stats.queue_overflows += 1
            log.warning("writer queue full: step at %.3f dropped", step.grid_time)

    # -- writer thread -------------------------------------------------------------------
    def _drain(self) -> None:
        while not self._stop.is_set():
            try:
                writer, step = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                s = step.samples
                cams = {c: s[f"images/{c}"] for c in self.camera_names}
                writer.append({
                    "state": s["state"].value,
                    "action": s["action"].value,
                    "images": {c: smp.value for c, smp in cams.items()},
                    "depth": {c: s[f"depth/{c}"].value for c in self.depth_cameras},
                    "stamp": s["state"].stamp,
                    "receive_stamp": s["state"].receive,
                    "stamps": {
                        "action": (s["action"].stamp, s["action"].receive),
                        **{f"images/{c}": (smp.stamp, smp.receive) for c, smp in cams.items()},
                        **{f"depth/{c}": (s[f"depth/{c}"].stamp, s[f"depth/{c}"].receive) for c in self.depth_cameras},
                    },
                })
                newest = max(smp.receive for smp in s.values())
                self.stats.lags.append(time.monotonic() - newest)
                self.stats.frames_written += 1
                self._episode_frames += 1
            except Exception as exc:  # a bad step must not kill the writer thread
                self.stats.write_errors += 1
                self.stats.last_error = f"write failed at t={step.grid_time:.3f}: {exc}"
                log.error(self.stats.last_error)
            finally:
                self._queue.task_done()

    # -- status ------------------------------------------------------------------------
    def status(self) -> dict:
        duration = time.monotonic() - self._episode_start if self.recording else 0.0
        p50, p99 = self.stats.lag_percentiles()
        try:
            disk_free = shutil.disk_usage(Path(str(self.store.url)).parent).free if "://" not in str(self.store.url) else -1
        except (OSError, AttributeError):
            disk_free = -1
        return {
            "recording": self.recording,
            "episode": self.store.num_episodes,
            "duration_s": duration,
            "frames": self._episode_frames,
            "fps": self._episode_frames / duration if duration > 0 else 0.0,
            "dropped_steps": self.aligner.stats.dropped_steps,
            "warmup_steps": self.aligner.stats.warmup_steps,  # before every stream was present
            "trimmed_steps": self.aligner.stats.trimmed_steps,  # incomplete steps after the last complete one
            "gaps": dict(self.aligner.stats.gaps),
            "out_of_order": dict(self.aligner.stats.out_of_order),
            "rejected": dict(self.stats.rejected),
            "queue_depth": self._queue.qsize(),
            "queue_overflows": self.stats.queue_overflows,
            "lag_p50_s": p50,
            "lag_p99_s": p99,
            "write_errors": self.stats.write_errors,
            "disk_free_bytes": disk_free,
            "instruction": self.instruction,
            "last_error": self.stats.last_error,
        }

    def close(self) -> None:
        with self._lock:
            if self.recording:
                self.discard()
        self._stop.set()
        self._thread.join(timeout=2.0)
