"""Streams one episode into the store with bounded memory, then commits it atomically.

Frames are buffered up to the next shard boundary (``shard_frames``) and then encoded
and written by one background thread while the next shard fills (two preallocated
buffers), so a 30 Hz recording loop never stalls for a whole shard's JPEG encoding and
memory stays bounded whatever the episode length. If the writer falls behind, ``append``
waits (back-pressure) instead of growing a queue. Nothing written here is visible to
readers until ``commit`` writes ``meta/episode_ends`` (the commit point).
"""

from __future__ import annotations

import math
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np

from vla_robot.data.errors import StepValidationError, StoreError
from vla_robot.data.schema import StoreSchema


class EpisodeSink(Protocol):
    """What the writer needs from its store (``EpisodeStore`` is one). A Protocol rather than an
    import, so store.py -> writer.py is the only import between the two modules."""

    schema: StoreSchema
    shard_frames: int
    format_version: int

    @property
    def num_frames(self) -> int: ...

    @property
    def num_episodes(self) -> int: ...

    def data_keys(self) -> list[str]: ...

    def frame_layout(self) -> dict[str, tuple[tuple[int, ...], np.dtype]]: ...

    def _write_frames(self, lo: int, hi: int, arrays: dict[str, np.ndarray], episode: int) -> None: ...

    def _commit_episode(self, end: int, meta: dict, writer: EpisodeWriter) -> None: ...

    def _release_writer(self, writer: EpisodeWriter) -> None: ...


