"""Turn a stream of overlapping action chunks into exactly one action per control step.

Time is counted in control steps. A chunk predicted from the observation of step ``t0``
holds actions for steps ``t0, t0+1, ...``. When it arrives at step ``t1 > t0`` (inference
took ``t1 - t0`` steps, the measured delay), its first ``t1 - t0`` actions are already in
the past: they are skipped and counted, so the arm never executes stale steps. Overlap
between chunks is resolved by ``ChunkConfig.merge``.

This class is pure bookkeeping (no clocks, no threads), so it is tested on synthetic
chunks with known timing; ``vla_robot.policy.loop`` maps wall-clock time onto steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vla_robot.policy.config import ChunkConfig


@dataclass
class _Chunk:
    start: int  # control step of actions[0]
    actions: np.ndarray  # (H, D)
    seq: int  # arrival order

    @property
    def end(self) -> int:  # exclusive
        return self.start + len(self.actions)


class ChunkScheduler:
    def __init__(self, chunk_size: int, action_dim: int, config: ChunkConfig | None = None) -> None:
        if chunk_size < 1 or action_dim < 1:
            raise ValueError(f"chunk_size and action_dim must be >= 1, got {chunk_size}, {action_dim}")
        self.config = config or ChunkConfig()
        self.chunk_size = chunk_size
        self.action_dim = action_dim
        self.usable = min(chunk_size, self.config.execute_steps or chunk_size)
        self.reset()

    def reset(self) -> None:
        self._chunks: list[_Chunk] = []
        self._seq = 0
        self.in_flight = False
        self.requested_step: int | None = None
        self.chunks_received = 0
        self.stale_skipped = 0
        self.dropped_chunks = 0
        self.merged_steps = 0
        self.delays: list[int] = []

    # -- requesting -------------------------------------------------------------------
    def pending(self, step: int) -> int:
        """Actions available for steps >= ``step`` (the queue depth)."""
        ends = [c.end for c in self._chunks]
        return max(0, max(ends) - step) if ends else 0

    def available(self, start: int, stop: int) -> int:
        """How many of the steps ``start .. stop-1`` have a queued action (what a late tick skips)."""
        return sum(1 for step in range(start, stop) if any(c.start <= step < c.end for c in self._chunks))

    def should_request(self, step: int) -> bool:
        """True when no inference is in flight and the queue is at or below the threshold."""
        if self.in_flight:
            return False
        return self.pending(step) <= self.config.request_threshold * self.usable

    def mark_requested(self, step: int) -> None:
        self.in_flight = True
        self.requested_step = step

    def cancel_request(self) -> None:
        self.in_flight = False

    # -- receiving --------------------------------------------------------------------
    def add_chunk(self, actions: np.ndarray, obs_step: int, arrival_step: int) -> int:
        """Queue a chunk predicted at ``obs_step`` that became available at ``arrival_step``.

        Returns how many of its actions were skipped as stale.
        """
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != self.action_dim or len(actions) < 1:
            raise ValueError(f"chunk must have shape (H, {self.action_dim}), got {actions.shape}")
        if arrival_step < obs_step:
            raise ValueError(f"chunk arrived at step {arrival_step} before its observation step {obs_step}")
        self.in_flight = False
        self.chunks_received += 1
        delay = arrival_step - obs_step
        self.delays.append(delay)
        actions = actions[: self.usable]
        stale = min(delay, len(actions))
        self.stale_skipped += stale
        if stale == len(actions):
            self.dropped_chunks += 1
            return stale
        self._chunks.append(_Chunk(start=arrival_step, actions=actions[stale:], seq=self._seq))
        self._seq += 1
        self._prune(arrival_step)
        return stale

    # -- executing --------------------------------------------------------------------
    def action_for(self, step: int) -> np.ndarray | None:
        """The merged action for ``step``, or None when the queue is empty (hold)."""
        self._prune(step)
        covering = [c for c in self._chunks if c.start <= step < c.end]
        if not covering:
            return None
        if len(covering) > 1:
            self.merged_steps += 1
        covering.sort(key=lambda c: c.seq)
        preds = np.stack([c.actions[step - c.start] for c in covering])
        mode = self.config.merge
        if mode == "latest" or len(covering) == 1:
            return preds[-1].copy()
        n = len(covering)
        if mode == "weighted":
            weights = np.exp(-self.config.decay * np.arange(n - 1, -1, -1, dtype=np.float64))
        else:  # ACT temporal ensembling: w_i = exp(-m * i), i = 0 the oldest prediction
            weights = np.exp(-self.config.decay * np.arange(n, dtype=np.float64))
        weights /= weights.sum()
        return weights @ preds

    def _prune(self, step: int) -> None:
        self._chunks = [c for c in self._chunks if c.end > step]

    def stats(self) -> dict[str, float | int]:
        delays = np.asarray(self.delays, dtype=np.float64)
        return {
            "chunks_received": self.chunks_received,
            "stale_actions_skipped": self.stale_skipped,
            "chunks_dropped_stale": self.dropped_chunks,
            "merged_steps": self.merged_steps,
            "delay_steps_mean": float(delays.mean()) if delays.size else 0.0,
            "delay_steps_max": int(delays.max()) if delays.size else 0,
        }
