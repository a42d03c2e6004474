"""``TwinExpertDriver``: the scripted expert as a free-running teleop of the real-time twin.

It plans from a ``MirrorTwin`` (the true cube and card poses: the expert is privileged) and
answers the wall clock, not the twin's steps: ``step(now)`` gives the plan's targets ``now``
seconds after it started (``ScriptedExpert.action_at``), whatever rate the caller ticks at.
A new plan starts when the twin starts a new episode (a reset shows up as a new seed or
episode index in the shared state) or when ``restart`` is called (the teleop was enabled).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from sim.expert import ScriptedExpert
from sim.realtime.mirror import MirrorTwin


@dataclass(frozen=True)
class ExpertStep:
    targets: np.ndarray
    episode: int
    seed: int
    phase: str
    done: bool
    elapsed_s: float


class TwinExpertDriver:
    def __init__(self, address: str, attach_timeout_s: float = 30.0):
        self.mirror = MirrorTwin(address, timeout_s=attach_timeout_s)
        self.expert = ScriptedExpert(self.mirror.twin)
        self.started_at: float | None = None
        self._planned_episode: tuple[int, int] | None = None

    def restart(self, now: float | None = None) -> None:
        """Plan again from the twin's present state; the plan's clock starts ``now``."""
        self.mirror.sync()
        self.expert.reset()
        self._planned_episode = self.mirror.episode
        self.started_at = time.monotonic() if now is None else now

    def step(self, now: float | None = None) -> ExpertStep:
        now = time.monotonic() if now is None else now
        sample = self.mirror.sync()
        if self.started_at is None or self.mirror.episode != self._planned_episode:
            self.restart(now)
        elapsed = now - self.started_at
        targets = self.expert.action_at(elapsed)
        return ExpertStep(targets=targets, episode=sample.episode, seed=sample.seed, phase=self.expert.phase,
                          done=self.expert.done, elapsed_s=elapsed)

    def close(self) -> None:
        self.mirror.close()
