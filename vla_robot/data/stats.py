"""Normalisation statistics (per dimension) of state and action, as trainers expect them."""

from __future__ import annotations

import numpy as np

STAT_NAMES = ("mean", "std", "min", "max", "q01", "q99", "count")


def compute_stats(columns: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """``{key: (N, D) array}`` -> ``{key: {mean, std, min, max, q01, q99, count}}`` (float64 per dimension)."""
    out = {}
    for key, values in columns.items():
        x = np.asarray(values, dtype=np.float64)
        q01, q99 = np.quantile(x, [0.01, 0.99], axis=0)
        out[key] = {
            "mean": x.mean(axis=0),
            "std": x.std(axis=0),
            "min": x.min(axis=0),
            "max": x.max(axis=0),
            "q01": q01,
            "q99": q99,
            "count": np.asarray(len(x)),
        }
    return out


def stats_to_json(stats: dict[str, dict[str, np.ndarray]]) -> dict:
    return {k: {name: np.asarray(v).tolist() for name, v in d.items()} for k, d in stats.items()}


def stats_from_json(data: dict) -> dict[str, dict[str, np.ndarray]]:
    return {k: {name: np.asarray(v, dtype=np.float64) for name, v in d.items()} for k, d in data.items()}
