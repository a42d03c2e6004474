"""Align asynchronous streams (joint states, camera frames, commanded actions) to the control rate.

Only message stamps are compared (hardware-, device- or simulation-clock seconds), so the
same code aligns a real robot and a twin running faster than real time. Each grid time
``t0 + k / rate`` takes, per stream, the sample nearest to it within ``tolerance_s``. A
stream with no sample that close is a *gap*: the step is dropped and counted per stream,
never filled by repeating an older sample.

An episode begins at the first step where every stream is present (streams warming up
after "start" are not gaps) and ends at the last complete step (steps after the
operator's "stop" that lack the final action are trimmed, not counted as gaps).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AlignerConfig:
    control_rate_hz: float
    streams: tuple[str, ...]  # all streams, the reference ("state") included
    reference: str = "state"
    tolerance_s: float | None = None  # default: 40% of a control period
    max_wait_s: float = 0.5  # host seconds a step waits for a late stream before it counts as a gap
    buffer: int = 256  # samples kept per stream

    def __post_init__(self) -> None:
        if self.control_rate_hz <= 0:
            raise ValueError(f"aligner: control_rate_hz must be > 0, got {self.control_rate_hz}")
        if self.reference not in self.streams:
            raise ValueError(f"aligner: reference stream {self.reference!r} is not among streams {self.streams}")
        if self.tolerance_s is not None and not 0 < self.tolerance_s <= 0.5 / self.control_rate_hz:
            raise ValueError(
                f"aligner: tolerance_s {self.tolerance_s} must be in (0, {0.5 / self.control_rate_hz:g}] "
                "(half a control period) so one sample never serves two steps"
            )

    @property
    def period(self) -> float:
        return 1.0 / self.control_rate_hz

    @property
    def tolerance(self) -> float:
        return self.tolerance_s if self.tolerance_s is not None else 0.4 * self.period


@dataclass
class Sample:
    stamp: float
    receive: float
    value: Any


@dataclass
class AlignedStep:
    grid_time: float
    samples: dict[str, Sample]


@dataclass
class AlignerStats:
    steps: int = 0
    dropped_steps: int = 0
    gaps: dict[str, int] = field(default_factory=dict)
    out_of_order: dict[str, int] = field(default_factory=dict)
    warmup_steps: int = 0
    trimmed_steps: int = 0


class StreamAligner:
    def __init__(self, config: AlignerConfig):
        self.config = config
        self.stats = AlignerStats(gaps={s: 0 for s in config.streams}, out_of_order={s: 0 for s in config.streams})
        self._buffers: dict[str, deque[Sample]] = {s: deque(maxlen=config.buffer) for s in config.streams}
        self._next_grid: float | None = None
        self._started = False
        self._pending_gaps: list[list[str]] = []

    def reset(self) -> None:
        """Start a new episode grid at the next reference sample."""
        for buf in self._buffers.values():
            buf.clear()
        self._next_grid = None
        self._started = False
        self._pending_gaps = []
        self.stats = AlignerStats(gaps={s: 0 for s in self.config.streams},
                                  out_of_order={s: 0 for s in self.config.streams})

    def add(self, stream: str, stamp: float, value: Any, receive: float | None = None) -> None:
        buf = self._buffers[stream]
        if buf and stamp <= buf[-1].stamp:
            self.stats.out_of_order[stream] += 1  # duplicates and reordering are dropped, not merged
            return
        buf.append(Sample(stamp, time.monotonic() if receive is None else receive, value))
        if stream == self.config.reference and self._next_grid is None:
            self._next_grid = stamp

    def _nearest(self, stream: str, t: float) -> Sample | None:
        buf = self._buffers[stream]
        stamps = [s.stamp for s in buf]
        i = bisect.bisect_left(stamps, t)
        best = None
        for j in (i - 1, i):
            if 0 <= j < len(buf) and abs(buf[j].stamp - t) <= self.config.tolerance:
                if best is None or abs(buf[j].stamp - t) < abs(best.stamp - t):
                    best = buf[j]
        return best

    def _settled(self, stream: str, t: float) -> bool:
        buf = self._buffers[stream]
        return bool(buf) and buf[-1].stamp >= t + self.config.tolerance

    def poll(self, now: float | None = None) -> list[AlignedStep]:
        """Every grid step that can be decided now, in order; gaps are counted, not returned."""
        now = time.monotonic() if now is None else now
        out: list[AlignedStep] = []
        cfg = self.config
        while self._next_grid is not None:
            t = self._next_grid
            ref = self._buffers[cfg.reference]
            if not ref or ref[-1].stamp < t - cfg.tolerance:
                break  # the reference has not reached this step yet
            due = next(smp.receive for smp in ref if smp.stamp >= t - cfg.tolerance)
            waiting = [s for s in cfg.streams if not self._settled(s, t)]
            if waiting and now - due < cfg.max_wait_s:
                break  # measured from the reference's arrival, so a dead stream never builds a backlog
            samples = {s: self._nearest(s, t) for s in cfg.streams}
            missing = [s for s, v in samples.items() if v is None]
            if missing:
                if self._started:
                    self._pending_gaps.append(missing)
                else:
                    self.stats.warmup_steps += 1
            else:
                self._started = True
                for gap in self._pending_gaps:  # a gap followed by data is a real hole in the episode
                    self.stats.dropped_steps += 1
                    for s in gap:
                        self.stats.gaps[s] += 1
                self._pending_gaps = []
                self.stats.steps += 1
                out.append(AlignedStep(t, samples))
            self._next_grid = t + cfg.period
            self._prune(t)
        return out

    def flush(self) -> list[AlignedStep]:
        """At stop: decide every pending step now; trailing incomplete steps are trimmed."""
        out = self.poll(now=float("inf"))
        self.stats.trimmed_steps += len(self._pending_gaps)
        self._pending_gaps = []
        return out

    def _prune(self, t: float) -> None:
        horizon = t - 2 * self.config.tolerance
        for buf in self._buffers.values():
            while len(buf) > 1 and buf[0].stamp < horizon:
                buf.popleft()
