"""Latency accounting: per-stage and end-to-end p50/p99 over a bounded window.

Why a ring buffer: a deployed policy runs for hours; the statistics must describe the
recent past at constant memory, and be cheap enough to update every control step.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

import numpy as np

STAGES = ("preprocess", "vlm", "head", "total")


class LatencyStats:
    """Named series of durations in seconds; thread-safe (the inference thread writes)."""

    def __init__(self, window: int = 2000) -> None:
        if window < 1:
            raise ValueError(f"latency window must be >= 1, got {window}")
        self.window = window
        self._series: dict[str, deque[float]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            series = self._series.get(name)
            if series is None:
                series = self._series[name] = deque(maxlen=self.window)
                self._counts[name] = 0
            series.append(float(seconds))
            self._counts[name] += 1

    def extend(self, timings: dict[str, float]) -> None:
        for name, seconds in timings.items():
            self.add(name, seconds)

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def values(self, name: str) -> np.ndarray:
        with self._lock:
            return np.asarray(self._series.get(name, ()), dtype=np.float64)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{name: {count, mean_ms, p50_ms, p99_ms, max_ms}}`` for every series seen."""
        with self._lock:
            names = list(self._series)
        out: dict[str, dict[str, float]] = {}
        for name in names:
            v = self.values(name) * 1e3
            if v.size == 0:
                continue
            out[name] = {
                "count": int(self._counts[name]),
                "mean_ms": float(v.mean()),
                "p50_ms": float(np.percentile(v, 50)),
                "p99_ms": float(np.percentile(v, 99)),
                "max_ms": float(v.max()),
            }
        return out


def percentile_ms(seconds: list[float] | np.ndarray, q: float) -> float:
    v = np.asarray(seconds, dtype=np.float64)
    return float(np.percentile(v, q) * 1e3) if v.size else float("nan")
