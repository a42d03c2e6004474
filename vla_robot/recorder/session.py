"""Episode recording: start / save / discard around a Zarr episode writer; knows nothing about ROS.

Every sample goes through the aligner (vla_robot/recorder/aligner.py) and the stream health
monitor (health.py), also while idle, so the first step of an episode already has every stream
and a dead camera shows before anyone presses start.

Why a writer thread: message callbacks must return fast (a slow JPEG encode or disk flush
inside a subscription callback would drop camera frames in DDS), so aligned steps go through a
bounded queue to one writer thread. A write error there (disk full, EIO, permission) fails the
episode at once: recording of it stops, ``status()`` says ERROR and why, save refuses it, and the
committed episodes stay as they were.

``status()`` is the recorder's public state (the node publishes it as JSON on ``~/status``; the
fields are listed in docs/collect.md, "Recorder status"), so consoles and UIs never reach inside.
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

from vla_robot.data.errors import StepValidationError, StoreError, StoreWriteError
from vla_robot.recorder.aligner import AlignedStep, AlignerConfig, Hole, StreamAligner
from vla_robot.recorder.health import StreamHealth
from vla_robot.recorder.store_record import alignment_report, commit_meta, skew_summary, step_record

log = logging.getLogger("vla_robot.recorder")

OK, WARN, ERROR = "OK", "WARN", "ERROR"


class RecorderStateError(RuntimeError):
    """An episode command that does not fit the current state (e.g. save while idle)."""


@dataclass
class RecorderStats:
    episodes_saved: int = 0
    episodes_discarded: int = 0
    episodes_failed: int = 0
    frames_written: int = 0
    queue_overflows: int = 0
    lags: deque = field(default_factory=lambda: deque(maxlen=2000))  # arrival -> written, seconds
    write_errors: int = 0
    last_error: str = ""

    def lag_percentiles(self) -> tuple[float, float]:
        if not self.lags:
            return 0.0, 0.0
        arr = np.asarray(self.lags)
        return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def _reason(exc: Exception) -> str:
    """A store error's own sentence (an OSError's str would prefix '[Errno N]')."""
    return getattr(exc, "strerror", None) or str(exc)


class EpisodeRecorder:
    """Owns the store, the aligner, the stream health monitor and the writer thread.

    ``store`` is an open ``EpisodeStore`` or a callable that opens it at the first ``start`` (a
    ROS node learns camera intrinsics from ``camera_info`` before it creates a store); streams are
    aligned and watched from construction on. ``store_url`` names the store for the disk-space
    report before it is opened.
    """

    def __init__(self, store, camera_names: tuple[str, ...], control_rate_hz: float,
                 max_skew_s: float | dict | None = None, max_wait_s: float = 1.0, queue_size: int = 64,
                 depth_cameras: tuple[str, ...] = (), operator: str = "", robot: str = "",
                 stale_after_s: float = 0.5, store_url: str | None = None):
        self._opener = store if callable(store) else None
        self._store = None if callable(store) else store
        self.store_url = store_url if store_url is not None else getattr(self._store, "url", None)
        self.camera_names = tuple(camera_names)
        self.depth_cameras = tuple(depth_cameras)
        unknown = [c for c in self.depth_cameras if c not in self.camera_names]
        if unknown:
            raise ValueError(f"depth cameras {unknown} are not among the cameras {list(self.camera_names)}")
        self.streams = ("state", "action", *(f"images/{c}" for c in self.camera_names),
                        *(f"depth/{c}" for c in self.depth_cameras))
        self.control_rate_hz = control_rate_hz
        self.aligner = StreamAligner(AlignerConfig(control_rate_hz, self.streams, max_skew_s=max_skew_s,
                                                   max_wait_s=max_wait_s))
        self.health = StreamHealth(self.streams, stale_after_s)
        self.stats = RecorderStats()
        self.instruction = ""
        self.operator = operator
        self.robot = robot
        self.extra_meta: dict = {}
        self.last_episode: dict = {}  # what the last save / discard / failure did (status "last_episode")
        self._writer = None
        self._episode_start = 0.0
        self._episode_frames = 0
        self._skews: dict[str, list[float]] = {s: [] for s in self.streams}
        self._queue_holes: list[Hole] = []  # steps aligned but dropped by a full writer queue
        self._transport_lost_at_start: dict[str, int] = {}
        self._bad_steps: list[Hole] = []  # steps the writer refused (validation)
        self._failure: tuple[object, str] | None = None  # (writer, error) set by the writer thread
        self._dead = None  # the writer that failed last: its queued steps are skipped
        self._failed: dict | None = None  # latched until start / discard / save
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._lock = threading.RLock()  # data intake, aligner, status, episode state
        self._closing = None  # the writer being saved or discarded (commands wait for it to finish)
        self._requested = 0.0  # host seconds between start and save
        self._grid_start: float | None = None
        self._thread = threading.Thread(target=self._drain, name="episode-writer", daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    # -- episode control -----------------------------------------------------------------
    @property
    def store(self):
        """The episode store, opened now if it was given as an opener."""
        if self._store is None:
            self._store = self._opener()
            self.store_url = self._store.url
        return self._store

    @property
    def recording(self) -> bool:
        return self._writer is not None

    @property
    def state(self) -> str:
        return "recording" if self.recording else "failed" if self._failed else "idle"

    def set_instruction(self, text: str) -> None:
        text = text.strip()
        if not text:
            raise ValueError("instruction must be non-empty text, e.g. 'put the cube on the grinning face'")
        self.instruction = text

    def start(self, clock_now: float | None = None, t0: float | None = None, **meta) -> int:
        """Start an episode. ``clock_now``: the stamp clock's time now (the ROS node's clock), so the
        grid starts at the operator's start even when samples arrive late. ``t0``: the stamp the
        grid starts at, for a caller that knows it (streams stamped in sim time)."""
        pressed = time.monotonic()  # the start, on the host clock (opening the store may take a while)
        with self._lock:
            self._check_failure()
            self._refuse_while_closing()
            if self.recording:
                raise RecorderStateError("an episode is already recording; save or discard it first")
            if not self.instruction:
                raise RecorderStateError("no instruction set; set one before starting an episode")
            self.extra_meta = {}
            meta = dict(meta)
            self._writer = self.store.begin_episode(self.instruction, operator=self.operator,
                                                    task_id=meta.pop("task_id", None),
                                                    emoji_id=meta.pop("emoji_id", None), extra=meta)
            self._failed = None
            self.aligner.arm(t0=t0, clock_now=clock_now, now=pressed)
            self._episode_start = pressed
            self.health.watch_from(self._episode_start)
            self._episode_frames = 0
            self._skews = {s: [] for s in self.streams}
            self._queue_holes, self._bad_steps = [], []
            self._transport_lost_at_start = dict(self.health.transport_lost)
            log.info("episode %d started: %r", self.store.num_episodes, self.instruction)
            return self.store.num_episodes

    def save(self, success: bool, clock_now: float | None = None, end: float | None = None, **meta) -> int:
        """Decide the steps up to now (waiting up to ``max_wait_s`` for frames still in transit),
        write them, commit, and return the episode index. A failed episode is refused.

        The three phases are public for callers that must not block while frames arrive (the ROS
        node awaits between ``save_ready`` polls on its one executor thread)."""
        deadline = self.begin_save(clock_now, end=end)
        while not self.save_ready(deadline):
            time.sleep(0.005)
        return self.finish_save(success, **meta)

    def begin_save(self, clock_now: float | None = None, end: float | None = None) -> float:
        """Fix the episode's end (``end``, a stamp, when the caller knows it; else ``clock_now`` on
        the stamp clock; else the newest stamp of the live streams); returns the deadline for
        samples still in transit."""
        pressed = time.monotonic()
        with self._lock:
            self._check_failure()
            self._refuse_while_closing()
            if self._failed and not self.recording:
                failed, self._failed = self._failed, None
                raise RecorderStateError(f"episode {failed['episode']} failed and was not saved: {failed['error']}")
            self._closing = self._require_writer("save")
            self._requested = pressed - self._episode_start
            self.aligner.stop(end=end, clock_now=clock_now, now=pressed)
            self._grid_start = self.aligner.grid_start
            return time.monotonic() + self.aligner.config.max_wait_s

    def save_ready(self, deadline: float) -> bool:
        """Decide what can be decided; True once every step up to the end is, or at ``deadline``
        (``max_wait_s`` after the save), or up to ``max_lag_s`` while a stream still delivering
        has not reached the end (a loaded machine: its last samples are still on their way)."""
        now = time.monotonic()
        with self._lock:
            self._check_failure(self._closing)
            if self.recording:
                for step in self.aligner.poll():
                    self._enqueue(step)
            if self.aligner.done or not self.recording:
                return True
            cfg = self.aligner.config
            lag_deadline = deadline - cfg.max_wait_s + cfg.max_lag_s
            return now >= (lag_deadline if self.aligner.lagging(now) else deadline)

    def finish_save(self, success: bool, **meta) -> int:
        with self._lock:
            writer = self._closing
            if writer is None:
                raise RecorderStateError("no save in progress; call begin_save first")
            if self.recording:
                for step in self.aligner.finish():
                    self._enqueue(step)
                self._grid_start = self.aligner.grid_start
                self._writer = None
                self.aligner.disarm()
                self.health.watch_from(None)
        try:
            return self._commit(writer, success, meta)
        finally:
            with self._lock:
                self._closing = None

    def _commit(self, writer, success: bool, meta: dict) -> int:
        self._queue.join()
        with self._lock:
            self._check_failure(writer)
            if self._failed:
                failed, self._failed = self._failed, None
                raise RecorderStateError(f"episode {failed['episode']} failed and was not saved: {failed['error']}")
        if writer.num_frames == 0:
            writer.discard()
            self.stats.episodes_discarded += 1
            raise RecorderStateError("episode has no aligned frames (no step had state, action and every camera; "
                                     f"waited for: {', '.join(self.aligner.stats.warmup_streams) or 'nothing'}); "
                                     "discarded")
        alignment = self._alignment_report(self._requested)
        lost = self._episode_transport_lost()
        if lost:
            alignment["transport_lost"] = lost
            alignment["notes"].append(f"{sum(lost.values())} message(s) lost in DDS transport before reaching the "
                                      f"recorder ({', '.join(f'{s} {n}' for s, n in lost.items())}): the publisher's "
                                      "history was overrun; see docs/collect.md, 'Large frames over DDS'")
        try:
            index = writer.commit(success=bool(success),
                                  **{**self.extra_meta, **meta, **commit_meta(self.aligner.stats, alignment)})
        except StoreError as exc:
            self._fail(writer, _reason(exc))
            failed, self._failed = self._failed, None
            raise RecorderStateError(f"episode {failed['episode']} failed and was not saved: {failed['error']}") from exc
        self.stats.episodes_saved += 1
        self.last_episode = {"index": index, "result": "saved", "success": bool(success), "steps": writer.num_frames,
                             "duration_s": alignment["grid_steps"] / self.control_rate_hz,
                             "requested_s": self._requested, "notes": alignment["notes"]}
        log.info("episode %d saved: %d steps, success=%s%s", index, writer.num_frames, success,
                 "; " + "; ".join(alignment["notes"]) if alignment["notes"] else "")
        return index

    def _episode_transport_lost(self) -> dict[str, int]:
        start = self._transport_lost_at_start
        return {s: n - start.get(s, 0) for s, n in self.health.transport_lost.items() if n - start.get(s, 0) > 0}

    def discard(self) -> None:
        with self._lock:
            self._check_failure()
            self._refuse_while_closing()
            if self._failed and not self.recording:
                self.last_episode = {**self._failed, "result": "failed, discarded"}
                self._failed = None
                return
            writer = self._closing = self._require_writer("discard")
            self._writer = None
            self.aligner.disarm()
            self.health.watch_from(None)
        try:
            self._queue.join()
            writer.discard()
        finally:
            with self._lock:
                self._closing = None
        self.stats.episodes_discarded += 1
        self.last_episode = {"index": writer.episode_index, "result": "discarded"}
        log.info("episode discarded")

    def _refuse_while_closing(self) -> None:
        if self._closing is not None:
            raise RecorderStateError(f"episode {self._closing.episode_index} is being saved or discarded; try again")

    def _require_writer(self, what: str):
        if self._writer is None:
            raise RecorderStateError(f"cannot {what}: no episode is recording; start one first")
        return self._writer

    def _fail(self, writer, error: str) -> None:
        """The episode of ``writer`` cannot be saved: stop recording it and say so until acknowledged."""
        self.stats.episodes_failed += 1
        self.stats.last_error = error
        self._failed = {"episode": writer.episode_index, "error": error}
        self.last_episode = {"index": writer.episode_index, "result": "failed", "error": error}
        if self._writer is writer:
            self._writer = None
            self.aligner.disarm()
            self.health.watch_from(None)
        with_suffix = f"; the {self._store.num_episodes} committed episodes are intact"
        log.error("episode %d FAILED, recording stopped: %s%s", writer.episode_index, error,
                  "" if "intact" in error else with_suffix)

    def _check_failure(self, writer=None) -> None:
        """Act on a write error the writer thread reported (called with the lock held)."""
        failure = self._failure
        if failure is None:
            return
        failed_writer, error = failure
        if failed_writer is self._writer or failed_writer is writer:
            self._failure = None
            self._fail(failed_writer, error)

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
        self.health.reject(stream)
        self.stats.last_error = f"{stream}: {reason}"
        log.warning("rejected %s: %s", stream, reason)

    def lost_in_transport(self, stream: str, count: int) -> None:
        """DDS reported ``count`` messages of ``stream`` lost before they reached the recorder.

        A reliable publisher with a KEEP_LAST history (realsense-ros and usb_cam keep 10) drops a
        sample that no reader has acknowledged once 10 newer ones are queued; its readers see a
        message-lost event and nothing else. With two 640x480 cameras and depth on Fast DDS'
        default transports, 2-55 frames in 60-120 s were lost that way (bench_realtime, issue #13);
        before this count existed they showed up only as anonymous holes. Saying where they were
        lost tells the operator what to fix (the DDS profile, docs/collect.md "Large frames over DDS").
        """
        if count <= 0:
            return
        with self._lock:
            self.health.lost_in_transport(stream, count)
        log.warning("%d message(s) of %s lost in DDS transport before reaching the recorder", count, stream)

    def _add(self, stream: str, stamp: float, value, receive: float | None) -> None:
        receive = time.monotonic() if receive is None else receive
        with self._lock:
            self.health.seen(stream, receive)
            self.aligner.add(stream, stamp, value, receive)
            if self.recording:
                self._check_failure()
                for step in self.aligner.poll():
                    self._enqueue(step)

    def tick(self) -> None:
        """Decide steps whose wait expired although no message arrived (a dead stream) and act on
        a write error; the node calls this at 20 Hz."""
        with self._lock:
            self._check_failure()
            if self.recording:
                for step in self.aligner.poll():
                    self._enqueue(step)

    def _enqueue(self, step: AlignedStep) -> None:
        try:
            self._queue.put_nowait((self._writer, step))
        except queue.Full:
            self.stats.queue_overflows += 1
            self._queue_holes.append(Hole(step.index, 1, ("writer queue full",)))
            log.warning("writer queue full: step %d dropped (a marked hole)", step.index)
            return
        for stream, skew in step.skew.items():
            self._skews[stream].append(skew)

    # -- writer thread -------------------------------------------------------------------
    def _drain(self) -> None:
        writer = None
        while not self._stop.is_set():
            try:
                writer, step = self._queue.get(timeout=0.1)
            except queue.Empty:
                if writer is not None and writer is self._writer and writer is not self._dead:
                    try:
                        writer.check()  # a shard write that failed after the last append
                    except StoreWriteError as exc:
                        self.stats.write_errors += 1
                        self._dead, self._failure = writer, (writer, _reason(exc))
                continue
            try:
                if writer is self._dead:
                    continue  # the episode already failed; its remaining steps go nowhere
                writer.append(step_record(step, self.camera_names, self.depth_cameras))
                newest = max(smp.receive for smp in step.samples.values())
                self.stats.lags.append(time.monotonic() - newest)
                self.stats.frames_written += 1
                self._episode_frames += 1
            except StoreWriteError as exc:  # disk full, permission, I/O error: the episode is lost
                self.stats.write_errors += 1
                self._dead, self._failure = writer, (writer, _reason(exc))
            except StepValidationError as exc:  # a malformed sample: this step becomes a hole
                self.stats.write_errors += 1
                self.stats.last_error = f"step {step.index} not written: {exc}"
                self._bad_steps.append(Hole(step.index, 1, (exc.key,)))
                log.error(self.stats.last_error)
            except Exception as exc:  # noqa: BLE001 - never kill the writer thread; fail the episode loudly
                self.stats.write_errors += 1
                self._dead, self._failure = writer, (writer, f"writing step {step.index} failed: "
                                                             f"{type(exc).__name__}: {exc}")
            finally:
                self._queue.task_done()

    def _alignment_report(self, requested_s: float) -> dict:
        """Episode metadata ``extra.alignment`` (store_record.alignment_report, shared with the bag import)."""
        return alignment_report(self.aligner.stats, control_rate_hz=self.control_rate_hz, grid_start=self._grid_start,
                                requested_s=requested_s,
                                max_skew_s={s: self.aligner.skew_limit(s) for s in self.streams}, skews=self._skews,
                                extra_holes=self._queue_holes + self._bad_steps,
                                queue_dropped_steps=len(self._queue_holes))

    def _live_skews(self, now: float) -> dict[str, dict[str, float]]:
        """Per-stream skew summary for the status, recomputed at most twice a second (the node asks
        20 times a second; a 10-minute episode has 18 000 steps per stream)."""
        cached = getattr(self, "_skew_cache", None)
        count = self._skew_count()
        if cached is None or (cached[1] != count and now - cached[0] >= 0.5) or count < cached[1]:
            self._skew_cache = (now, count, {s: skew_summary(v) for s, v in self._skews.items()})
        return self._skew_cache[2]

    def _skew_count(self) -> int:
        return len(self._skews["state"])

    # -- status ------------------------------------------------------------------------
    def status(self, now: float | None = None) -> dict:
        """The recorder's state as plain JSON-able data (fields: docs/collect.md, "Recorder status")."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._check_failure()
            st = self.aligner.stats
            recording = self.recording
            silent = self.health.silent(now)
            duration = now - self._episode_start if recording else 0.0
            p50, p99 = self.stats.lag_percentiles()
            queue_holes = len(self._queue_holes) + len(self._bad_steps)
            skews = self._live_skews(now)
            streams = {}
            for name in self.streams:
                age = self.health.age(name, now)
                streams[name] = {
                    "alive": name not in silent and age is not None,
                    "age_s": age,
                    "rate_hz": self.aligner.rate_hz(name),  # from stamps: arrival bursts do not count
                    "max_skew_ms": self.aligner.skew_limit(name) * 1000.0,
                    **{f"skew_{k}": v for k, v in skews[name].items()},
                    "gap_steps": st.gaps.get(name, 0),
                    "rejected": self.health.rejected.get(name, 0),
                    "transport_lost": self.health.transport_lost.get(name, 0),
                    "out_of_order": st.out_of_order.get(name, 0),
                    "late": st.late.get(name, 0),
                }
            level, problems = OK, []
            if self._failed:
                level = ERROR
                problems.append(f"episode {self._failed['episode']} FAILED, not saved: {self._failed['error']}")
            for name, seconds in sorted(silent.items()):
                never = self.health.last[name] is None
                text = f"{name}: no data{' since start' if never else ''} for {seconds:.1f} s"
                if recording:
                    level = ERROR
                    problems.append(text + " (its steps become a marked hole)")
                else:
                    level = ERROR if level == ERROR else WARN
                    problems.append(text)
            unseen = [n for n in self.streams if self.health.last[n] is None and n not in silent]
            if unseen and not recording:
                level = ERROR if level == ERROR else WARN
                problems.append(f"no data yet from {', '.join(unseen)}")
            if recording:
                lost = st.hole_steps + queue_holes
                if lost:
                    level = ERROR if level == ERROR else WARN
                    problems.append(f"{lost} step(s) lost in marked holes this episode")
                if sum(st.overflows.values()):
                    level = ERROR if level == ERROR else WARN
                    problems.append(f"aligner buffers overflowed: {st.overflows}")
            rejected = sum(self.health.rejected.values())
            if rejected:
                level = ERROR if level == ERROR else WARN
                problems.append(f"{rejected} malformed message(s) rejected")
            transport_lost = sum(self.health.transport_lost.values())
            if transport_lost:
                level = ERROR if level == ERROR else WARN
                problems.append(f"{transport_lost} message(s) lost in DDS transport before reaching the recorder "
                                "(see docs/collect.md, 'Large frames over DDS')")
            disk_free = self._disk_free()
            return {
                "state": self.state,
                "recording": recording,
                "level": level,
                "problems": problems,
                "episode": self._store.num_episodes if self._store is not None else 0,
                "instruction": self.instruction,
                "duration_s": duration,
                "frames": self._episode_frames,
                "steps": self._skew_count(),
                "expected_steps": int(duration * self.control_rate_hz),
                "fps": self._episode_frames / duration if duration > 0 else 0.0,
                "warmup_steps": st.warmup_steps,
                "hole_steps": st.hole_steps + queue_holes,
                "holes": [h.as_dict() for h in sorted(st.holes + self._queue_holes + self._bad_steps,
                                                      key=lambda h: h.start)],
                "trimmed_steps": st.trimmed_steps,
                "dropped_steps": st.hole_steps + queue_holes,
                "gaps": dict(st.gaps),
                "streams": streams,
                "stale_streams": sorted(silent),
                "stale_cameras": sorted(n.split("/", 1)[1] for n in silent if n.startswith("images/")),
                "rejected": dict(self.health.rejected),
                "transport_lost": dict(self.health.transport_lost),
                "out_of_order": dict(st.out_of_order),
                "queue_depth": self._queue.qsize(),
                "queue_overflows": self.stats.queue_overflows,
                "lag_p50_s": p50,
                "lag_p99_s": p99,
                "write_errors": self.stats.write_errors,
                "disk_free_bytes": disk_free,
                "episodes_saved": self.stats.episodes_saved,
                "episodes_discarded": self.stats.episodes_discarded,
                "episodes_failed": self.stats.episodes_failed,
                "last_episode": dict(self.last_episode),
                "last_error": self.stats.last_error,
            }

    def _disk_free(self) -> int:
        url = str(self.store_url or "")
        if not url or "://" in url:
            return -1
        try:
            return shutil.disk_usage(Path(url) if Path(url).exists() else Path(url).parent).free
        except OSError:
            return -1

    def close(self) -> None:
        with self._lock:
            recording = self.recording
        if recording:
            try:
                self.discard()
            except RecorderStateError:
                pass  # saved or failed meanwhile
        self._stop.set()
        self._thread.join(timeout=2.0)

