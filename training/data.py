"""Training data: one global sample stream per kind, sliced across processes, and the collators.

The robot samples of a run form one flat, infinite stream: block `j` holds `block` dataset
indices drawn (with the mixture weights) from a generator seeded by (seed, stream, j), and
sample `p` of the stream is entry `p % block` of block `p // block`. Global micro-batch `i`
takes the next `batch_size x processes` samples and process `r` takes its slice of them. So:

* 2 processes with batch 4 see exactly the samples 1 process with batch 8 sees (the DDP
  equivalence test checks the parameters after N steps);
* a resume continues at the saved stream position, also with another number of processes or
  another batch size: the order of samples is the same, only the batch boundaries move;
* a single process with `block = batch_size` draws the same batches as before this stream
  existed (block j == batch j), so earlier runs and their seeds keep their meaning.
"""

from __future__ import annotations

import bisect
import hashlib
from functools import lru_cache
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vla_robot.models.prompting import VLAPreprocessor
from vla_robot.models.vla import IGNORE_INDEX


def _generator(seed: int, stream: str, k: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{stream}:{k}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class SampleStream:
    """The flat, deterministic stream of dataset indices of one kind (robot or VQA) of a run."""

    def __init__(self, lengths: list[int], weights: list[float], block: int, seed: int, stream: str):
        if any(n <= 0 for n in lengths):
            raise ValueError(f"every dataset in the mixture needs samples; lengths {lengths}")
        probs = np.concatenate([np.full(n, w / n) for n, w in zip(lengths, weights)])
        self.probs = torch.as_tensor(probs / probs.sum(), dtype=torch.float64)
        self.block, self.seed, self.stream = block, seed, stream
        self._block = lru_cache(maxsize=8)(self._draw)

    def _draw(self, j: int) -> tuple[int, ...]:
        g = _generator(self.seed, self.stream, j)
        return tuple(torch.multinomial(self.probs, self.block, replacement=True, generator=g).tolist())

    def take(self, start: int, n: int) -> list[int]:
        """Dataset indices of stream positions [start, start + n)."""
        out = []
        for p in range(start, start + n):
            out.append(self._block(p // self.block)[p % self.block])
        return out


class StreamBatchSampler(Sampler[list]):
    """This process's micro-batches: global micro-batch i covers positions
    [start + i*G, start + (i+1)*G) with G = batch_size x world; rank r takes its batch_size slice.

    Keys are `(index, position)` pairs so that a dataset can seed per-sample augmentation
    by the position (`StreamDataset`)."""

    def __init__(self, stream: SampleStream, start: int, batch_size: int, rank: int = 0, world: int = 1):
        self.stream, self.start, self.batch_size, self.rank, self.world = stream, start, batch_size, rank, world

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world

    def __iter__(self) -> Iterator[list]:
        pos = self.start + self.rank * self.batch_size
        while True:
            idx = self.stream.take(pos, self.batch_size)
            yield [(i, pos + k) for k, i in enumerate(idx)]
            pos += self.global_batch


class StreamDataset(Dataset):
    """Concatenated datasets addressed by stream keys; per-dataset sample transforms
    (cross-embodiment maps, camera renames) and seeded augmentation applied in the worker."""

    def __init__(self, datasets: list[Dataset], transforms: list | None = None, augment=None, seed: int = 0,
                 stream: str = "robot"):
        self.datasets = datasets
        self.transforms = transforms or [None] * len(datasets)
        self.offsets = np.cumsum([0] + [len(d) for d in datasets]).tolist()
        self.augment, self.seed, self.stream = augment, seed, stream

    def __len__(self) -> int:
        return self.offsets[-1]

    def __getitem__(self, key) -> dict:
        index, position = key if isinstance(key, tuple) else (key, None)
        k = bisect.bisect_right(self.offsets, index) - 1
        sample = self.datasets[k][index - self.offsets[k]]
        if self.transforms[k] is not None:
            sample = self.transforms[k](sample)
        if self.augment is not None and position is not None:
            from training.augment import sample_seed

            sample = {**sample, "images": self.augment(sample["images"], sample_seed(self.seed, self.stream, position))}
        return sample


class RenameCameras:
    """A store's camera names → the model's (StoreRef.cameras)."""

    def __init__(self, mapping: dict[str, str], then=None):
        self.mapping, self.then = mapping, then

    def __call__(self, sample: dict) -> dict:
        sample = {**sample, "images": {self.mapping.get(c, c): v for c, v in sample["images"].items()}}
        return self.then(sample) if self.then is not None else sample


class RobotCollator:
    """Samples → {"inputs": backbone inputs, "state", "goal_state", "action", "action_is_pad"} (runs in workers).

    Cross-embodiment samples carry `action_target`/`state_norm`/... (training/embodiment.py)
    instead of raw state and action; those pass through. `center=False` skips the centre crop
    for frames that the augmentation already cropped at random."""

    PASS = ("action_target", "action_dim_mask", "state_norm", "goal_state_norm", "state_dim_mask")

    def __init__(self, preprocessor: VLAPreprocessor, use_state: bool, center: bool = True):
        self.preprocessor, self.use_state, self.center = preprocessor, use_state, center

    def __call__(self, samples: list[dict]) -> dict:
        from vla_robot.data.dataset import collate

        kinds = {"action_target" in s for s in samples}
        if len(kinds) > 1:
            raise ValueError("a batch mixes mapped (cross-embodiment) and raw samples; map every store of a phase")
        batch = collate(samples)
        out = {
            "inputs": self.preprocessor(batch["images"], list(batch["instruction"]), center=self.center),
            "action_is_pad": batch["action_is_pad"].bool(),
        }
        if "action_target" in batch:
            out.update({k: batch[k] for k in self.PASS if k in batch and (self.use_state or "state" not in k)})
            return out
        out["action"] = batch["action"].float()
        if self.use_state:
            out["state"] = batch["state"].float()
            out["goal_state"] = batch["goal_state"].float()
        return out


class VQACollator:
    """VQA samples → {"inputs", "labels"}: answer tokens + eos after the prompt, -100 elsewhere."""

    def __init__(self, preprocessor: VLAPreprocessor):
        self.preprocessor = preprocessor

    def __call__(self, samples: list[dict]) -> dict:
        tok = self.preprocessor.tokenizer
        images = torch.stack([s["image"] for s in samples])
        cams = {c: images for c in self.preprocessor.cameras}
        inputs = self.preprocessor(cams, [s["question"] for s in samples])
        answers = [tok(" " + s["answer"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for s in samples]
        width = max(len(a) for a in answers)
        labels = torch.full((len(answers), width), IGNORE_INDEX, dtype=torch.long)
        for i, a in enumerate(answers):
            labels[i, : len(a)] = torch.tensor(a)
        return {"inputs": inputs, "labels": labels}


def stream_loader(dataset: StreamDataset, sampler: StreamBatchSampler, collate_fn, num_workers: int = 0) -> DataLoader:
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_fn, num_workers=num_workers,
                      persistent_workers=False, prefetch_factor=4 if num_workers else None)


def fixed_batches(dataset: Dataset, batch_size: int, max_batches: int, collate_fn) -> list[dict]:
    """`max_batches` batches spread evenly over `dataset` (validation: the same every time)."""
    n = min(len(dataset), batch_size * max_batches)
    idx = np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist() if n else []
    return [collate_fn([dataset[i] for i in idx[s:s + batch_size]]) for s in range(0, n, batch_size)]
