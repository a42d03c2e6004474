"""A small, deterministic k-means (k-means++ seeding, Lloyd iterations, best of a few restarts).

Used to find the end-state classes of a classified goal head (``model.goal_classes``):
a few hundred final robot states, a handful of classes, so numpy is plenty.
"""

from __future__ import annotations

import numpy as np


def kmeans(x: np.ndarray, k: int, seed: int = 0, restarts: int = 4, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(centres (k, D), labels (N,)) of the lowest-inertia run; deterministic for a seed."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < k or k < 1:
        raise ValueError(f"kmeans needs an (N, D) array with N >= k >= 1, got shape {x.shape} and k={k}")
    rng = np.random.default_rng(seed)
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for _ in range(restarts):
        centres = _plus_plus(x, k, rng)
        for _ in range(iterations):
            labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            moved = np.stack([x[labels == j].mean(0) if np.any(labels == j) else centres[j] for j in range(k)])
            if np.allclose(moved, centres):
                break
            centres = moved
        labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        inertia = float(((x - centres[labels]) ** 2).sum())
        if best is None or inertia < best[0]:
            best = (inertia, centres, labels)
    return best[1], best[2]


def _plus_plus(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centres = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d2 = ((x[:, None] - np.asarray(centres)[None]) ** 2).sum(-1).min(1)
        total = d2.sum()
        centres.append(x[rng.choice(len(x), p=d2 / total)] if total > 0 else x[rng.integers(len(x))])
    return np.asarray(centres)