class EpisodeWriter:
    """Returned by ``EpisodeStore.begin_episode``; see :meth:`append`, :meth:`commit`, :meth:`discard`.

    Usable as a context manager: an exception inside the block discards the episode; leaving
    the block without ``commit`` also discards it (with a warning), so nothing half-done is saved.
    """

    def __init__(self, store: EpisodeSink, meta: dict[str, Any], background: bool = True) -> None:
        self.store = store
        self.schema = store.schema
        self.meta = meta
        self.start = store.num_frames
        self.episode_index = store.num_episodes
        self.shard_frames = store.shard_frames
        self._keys = store.data_keys()
        # Two preallocated shard-long buffers: append copies each frame once (callers may reuse
        # theirs) into one while the background thread writes the other.
        layout = store.frame_layout()
        self._banks = [
            {k: np.empty((self.shard_frames, *shape), dtype) for k, (shape, dtype) in layout.items()}
            for _ in range(2 if background else 1)
        ]
        self._bank = 0
        self._pending: list[Future | None] = [None] * len(self._banks)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="vla-episode-writer") if background else None
        self._flushed = 0
        self._buffered = 0
        self._closed = False
        self._first_stamp: float | None = None
        self._last_stamp: float | None = None
        self._last_step: int = -1  # step_index of the newest appended step

    @property
    def num_frames(self) -> int:
        return self._flushed + self._buffered

    # ---------------------------------------------------------------- validation
    def _check_vector(self, step: dict, key: str, dim: int, t: int) -> np.ndarray:
        if key not in step:
            raise StepValidationError(t, key, "missing")
        value = step[key]
        if not isinstance(value, np.ndarray):
            raise StepValidationError(
                t, key, f"expected a numpy float32 array of shape ({dim},), got {type(value).__name__}"
            )
        if value.dtype != np.float32:
            raise StepValidationError(
                t, key, f"expected dtype float32, got {value.dtype} (cast with .astype(np.float32))"
            )
        if value.shape != (dim,):
            raise StepValidationError(t, key, f"expected shape ({dim},), got {value.shape}")
        if not np.isfinite(value).all():
            bad = np.flatnonzero(~np.isfinite(value)).tolist()
            raise StepValidationError(t, key, f"contains NaN/inf at dims {bad}")
        return value

    def _check_image(self, value: Any, key: str, shape: tuple[int, ...], dtype: type, t: int) -> np.ndarray:
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise StepValidationError(
                t,
                key,
                f"got {len(value)} encoded bytes; pass the decoded {np.dtype(dtype).name} array of shape {shape} "
                "(the store encodes frames itself)",
            )
        if not isinstance(value, np.ndarray):
            raise StepValidationError(t, key, f"expected a numpy array, got {type(value).__name__}")
        if value.dtype != dtype:
            raise StepValidationError(t, key, f"expected dtype {np.dtype(dtype).name}, got {value.dtype}")
        if value.shape != shape:
            raise StepValidationError(t, key, f"expected shape {shape}, got {value.shape}")
        return value

    def _stamps(self, step: dict, t: int) -> dict[str, tuple[float, float]]:
        per_stream = step.get("stamps") or {}
        streams = self.schema.streams()
        unknown = sorted(set(per_stream) - set(streams))
        if unknown:
            raise StepValidationError(t, f"stamps/{unknown[0]}", f"unknown stream; streams are {streams}")
        default = None
        if "stamp" in step or "receive_stamp" in step:
            if "stamp" not in step or "receive_stamp" not in step:
                raise StepValidationError(
                    t, "stamp", "give both 'stamp' (source time) and 'receive_stamp' (receive time)"
                )
            default = (step["stamp"], step["receive_stamp"])
        out = {}
        for stream in streams:
            pair = per_stream.get(stream, default)
            if pair is None:
                raise StepValidationError(
                    t, f"stamps/{stream}", "missing timestamps (give 'stamp'+'receive_stamp' or 'stamps')"
                )
            try:
                source, receive = float(pair[0]), float(pair[1])
            except (TypeError, ValueError, IndexError):
                raise StepValidationError(
                    t, f"stamps/{stream}", f"expected (source, receive) floats, got {pair!r}"
                ) from None
            if not (math.isfinite(source) and math.isfinite(receive)):
                raise StepValidationError(t, f"stamps/{stream}", f"non-finite timestamp {pair!r}")
            out[stream] = (source, receive)
        return out

    def _validate(self, step: dict) -> dict[str, np.ndarray]:
        t = self.num_frames
        if not isinstance(step, dict):
            raise StepValidationError(t, "<step>", f"expected a dict, got {type(step).__name__}")
        schema = self.schema
        row: dict[str, np.ndarray] = {
            "state": self._check_vector(step, "state", schema.state_dim, t),
            "action": self._check_vector(step, "action", schema.action_dim, t),
        }
        images = step.get("images") or {}
        depths = step.get("depth") or {}
        for extra in sorted(set(images) - set(schema.camera_names)):
            raise StepValidationError(
                t, f"images/{extra}", f"unknown camera; schema cameras are {list(schema.camera_names)}"
            )
        for extra in sorted(set(depths) - {c.name for c in schema.cameras if c.depth}):
            raise StepValidationError(t, f"depth/{extra}", "camera has no depth stream in the schema")
        for cam in schema.cameras:
            key = f"images/{cam.name}"
            if cam.name not in images or images[cam.name] is None:
                raise StepValidationError(t, key, "missing camera frame")
            row[key] = self._check_image(images[cam.name], key, (cam.height, cam.width, 3), np.uint8, t)
            if cam.depth:
                key = f"depth/{cam.name}"
                if cam.name not in depths or depths[cam.name] is None:
                    raise StepValidationError(t, key, "missing depth frame")
                row[key] = self._check_image(depths[cam.name], key, (cam.height, cam.width), np.uint16, t)
        for stream, pair in self._stamps(step, t).items():
            row[f"stamps/{stream}"] = np.asarray(pair, dtype=np.float64)
        if self.store.format_version >= 2:
            row["step_index"] = np.asarray(self._step_index(step, t), dtype=np.int64)
            for stream, skew in self._skews(step, t).items():
                row[f"skew/{stream}"] = np.asarray(skew, dtype=np.float32)
        return row

    def _step_index(self, step: dict, t: int) -> int:
        """The grid step of this frame (default: the next one). A jump over k steps marks a hole of k."""
        if step.get("step_index") is None:
            return self._last_step + 1
        value = step["step_index"]
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise StepValidationError(t, "step_index", f"expected an int, got {type(value).__name__}")
        if self._last_step < 0 and value != 0:
            raise StepValidationError(t, "step_index", f"an episode's first step has step_index 0, got {int(value)}")
        if value <= self._last_step:
            raise StepValidationError(t, "step_index", f"{int(value)} must be above the previous step's {self._last_step}")
        return int(value)

    def _skews(self, step: dict, t: int) -> dict[str, float]:
        """Sample stamp minus grid time per stream (seconds); NaN where the caller did not align."""
        given = step.get("skew") or {}
        streams = self.schema.streams()
        unknown = sorted(set(given) - set(streams))
        if unknown:
            raise StepValidationError(t, f"skew/{unknown[0]}", f"unknown stream; streams are {streams}")
        out = {}
        for stream in streams:
            try:
                out[stream] = float(given.get(stream, math.nan))
            except (TypeError, ValueError):
                raise StepValidationError(t, f"skew/{stream}", f"expected seconds, got {given[stream]!r}") from None
        return out

    # ---------------------------------------------------------------- writing
    def append(self, step: dict) -> None:
        """Validate and buffer one control step; raises ``StepValidationError`` naming key and step."""
        if self._closed:
            raise RuntimeError(f"episode {self.episode_index} writer is already committed/discarded")
        self._check_background()
        row = self._validate(step)
        slot = (self.start + self.num_frames) % self.shard_frames
        bank = self._banks[self._bank]
        for key in self._keys:
            bank[key][slot] = row[key]
        source = float(row["stamps/state"][0])
        self._first_stamp = source if self._first_stamp is None else self._first_stamp
        self._last_stamp = source
        if "step_index" in row:
            self._last_step = int(row["step_index"])
        self._buffered += 1
        if (self.start + self.num_frames) % self.shard_frames == 0:
            self._flush()

    def _flush(self) -> None:
        if not self._buffered:
            return
        lo = self.start + self._flushed
        hi = lo + self._buffered
        first = lo % self.shard_frames
        arrays = {k: v[first : first + self._buffered] for k, v in self._banks[self._bank].items()}
        if self._executor is None:
            self._guard(lambda: self.store._write_frames(lo, hi, arrays, episode=self.episode_index))
        else:
            self._pending[self._bank] = self._executor.submit(
                self.store._write_frames, lo, hi, arrays, episode=self.episode_index
            )
            self._bank = (self._bank + 1) % len(self._banks)
            self._wait(self._bank)  # the next bank must be written before it is refilled
        self._flushed += self._buffered
        self._buffered = 0

    def _guard(self, fn) -> None:
        try:
            fn()
        except StoreError:
            self._abort()
            raise

    def _wait(self, bank: int) -> None:
        future, self._pending[bank] = self._pending[bank], None
        if future is not None:
            self._guard(future.result)

    def check(self) -> None:
        """Raise the error of a failed background write now (``append`` does it too), so a caller
        between appends learns of a full disk at once. Call it from the thread that appends."""
        if not self._closed:
            self._check_background()

    def _check_background(self) -> None:
        """Surface a failed background write at the next call instead of at commit."""
        for bank, future in enumerate(self._pending):
            if future is not None and future.done() and future.exception() is not None:
                self._wait(bank)

    def _drain(self) -> None:
        for bank in range(len(self._pending)):
            self._wait(bank)

    def _abort(self) -> None:
        """Stop after a write error: forget pending work, release the store."""
        self._closed = True
        for future in self._pending:
            if future is not None:
                future.cancel()
        self._pending = [None] * len(self._pending)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self.store._release_writer(self)

    def commit(self, success: bool, **extra_meta: Any) -> int:
        """Write remaining frames, then the episode metadata, then ``meta/episode_ends`` (the commit point).

        Returns the new episode's index. An empty episode cannot be committed.
        """
        if self._closed:
            raise RuntimeError(f"episode {self.episode_index} writer is already committed/discarded")
        if self.num_frames == 0:
            raise ValueError(f"episode {self.episode_index}: cannot commit an episode with no steps")
        self._check_background()
        self._flush()
        self._drain()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        duration = (self._last_stamp - self._first_stamp) + 1.0 / self.schema.control_rate_hz
        meta = dict(self.meta)
        meta.update(
            success=bool(success),
            num_frames=self.num_frames,
            duration_s=float(duration),
            committed_time=time.time(),
            complete=True,
        )
        if self._last_step >= 0:  # format 2: grid steps spanned, of which hole_steps were not stored
            meta.update(grid_steps=self._last_step + 1, hole_steps=self._last_step + 1 - self.num_frames)
        if extra_meta:
            meta["extra"] = {**meta.get("extra", {}), **extra_meta}
        self._closed = True
        self.store._commit_episode(self.start + self.num_frames, meta, writer=self)
        return self.episode_index

    def discard(self) -> None:
        """Drop this episode; frames already flushed are overwritten by the next episode."""
        if self._closed:
            return
        self._closed = True
        if self._executor is not None:
            # let an in-flight shard finish (it is past the commit point, so harmless); drop queued ones
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._pending = [None] * len(self._pending)
        self._banks = []
        self.store._release_writer(self)

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._closed:
            return
        if exc_type is None:
            warnings.warn(
                f"episode {self.episode_index} left its `with` block without commit(); discarded", stacklevel=2
            )
        self.discard()
