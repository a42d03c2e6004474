"""Training data: weighted store mixtures, a resumable deterministic batch order, and collators.

Batch `k` of a run is a pure function of (seed, k), so resuming at step `k` replays
exactly the batches an uninterrupted run would have seen, without reading the skipped ones.
"""

from __future__ import annotations

import hashlib
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler

from vla_robot.models.prompting import VLAPreprocessor
from vla_robot.models.vla import IGNORE_INDEX


def _generator(seed: int, stream: str, k: int) -> torch.Generator:
    digest = hashlib.sha256(f"{seed}:{stream}:{k}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


class MixtureBatchSampler(Sampler[list[int]]):
    """Infinite batches over concatenated datasets; each dataset is drawn with its mixture weight."""

    def __init__(self, lengths: list[int], weights: list[float], batch_size: int, seed: int,
                 start_batch: int = 0, stream: str = "robot"):
        if any(n <= 0 for n in lengths):
            raise ValueError(f"every dataset in the mixture needs samples; lengths {lengths}")
        probs = np.concatenate([np.full(n, w / n) for n, w in zip(lengths, weights)])
        self.probs = torch.as_tensor(probs / probs.sum(), dtype=torch.float64)
        self.batch_size, self.seed, self.start_batch, self.stream = batch_size, seed, start_batch, stream

    def batch(self, k: int) -> list[int]:
        g = _generator(self.seed, self.stream, k)
        return torch.multinomial(self.probs, self.batch_size, replacement=True, generator=g).tolist()

    def __iter__(self) -> Iterator[list[int]]:
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1


class RobotCollator:
    """Samples → {"inputs": backbone inputs, "state", "goal_state", "action", "action_is_pad"} (runs in workers)."""

    def __init__(self, preprocessor: VLAPreprocessor, use_state: bool):
        self.preprocessor, self.use_state = preprocessor, use_state

    def __call__(self, samples: list[dict]) -> dict:
        from vla_robot.data.dataset import collate

        batch = collate(samples)
        out = {
            "inputs": self.preprocessor(batch["images"], list(batch["instruction"])),
            "action": batch["action"].float(),
            "action_is_pad": batch["action_is_pad"].bool(),
        }
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


def mixture_loader(datasets: list[Dataset], weights: list[float], batch_size: int, seed: int, collate_fn,
                   num_workers: int = 0, start_batch: int = 0, stream: str = "robot") -> DataLoader:
    sampler = MixtureBatchSampler([len(d) for d in datasets], weights, batch_size, seed, start_batch, stream)
    return DataLoader(ConcatDataset(datasets), batch_sampler=sampler, collate_fn=collate_fn,
                      num_workers=num_workers, persistent_workers=False,
                      prefetch_factor=4 if num_workers else None)


def fixed_batches(dataset: Dataset, batch_size: int, max_batches: int, collate_fn) -> list[dict]:
    """`max_batches` batches spread evenly over `dataset` (validation: the same every time)."""
    n = min(len(dataset), batch_size * max_batches)
    idx = np.linspace(0, len(dataset) - 1, n).round().astype(int).tolist() if n else []
    return [collate_fn([dataset[i] for i in idx[s:s + batch_size]]) for s in range(0, n, batch_size)]
