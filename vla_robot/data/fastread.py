"""Random access to single image frames of a local store without zarr's per-call overhead.

A sharded zarr v3 array keeps, at the end of each shard file, an index of
``(offset, nbytes)`` uint64 pairs (one per inner chunk) followed by a crc32c. With one
frame per chunk, reading a frame is one ``pread`` and one decode. File handles and
indices are cached per shard; a writer replaces shard files atomically (rename), so a
cached handle keeps seeing the consistent old file, whose committed frames are unchanged.
Used by ``VLADataset`` for local stores; remote stores go through zarr.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import numpy as np
import zarr

from vla_robot.data.codecs import CODEC_NAME, decode_image

MISSING = np.uint64(2**64 - 1)


class FrameReader:
    """Decode frame ``t`` of one local sharded image array (``data/images/<cam>``)."""

    def __init__(self, root: str, array: zarr.Array, max_open_shards: int = 64) -> None:
        meta = array.metadata.to_dict()
        sharding = meta["codecs"][0]
        config = sharding.get("configuration", {})
        inner = config.get("codecs", [{}])[0]
        if sharding.get("name") != "sharding_indexed" or inner.get("name") != CODEC_NAME:
            raise ValueError(f"{array.path} is not a sharded {CODEC_NAME} array")
        if config.get("index_location", "end") != "end" or array.chunks[0] != 1:
            raise ValueError(f"{array.path}: unsupported shard layout {config}")
        self.format = inner["configuration"]["format"]
        self.shard_frames = array.shards[0]
        self.frame_shape = tuple(array.shape[1:])
        self.dtype = array.dtype
        self._dir = Path(root) / array.path
        self._meta = array.metadata
        self._ndim = len(array.shape)
        self._index_bytes = 16 * self.shard_frames + 4
        self._max_open = max_open_shards  # bounded: a big store has tens of thousands of shards
        self._shards: OrderedDict[int, tuple[int, np.ndarray]] = OrderedDict()

    def _shard(self, k: int) -> tuple[int, np.ndarray] | None:
        cached = self._shards.get(k)
        if cached is not None:
            self._shards.move_to_end(k)
        else:
            key = self._meta.encode_chunk_key((k,) + (0,) * (self._ndim - 1))
            try:
                fd = os.open(self._dir / key, os.O_RDONLY)
            except FileNotFoundError:
                return None
            size = os.fstat(fd).st_size
            raw = os.pread(fd, self._index_bytes, size - self._index_bytes)
            index = np.frombuffer(raw[:-4], dtype="<u8").reshape(self.shard_frames, 2)
            cached = (fd, index)
            self._shards[k] = cached
            if len(self._shards) > self._max_open:
                _, (old_fd, _) = self._shards.popitem(last=False)
                os.close(old_fd)
        return cached

    def read(self, t: int) -> np.ndarray:
        k, j = divmod(int(t), self.shard_frames)
        shard = self._shard(k)
        if shard is None or shard[1][j, 0] == MISSING:
            return np.zeros(self.frame_shape, self.dtype)
        fd, index = shard
        offset, nbytes = int(index[j, 0]), int(index[j, 1])
        image = decode_image(os.pread(fd, nbytes, offset), self.format)
        if image.shape != self.frame_shape:
            raise ValueError(f"decoded frame {t} has shape {image.shape}, expected {self.frame_shape}")
        return image

    def close(self) -> None:
        for fd, _ in self._shards.values():
            os.close(fd)
        self._shards.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
