"""The training reader: one sample per frame, with an action chunk and optional history.

Stores are opened lazily in each DataLoader worker (``_handles`` is rebuilt when the
process id changes), so the dataset pickles cheaply and never shares zarr state across
processes. State and action of the selected episodes are loaded into memory once per
worker (they are small); images are decoded on demand, one chunk per frame.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from vla_robot.data.fastread import FrameReader
from vla_robot.data.store import EpisodeStore, _is_local

SPLITS = ("train", "val", "all")


@dataclass(frozen=True)
class EpisodeRef:
    store: int  # position in the dataset's store list
    episode: int  # index inside that store
    start: int  # first frame (absolute, in the store)
    length: int


def _split_score(seed: int, store_id: str, episode: int, start_time: Any) -> float:
    """A per-episode number in [0, 1) that does not change when episodes are appended."""
    digest = hashlib.sha256(f"{seed}:{store_id}:{episode}:{start_time}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2**64


def split_episodes(
    refs: list[EpisodeRef], keys: list[str], val_fraction: float, seed: int
) -> tuple[list[EpisodeRef], list[EpisodeRef]]:
    """Episode-level split by a stable hash: at least one training episode, and with >= 2 episodes
    at least one on each side.

    Small stores need the second guarantee as much as the first: with 2 episodes and
    ``val_fraction=0.1`` both hash below the fraction about 1 % of the time, and the whole store
    went to validation (the demo's quick run then failed with "no training episodes").
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    scores = [_split_score(seed, key, r.episode, "") for r, key in zip(refs, keys)]
    val = {i for i, s in enumerate(scores) if s < val_fraction}
    if not val and val_fraction > 0 and len(refs) >= 2:
        val = {int(np.argmin(scores))}
    if refs and len(val) == len(refs):
        val.discard(int(np.argmax(scores)))  # the least "val-like" episode trains
    train = [r for i, r in enumerate(refs) if i not in val]
    return train, [r for i, r in enumerate(refs) if i in val]


class VLADataset(Dataset):
    """Frames of one or more stores as training samples (see ``__getitem__`` for the keys).

    ``episodes`` restricts to a list of ``(store_position, episode_index)`` pairs (or plain
    episode indices when there is one store) before the split. Dropped episodes are skipped.
    """

    def __init__(
        self,
        stores: str | os.PathLike | EpisodeStore | Sequence[str | os.PathLike | EpisodeStore],
        cameras: list[str],
        image_size: tuple[int, int] | None = None,
        horizon: int = 1,
        split: str = "train",
        val_fraction: float = 0.1,
        seed: int = 0,
        history: int = 0,
        episodes: Sequence[int | tuple[int, int]] | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        if history < 0:
            raise ValueError(f"history must be >= 0, got {history}")
        if isinstance(stores, (str, os.PathLike, EpisodeStore)):
            stores = [stores]
        opened = [s if isinstance(s, EpisodeStore) else EpisodeStore.open(s) for s in stores]
        if not opened:
            raise ValueError("VLADataset needs at least one store")
        self.urls = [s.url for s in opened]
        self.cameras = list(cameras)
        self.image_size = tuple(image_size) if image_size is not None else None
        self.horizon, self.history, self.split = horizon, history, split
        first = opened[0].schema
        for pos, store in enumerate(opened):
            sch = store.schema
            missing = [c for c in self.cameras if c not in sch.camera_names]
            if missing:
                raise ValueError(f"store {store.url} has no camera {missing}; it has {list(sch.camera_names)}")
            if (sch.state_dim, sch.action_dim) != (first.state_dim, first.action_dim):
                raise ValueError(
                    f"store {store.url} has state/action dims {sch.state_dim}/{sch.action_dim}, "
                    f"but {opened[0].url} has {first.state_dim}/{first.action_dim}"
                )
            if self.image_size is None:
                sizes = {(sch.camera(c).height, sch.camera(c).width) for c in self.cameras}
                if pos and sizes != {(first.camera(c).height, first.camera(c).width) for c in self.cameras}:
                    raise ValueError(f"store {store.url} has other camera sizes; pass image_size to resize")
        refs, keys = [], []
        wanted = None
        if episodes is not None:
            wanted = {(e if isinstance(e, tuple) else (0, int(e))) for e in episodes}
        for pos, store in enumerate(opened):
            for ep in store.episode_indices():
                if wanted is not None and (pos, ep) not in wanted:
                    continue
                sl = store.episode_slice(ep)
                refs.append(EpisodeRef(pos, ep, sl.start, sl.stop - sl.start))
                keys.append(f"{pos}:{store.schema.robot}:{store.episode_meta(ep).get('start_time')}")
        train, val = split_episodes(refs, keys, val_fraction, seed)
        self.episodes: list[EpisodeRef] = {"train": train, "val": val, "all": refs}[split]
        self._meta = {(r.store, r.episode): opened[r.store].episode_meta(r.episode) for r in self.episodes}
        lengths = np.array([r.length for r in self.episodes], dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(lengths)])
        self._given = {i: s for i, s in enumerate(opened)}
        self._handles: dict[int, dict] | None = None
        self._pid = os.getpid()

    def __len__(self) -> int:
        return int(self._cum[-1])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_handles"] = None
        state["_given"] = {i: s for i, s in self._given.items() if s.url.startswith("memory://")}
        return state

    def _store(self, pos: int) -> dict:
        if self._handles is None or self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(pos)
        if handle is None:
            given = self._given.get(pos) if self._pid == os.getpid() else None
            store = EpisodeStore.open(self.urls[pos]) if given is None else given
            seg_start, seg_end = contiguous_runs(store.step_index(), store.episode_ends)
            handle = {
                "store": store,
                "state": np.asarray(store._array("data/state")[: store.num_frames]),
                "action": np.asarray(store._array("data/action")[: store.num_frames]),
                "images": {c: _frame_reader(store, c) for c in self.cameras},
                "seg_start": seg_start,
                "seg_end": seg_end,
            }
            self._handles[pos] = handle
        return handle

    def locate(self, index: int) -> tuple[EpisodeRef, int]:
        """Dataset index -> (episode, frame index inside it)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        k = int(np.searchsorted(self._cum, index, side="right") - 1)
        return self.episodes[k], int(index - self._cum[k])

    def _image(self, handle: dict, ref: EpisodeRef, cam: str, frame: int) -> torch.Tensor:
        try:
            reader = handle["images"][cam]
            t = ref.start + frame
            image = reader.read(t) if isinstance(reader, FrameReader) else reader[t]
        except Exception as exc:  # noqa: BLE001 - name the episode, not zarr internals
            from vla_robot.data.errors import CorruptEpisodeError

            raise CorruptEpisodeError(ref.episode, f"images/{cam}", exc) from exc
        if self.image_size is not None and image.shape[:2] != self.image_size:
            h, w = self.image_size
            interp = cv2.INTER_AREA if h < image.shape[0] else cv2.INTER_LINEAR
            image = cv2.resize(image, (w, h), interpolation=interp)
        return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Keys: images {cam: uint8 (3,H,W)}, state (S,), instruction, action (H,A), action_is_pad (H,)
        (padded past the episode's end and past a hole: a chunk never spans one),
        goal_state (S,): the state at the episode's last frame, where the demonstration ended up),
        episode_index, frame_index, store_index, task_id, emoji_id, success; with history > 0 also
        images_history {cam: (history,3,H,W)}, state_history (history,S), history_is_pad (history,)
        (history frames before the episode start or a hole repeat the first frame after it, flagged as pad)."""
        ref, t = self.locate(index)
        handle = self._store(ref.store)
        state, action = handle["state"], handle["action"]
        # A chunk (and a history) stays inside the run of contiguous grid steps around t: past the
        # episode's end or a hole, actions are padded with the last one before it, never taken from
        # the far side of the hole.
        first = int(handle["seg_start"][ref.start + t]) - ref.start
        last = int(handle["seg_end"][ref.start + t]) - ref.start - 1
        steps = np.arange(t, t + self.horizon)
        is_pad = steps > last
        chunk = action[ref.start + np.minimum(steps, last)]
        meta = self._meta[(ref.store, ref.episode)]
        sample: dict[str, Any] = {
            "images": {c: self._image(handle, ref, c, t) for c in self.cameras},
            "state": torch.from_numpy(state[ref.start + t].copy()),
            "goal_state": torch.from_numpy(state[ref.start + ref.length - 1].copy()),
            "instruction": meta.get("instruction", ""),
            "action": torch.from_numpy(chunk.astype(np.float32, copy=False)),
            "action_is_pad": torch.from_numpy(is_pad),
            "episode_index": ref.episode,
            "frame_index": t,
            "store_index": ref.store,
            "task_id": meta.get("task_id"),
            "emoji_id": meta.get("emoji_id"),
            "success": bool(meta.get("success", False)),
        }
        if self.history:
            past = np.arange(t - self.history, t)
            hist_pad = past < first
            past = np.maximum(past, first)
            sample["images_history"] = {
                c: torch.stack([self._image(handle, ref, c, int(p)) for p in past]) for c in self.cameras
            }
            sample["state_history"] = torch.from_numpy(state[ref.start + past].copy())
            sample["history_is_pad"] = torch.from_numpy(hist_pad)
        return sample


def contiguous_runs(step_index: np.ndarray, episode_ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every frame, the first frame and the end (exclusive) of its run of consecutive grid
    steps: a run breaks at an episode start and wherever ``step_index`` jumps (a hole)."""
    n = len(step_index)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    breaks = np.ones(n, dtype=bool)
    breaks[1:] = np.diff(step_index) != 1
    starts_of_episodes = np.asarray(episode_ends[:-1], dtype=np.int64)
    breaks[starts_of_episodes[starts_of_episodes < n]] = True
    run = np.cumsum(breaks) - 1
    run_first = np.flatnonzero(breaks)
    run_end = np.append(run_first[1:], n)
    return run_first[run], run_end[run]


def _frame_reader(store: EpisodeStore, cam: str):
    """The direct shard reader for local stores, zarr itself for remote ones."""
    array = store._array(f"data/images/{cam}")
    if _is_local(store.url):
        try:
            return FrameReader(store.url, array)
        except ValueError:
            pass
    return array


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors and numbers into batch tensors; keep strings and None-able metadata as lists."""
    first = samples[0]
    out: dict[str, Any] = {}
    for key, value in first.items():
        values = [s[key] for s in samples]
        if isinstance(value, dict):
            out[key] = collate(values)
        elif isinstance(value, torch.Tensor):
            out[key] = torch.stack(values)
        elif (
            isinstance(value, (bool, int, float))
            and not isinstance(value, str)
            and all(type(v) is type(value) for v in values)
        ):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out
